"""Sparse (CSR) benchmark: fastlinreg's exact fit on a CSR X against
scikit-learn's LinearRegression on the same CSR matrix and against the
densify-then-fit path; the cost of one gradient-descent step against one read
of the CSR arrays.

Run from the repository root::

    python benchmarks/bench_sparse.py            # n=1e6, d=1000, 1% density
    python benchmarks/bench_sparse.py --quick    # n=1e5

Writes ``benchmarks/results/sparse.json`` and ``sparse.md`` (``sparse_quick.*``
with ``--quick``). Every reported figure is a ratio of two measurements taken
in this run.

The densified X of the full size is 8 GB in float64, more than a shared
machine should hold, so the densify-then-fit comparison runs on the first
``--dense-rows`` rows (default 1e5: 0.8 GB), timing the sparse fit on the same
rows: the ratio is measured, not scaled. Both paths are linear in n.
"""

from __future__ import annotations

import sys
import time
import warnings

import _harness as H
import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LinearRegression as SkLinearRegression

from fastlinreg import LinearRegression

EXACT_VS_SKLEARN_TARGET = 5.0
EXACT_VS_DENSIFY_TARGET = 2.0
GD_STEP_VS_READ_TARGET = 1.3


def make_csr(n: int, d: int, density: float, seed: int = 0):
    """A CSR X with about density * d stored values per row (int32
    indices), y = X w + 3 + noise."""
    rng = np.random.default_rng(seed)
    per_row = max(1, round(density * d))
    # Columns drawn with replacement; the rare repeats within a row are summed.
    cols = rng.integers(0, d, size=(n, per_row), dtype=np.int32)
    indptr = np.arange(0, n * per_row + 1, per_row, dtype=np.int64)
    X = sp.csr_matrix(
        (rng.standard_normal(n * per_row), cols.reshape(-1).astype(np.int32), indptr), shape=(n, d)
    )
    X.sum_duplicates()
    X.indptr = X.indptr.astype(np.int32)
    y = X @ rng.standard_normal(d) + 3.0 + 0.1 * rng.standard_normal(n)
    return X, y


def read_csr(X) -> float:
    """One read of the arrays a pass reads: data and indices (and indptr)."""
    return float(X.data.sum()) + float(np.bitwise_xor.reduce(X.indices)) + float(X.indptr[-1])


def bench(args):
    n = 100_000 if args.quick else 1_000_000
    d, density, T = 1000, 0.01, args.threads
    X, y = make_csr(n, d, density)
    nd = min(n, args.dense_rows)
    Xs, ys = X[:nd], y[:nd]
    ours = LinearRegression(solver="exact", n_jobs=T)
    sk = SkLinearRegression()
    gd = lambda k: LinearRegression(  # noqa: E731
        solver="gd", learning_rate=1e-3, max_iter=k, tol=None, n_jobs=T
    ).fit(X, y)
    check = ours.fit(X, y).coef_
    with H.thread_limits(T):
        samples, info = H.interleaved(
            {
                "exact_csr": H.sample_median(lambda: ours.fit(X, y), 1),
                "sklearn_csr": H.sample_median(lambda: sk.fit(X, y), 1),
                "exact_csr_small": H.sample_median(lambda: ours.fit(Xs, ys), 1),
                "densify_fit": H.sample_median(lambda: ours.fit(Xs.toarray(), ys), 1),
                "gd_step": H.sample_step(gd, 2, 12),
                "read": H.sample_median(lambda: read_csr(X), 3),
            },
            args.repeat,
            patience=args.patience,
        )
    agree = float(np.max(np.abs(sk.fit(X, y).coef_ - check)))
    r_sk = H.median_ratio(samples["sklearn_csr"], samples["exact_csr"])
    r_dense = H.median_ratio(samples["densify_fit"], samples["exact_csr_small"])
    r_step = H.median_ratio(samples["gd_step"], samples["read"])
    table = H.Table(
        f"CSR n={n:.0e}, d={d}, density {density:.0%} (nnz {X.nnz:.2e})",
        ["comparison", "ratio", "target", "met"],
    )
    table.add(
        "scikit-learn LinearRegression (same CSR) / fastlinreg exact",
        H.fmt_ratio(r_sk),
        f">= {EXACT_VS_SKLEARN_TARGET}",
        H.fmt_check(r_sk >= EXACT_VS_SKLEARN_TARGET),
    )
    table.add(
        f"densify-then-fit / fastlinreg exact on CSR (first {nd:.0e} rows)",
        H.fmt_ratio(r_dense),
        f">= {EXACT_VS_DENSIFY_TARGET}",
        H.fmt_check(r_dense >= EXACT_VS_DENSIFY_TARGET),
    )
    table.add(
        "gd step / one read of the CSR arrays (numpy, 1 thread)",
        H.fmt_ratio(r_step),
        f"<= {GD_STEP_VS_READ_TARGET}",
        H.fmt_check(r_step <= GD_STEP_VS_READ_TARGET),
    )
    table.notes += [
        f"{T} threads for fastlinreg; scikit-learn's sparse fit is scipy's lsqr "
        "(one thread). Densify-then-fit: X.toarray() (float64) and fastlinreg's dense "
        "exact fit, timed together.",
        f"max |coef difference| fastlinreg vs scikit-learn: {agree:.2e}.",
        "read: X.data.sum() plus an xor-reduce of X.indices, one numpy thread each.",
        H.fmt_load(info.load, info),
    ]
    payload = {
        "n": n,
        "d": d,
        "density": density,
        "nnz": int(X.nnz),
        "dense_rows": nd,
        "samples_s": samples,
        "ratios": {"sklearn": r_sk, "densify": r_dense, "gd_step_vs_read": r_step},
    }
    return payload, table


def main(argv=None) -> int:
    p = H.base_parser(
        __doc__,
        threads_help="threads for fastlinreg (n_jobs) (default: the cores available)",
        repeat_help="interleaved rounds (default 3)",
    )
    p.add_argument(
        "--dense-rows", type=int, default=100_000, help="rows of the densify-then-fit comparison"
    )
    args = p.parse_args(argv)
    args.name = "sparse_quick" if args.quick else "sparse"
    args.repeat = args.repeat or 3
    args.patience = (0.0 if args.quick else 0.5) if args.patience is None else args.patience
    warnings.simplefilter("error", RuntimeWarning)
    info = H.machine_info(args.threads)
    print(H.machine_line(info), flush=True)
    t_start = time.perf_counter()
    payload, table = bench(args)
    return H.finish(args, "bench_sparse: CSR fits", info, payload, [table], t_start)


if __name__ == "__main__":
    sys.exit(main())
