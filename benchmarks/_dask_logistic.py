"""bench_dask.py's LogisticRegression rows, on one cluster (2 worker processes x
1 thread): fastlinreg's dask fit against dask-ml's LogisticRegression at the
same objective, and against fastlinreg's in-memory fit of the same rows.

The same objective: dask-ml (dask_glm.algorithms.lbfgs) minimises
``sum_i logloss_i + (1/C) ||beta||² / 2`` over all of beta, its intercept
included, on X standardised by default (``normalize``: the penalty then falls
on the standardised coefficients). With ``solver_kwargs={"normalize": False}``
and X1 = [X, 1] given to both with ``fit_intercept=False`` that is exactly
fastlinreg's ``C sum_i logloss_i + ||coef||² / 2`` divided by C: one function,
one minimum. Both are timed on the same persisted X1 and y; the answers are
compared by their objective's relative gap to the minimum (fastlinreg's Newton
fit in memory to tol 1e-12) and by their coefficients.
"""

from __future__ import annotations

import _harness as h
import numpy as np

CLUSTER = "2 worker processes x 1 thread"
C = 1.0
# fastlinreg's lbfgs tol (the gradient of the objective over C·n); dask-ml's is
# on the objective over C, so n times larger for the same stopping point.
TOL = 1e-8


def tables():
    ml = h.Table(
        "dask-ml LogisticRegression at the same objective (same cluster, same X)",
        [
            "data",
            "cluster",
            "dask-ml / fastlinreg (time)",
            "dask-ml objective gap",
            "ours",
            "max abs coef diff",
            "≥ 5×",
        ],
    )
    mem = h.Table(
        "LogisticRegression (lbfgs): Dask over in-memory fastlinreg",
        [
            "data",
            "cluster",
            "dask / in-memory",
            "overhead",
            "passes (dask, in-memory)",
            "coef diff",
        ],
    )
    ml.notes.append(
        f"Binary, C={C}; X1 = [X, 1] with fit_intercept=False in both, dask-ml with "
        "solver='lbfgs', solver_kwargs={'normalize': False} (its default standardises X, "
        "which moves its penalty onto the standardised coefficients: another objective), "
        f"tol = n x {TOL:g} (ours {TOL:g}: the same gradient test on its objective's scale). "
        "Objective gap: (F - F*) / F*, F* from fastlinreg's Newton fit in memory to tol 1e-12. "
        "One timed fit each after a warm-up (dask-ml's on one block: its fit takes long)."
    )
    mem.notes.append(
        "fit_intercept=True on X, lbfgs tol 1e-8; median of the interleaved rounds. Passes: "
        "the fits' L-BFGS iterations. In memory, a binary fit of many rows (every 10th row at "
        "least 5000, and 500 a parameter) starts from a subsample's fit (solvers/_warm.py); "
        "the dask fit always starts from zero, so there the passes may differ."
    )
    return ml, mem


def data(n: int, d: int, seed: int = 3):
    """(X (n, d), y in {0, 1} float64): a noisy logistic model with an intercept."""
    X = h.random_matrix(n, d, seed=seed) * np.linspace(0.5, 2.0, d)
    rng = np.random.default_rng(seed + 1)
    beta = 2.0 * rng.standard_normal(d) / np.sqrt(d)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(X @ beta + 0.5)))).astype(np.float64)
    return X, y


def objective(coef, X1, y) -> float:
    """C sum_i logloss_i + ||coef||² / 2 (the intercept is X1's last column's coefficient)."""
    z = X1 @ coef
    return C * float(np.sum(np.logaddexp(0.0, z) - y * z)) + 0.5 * float(coef @ coef)


def run(label, n, d, rows, repeat, dask_ml, tables_, results, cluster, scattered, timed):
    """Both tables' rows for one size, on ``cluster`` (a Client on it is current).
    ``scattered(rows, *arrays)``: dask arrays whose blocks already sit on the workers."""
    from fastlinreg import LogisticRegression

    ml_t, mem_t = tables_
    X, y = data(n, d)
    X1 = np.column_stack([X, np.ones(n)])
    Xd, X1d, yd = scattered(rows, X, X1, y)
    entry = {}
    # Ours, dask against in-memory (the estimator as a user calls it).
    params = dict(solver="lbfgs", tol=TOL, C=C)
    mem_fit, dask_fit = LogisticRegression(**params), LogisticRegression(**params)
    mem_fit.fit(X, y), dask_fit.fit(Xd, yd)
    mem, dsk = [], []
    for _ in range(repeat):
        mem.append(timed(lambda: mem_fit.fit(X, y)))
        dsk.append(timed(lambda: dask_fit.fit(Xd, yd)))
    diff = float(np.abs(dask_fit.coef_ - mem_fit.coef_).max())
    mem_t.add(
        label,
        cluster,
        h.fmt_ratio(h.median_ratio(dsk, mem)),
        f"{1e3 * h.median(np.subtract(dsk, mem)):.0f} ms",
        f"{dask_fit.n_iter_[0]}, {mem_fit.n_iter_[0]}",
        f"{diff:.1e}",
    )
    entry.update(in_memory_s=mem, dask_s=dsk, coef_diff=diff)
    if dask_ml is not None:
        best = LogisticRegression(solver="newton", tol=1e-12, C=C, fit_intercept=False)
        F_star = objective(best.fit(X1, y).coef_[0], X1, y)
        ours = LogisticRegression(**params, fit_intercept=False)
        ml = dask_ml.LogisticRegression(
            penalty="l2",
            C=C,
            solver="lbfgs",
            fit_intercept=False,
            tol=n * TOL,
            max_iter=1000,
            solver_kwargs={"normalize": False},
        )
        ours.fit(X1d, yd), ml.fit(X1d[:rows], yd[:rows])  # dask-ml's warm-up: one block
        t_ours, t_ml = timed(lambda: ours.fit(X1d, yd)), timed(lambda: ml.fit(X1d, yd))
        gap_ours = objective(ours.coef_[0], X1, y) / F_star - 1.0
        gap_ml = objective(np.asarray(ml.coef_), X1, y) / F_star - 1.0
        ratio = t_ml / t_ours
        coef_diff = float(np.abs(np.asarray(ml.coef_) - ours.coef_[0]).max())
        ml_t.add(
            label,
            cluster,
            h.fmt_ratio(ratio),
            f"{gap_ml:.1e}",
            f"{gap_ours:.1e}",
            f"{coef_diff:.1e}",
            h.fmt_check(ratio >= 5 and gap_ours <= max(gap_ml, 1e-12)),
        )
        entry.update(ours_s=t_ours, dask_ml_s=t_ml, gap_ours=gap_ours, gap_dask_ml=gap_ml)
    results[f"logistic {label}: {cluster}"] = entry
