"""``python -m fastlinreg``: see :mod:`fastlinreg.cli`."""

import sys

from .cli import main

sys.exit(main())
