#!/usr/bin/env bash
# The CUDA backend's checks on a GPU machine, in one go (< 8 minutes on one H200):
# build with CUDA in a fresh venv; run tests/test_cuda.py and the parametrized
# kernel/estimator suite on backend "cuda" (pytest -k cuda: the backend
# fixture's id); run bench_gpu.py. Each step has its own timeout (210 + 150 +
# 120 s), so the whole stays under 8 minutes even when a step hangs.
# usage: benchmarks/gpu_check.sh OUTDIR    (writes at most 6 files there)
#
# The GPU machine has no network: the venv sees the system's packages
# (torch, cupy, pytest, hypothesis, scikit-build-core, pybind11, cmake,
# ninja) and pip installs fastlinreg alone, without an index.
set -uo pipefail
OUT=${1:?usage: benchmarks/gpu_check.sh OUTDIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-16}
PY=${PYTHON:-python3}
VENV=${VENV:-/tmp/fastlinreg-gpu-venv}
status=0
step() { echo "== $* ($(date +%T))"; }

step "device"
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || echo "nvidia-smi failed" >>"$OUT/nvidia-smi.txt"

step "venv + build (log: build.log)"
rm -rf "$VENV"
# python3 there is itself a venv (/opt/torch/.venv): --system-site-packages
# would reach the base interpreter only, so a .pth adds the parent's packages.
PARENT_SITE=$("$PY" -c "import site; print('\n'.join(site.getsitepackages()))")
"$PY" -m venv --system-site-packages "$VENV" && . "$VENV/bin/activate" || exit 1
echo "$PARENT_SITE" >"$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_parent_site.pth"
python -c "import torch, cupy, pytest, scikit_build_core, pybind11" || echo "WARNING: a package is missing"
t0=$(date +%s)
if ! timeout 210 python -m pip install --no-build-isolation --no-deps --no-index -v \
    -Cbuild-dir=/tmp/fastlinreg-gpu-build -Ccmake.define.FASTLINREG_CUDA=ON . >"$OUT/build.log" 2>&1; then
  echo "BUILD FAILED"; tail -40 "$OUT/build.log"; exit 1
fi
echo "built in $(( $(date +%s) - t0 )) s"
python -c "import fastlinreg.backends.cuda as c; print('available:', c.available())"
python -c "import fastlinreg.backends.cuda as c; print(c.device_name())" || status=1

step "tests: test_cuda.py and the suite on backend cuda (tests.txt)"
# From the source root: pyproject's strict pytest settings apply; fastlinreg
# itself imports from the venv (the source is a src/ layout).
timeout 150 python -m pytest -q -p no:cacheprovider -rs tests -k cuda 2>&1 | tee "$OUT/tests.txt"
[ "${PIPESTATUS[0]}" = 0 ] || status=1

step "bench_gpu.py (bench.txt, gpu.md, gpu.json)"
timeout 120 python benchmarks/bench_gpu.py --out "$OUT" 2>&1 | tee "$OUT/bench.txt"
[ "${PIPESTATUS[0]}" = 0 ] || status=1
step "done (status $status)"
exit $status
