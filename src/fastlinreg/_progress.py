"""Progress of a long fit, fed by the descent loops' check hook.

The C++ loops call their StopCheck (types.hpp) about every 2**25 elements
read, on the calling thread; with ``verbose=1`` that hook hands (steps done,
last loss) to a :class:`Progress`, which stays silent for the first
``DELAY`` seconds and then shows a tqdm bar (when tqdm is installed) or
prints a line to stderr every ``EVERY`` seconds.
"""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    """A callable ``(step, loss)`` that reports a fit of ``total`` steps.

    Parameters
    ----------
    total : int
        Steps (or epochs) at most.
    unit : str, default="step"
    file : file-like, default=sys.stderr
    use_tqdm : bool or None, default=None
        None: a tqdm bar when tqdm is importable, else printed lines.
    """

    DELAY = 2.0  # seconds of silence: short fits print nothing
    EVERY = 1.0  # seconds between printed lines (without tqdm)

    def __init__(self, total: int, unit: str = "step", *, file=None, use_tqdm=None):
        self.total, self.unit = int(total), unit
        self.file = file if file is not None else sys.stderr
        self.use_tqdm = use_tqdm
        self.start = time.perf_counter()
        self.last_print = -float("inf")
        self.bar = None
        self.shown = False

    def __call__(self, step: int, loss: float) -> None:
        now = time.perf_counter()
        elapsed = now - self.start
        if elapsed < self.DELAY:
            return
        if not self.shown:
            self.shown = True
            self.bar = self._tqdm()
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix(loss=f"{loss:.6g}", refresh=False)
        elif now - self.last_print >= self.EVERY:
            self.last_print = now
            print(self._line(step, loss, elapsed), file=self.file, flush=True)

    def _line(self, step: int, loss: float, elapsed: float) -> str:
        rate = step / elapsed if elapsed > 0 else float("nan")
        return (
            f"{self.unit} {step}/{self.total}  loss {loss:.6g}  {rate:.3g} {self.unit}s/s  "
            f"{elapsed:.1f} s"
        )

    def _tqdm(self):
        if self.use_tqdm is False:
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            if self.use_tqdm:
                raise
            return None
        return tqdm(total=self.total, unit=self.unit, file=self.file, leave=True)

    def close(self, step: int, loss: float) -> None:
        """The fit ended after ``step`` steps: finish the bar or print the last line."""
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix(loss=f"{loss:.6g}", refresh=False)
            self.bar.close()
        elif self.shown:
            elapsed = time.perf_counter() - self.start
            print(self._line(step, loss, elapsed), file=self.file, flush=True)
