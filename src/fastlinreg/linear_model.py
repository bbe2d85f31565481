"""scikit-learn-style linear models fitted by fastlinreg's kernels."""

from __future__ import annotations

import contextlib
import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils._available_if import available_if
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    assert_all_finite,
    check_is_fitted,
    validate_data,
)

from . import _backend
from ._stats import SufficientStats
from .exceptions import ConvergenceWarning, DivergenceError

__all__ = ["LinearRegression"]

_STATUS_CONVERGED, _STATUS_DIVERGED = 1, 2
_KERNEL_DTYPES = (np.float64, np.float32)
_OVERFLOW = (
    "The moments of X overflow float64: its values are too large. Rescale X (e.g. with "
    "sklearn.preprocessing.StandardScaler)."
)
# Parameter sets that passed scikit-learn's validation (see _check_params).
_VALID_PARAMS: set = set()
# Above this many features the d x d statistics are too big to be worth it.
_MAX_GRAM_FEATURES = 4096


class LinearRegression(RegressorMixin, BaseEstimator):
    """Least-squares linear regression by fused gradient descent or an exact solve.

    Minimises the tutorial's cost, with optional sample weights and L2 penalty::

        sum_i w_i (x_i·coef + intercept - y_i)^2 / (2 sum_i w_i) + alpha/2 ||coef||^2

    (the intercept is not penalised). With ``w_i = 1`` and ``alpha = 0`` this is
    ``sum((Xw + b - y)^2) / (2n)``.

    Parameters
    ----------
    fit_intercept : bool, default=True
        Whether to fit an intercept.
    solver : {"auto", "gd", "gram", "exact", "sgd"}, default="auto"
        - ``"gd"``: full-batch gradient descent, one fused pass over X per step
          (C++/OpenMP, the GIL released).
        - ``"gram"``: the same gradient-descent iterates, replayed from the
          sufficient statistics: one pass over X, then O(d²k) per step.
        - ``"exact"``: the least-squares optimum from the statistics (Cholesky,
          falling back to a minimum-norm eigendecomposition solve with an
          :class:`~fastlinreg.exceptions.IllConditionedWarning` when XᵀX is singular).
        - ``"sgd"``: mini-batch stochastic gradient descent, the fused pass on
          each batch of ``batch_size`` rows; ``max_iter`` counts epochs and the
          step of epoch e is ``eta0 / sqrt(1 + e)``, with ``eta0`` the float
          ``learning_rate`` or, for ``"auto"``, ``1 / (L + (d + 1) / batch_size)``
          on the standardised problem (the batch curvature bound with the mean
          squared row norm d + 1). Bitwise reproducible for a fixed
          ``random_state``.
        - ``"auto"``: with ``learning_rate="auto"`` the documented result is the
          optimum, so ``"exact"`` (``"gd"`` above 4096 features). With a float
          ``learning_rate`` the documented result is that step's GD trajectory,
          so ``"gram"`` when ``n_samples >= n_features``, X has at least 4096
          elements (smaller ones stay in L1 cache, where a fused step costs no
          more than a replayed one) and the one-off d² statistics are cheaper
          than the steps (``n_features <= 25 * max_iter``), else ``"gd"``
          (the tutorial's 16 points run ``"gd"``). The choice is stored in
          ``solver_``.
    learning_rate : "auto" or float, default="auto"
        Gradient-descent step. A float runs plain gradient descent on (coef,
        intercept): exactly the tutorial's iterates. ``"auto"`` runs gradient
        descent on the centred, column-scaled problem (folded into the kernel's
        arithmetic; X is not copied) with step ``1/L``, L the largest Hessian
        eigenvalue found by power iteration: the loss then decreases
        monotonically whatever the column scales. The step used is stored in
        ``learning_rate_``.
    max_iter : int, default=1000
        Number of gradient-descent steps at most.
    tol : float or None, default=1e-4
        Stop when the gradient norm (in the descended parametrisation) falls to
        ``tol`` times its value at the start. ``None`` runs exactly ``max_iter``
        steps, as the tutorial does. A :class:`~sklearn.exceptions.ConvergenceWarning`
        is raised when ``max_iter`` is reached first. For ``"sgd"``,
        scikit-learn's rule instead, with ``tol`` relative to the first epoch's
        mean loss L0: stop after ``n_iter_no_change`` epochs in a row whose mean
        loss is not below the best so far minus ``tol * L0``.
    batch_size : int, default=256
        Rows per mini-batch (``"sgd"``).
    shuffle : bool, default=True
        Visit the rows in a new random order each epoch (``"sgd"``).
    n_iter_no_change : int, default=5
        Epochs without improvement before ``"sgd"`` stops (see ``tol``).
    alpha : float, default=0.0
        L2 penalty strength (ridge), scaled as in the objective above.
    init : {"zeros", "random"}, default="zeros"
        Starting coefficients when ``fit`` gets none: zeros, or standard normal
        draws from ``random_state`` (the tutorial's ``rng.randn()``).
    warm_start : bool, default=False
        Start from the previous fit's coefficients.

    Notes
    -----
    ``partial_fit`` streams rows chunk by chunk. With ``"exact"``/``"gram"``
    (and ``"auto"``) it merges each chunk's sufficient statistics and solves
    again, so feeding chunks equals fitting all the rows at once: exact
    streaming least squares, e.g. over an ``np.memmap`` larger than memory.
    With ``"sgd"`` each call runs one epoch over the chunk, continuing the
    step schedule; the standardisation is taken from the first chunk.
    n_jobs : int or None, default=None
        Threads. ``None`` follows OpenMP's default (``OMP_NUM_THREADS`` and
        threadpoolctl's limits); ``-1`` uses every core. The result is bitwise
        the same for any thread count. Where other processes hold cores and
        the threads of a gradient-descent fit arrive late, it runs spells of
        steps on one thread instead.
    random_state : int, RandomState instance or None, default=None
        Seeds ``init="random"``.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,) or (n_targets, n_features)
    intercept_ : float or ndarray of shape (n_targets,)
    n_iter_ : int
        Gradient-descent steps taken (1 for ``"exact"``: one pass, one solve).
    loss_curve_ : ndarray of shape (n_iter_,)
        The cost at each step, evaluated before that step's update (the
        tutorial's printed ``costM``); for ``"exact"``, the cost at the optimum.
    learning_rate_ : float or None
        The step used (``None`` for ``"exact"``).
    solver_ : str
        The solver that ran.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when X has string column names (e.g. a pandas DataFrame).

    Examples
    --------
    >>> import numpy as np
    >>> from fastlinreg import LinearRegression
    >>> X = np.array([[1.0], [2.0], [3.0], [4.0]])
    >>> y = 2 * X[:, 0] + 1
    >>> model = LinearRegression().fit(X, y)
    >>> np.round(model.coef_, 6), round(float(model.intercept_), 6)
    (array([2.]), 1.0)
    >>> model.predict([[5.0]]).round(6)
    array([11.])
    """

    _parameter_constraints: dict = {
        "fit_intercept": ["boolean"],
        "solver": [StrOptions({"auto", "gd", "gram", "exact", "sgd"})],
        "learning_rate": [StrOptions({"auto"}), Interval(numbers.Real, 0, None, closed="neither")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left"), None],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "init": [StrOptions({"zeros", "random"})],
        "warm_start": ["boolean"],
        "n_jobs": [numbers.Integral, None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        *,
        fit_intercept=True,
        solver="auto",
        learning_rate="auto",
        max_iter=1000,
        tol=1e-4,
        alpha=0.0,
        batch_size=256,
        shuffle=True,
        n_iter_no_change=5,
        init="zeros",
        warm_start=False,
        n_jobs=None,
        random_state=None,
    ):
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.tol = tol
        self.alpha = alpha
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.n_iter_no_change = n_iter_no_change
        self.init = init
        self.warm_start = warm_start
        self.n_jobs = n_jobs
        self.random_state = random_state

    # ------------------------------------------------------------------ fit
    def fit(self, X, y, sample_weight=None, coef_init=None, intercept_init=None):
        """Fit the model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            float32 X stays float32 in memory; a C-contiguous float32/float64 X
            is never copied.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; integer weights equal repeated rows.
        coef_init : array-like of shape (n_features,) or (n_targets, n_features), default=None
            Starting coefficients for gradient descent.
        intercept_init : float or array-like of shape (n_targets,), default=None
            Starting intercept for gradient descent.

        Returns
        -------
        self : LinearRegression
            The fitted estimator. If fitting raises, the estimator is left as
            it was.
        """
        with _restore_on_error(self):
            self._check_params()
            X, y = self._validate_fit_data(X, y)
            return self._fit_validated(X, y, sample_weight, coef_init, intercept_init)

    def _check_params(self):
        """scikit-learn's parameter validation, run once per distinct set of
        parameter values: it costs ~0.1 ms, as much as the tutorial's whole
        10000-step descent, and a fresh estimator per fit is the usual idiom.
        Values are keyed with their types (so ``1`` is not taken for ``True``);
        unhashable values are always validated."""
        try:
            key = tuple((type(v), v) for v in map(self.__dict__.get, self._parameter_constraints))
            hash(key)
        except TypeError:
            self._validate_params()
            return
        if key in _VALID_PARAMS:
            return
        self._validate_params()
        if len(_VALID_PARAMS) >= 256:
            _VALID_PARAMS.clear()
        _VALID_PARAMS.add(key)

    def _validate_fit_data(self, X, y):
        """validate_data(X, y), with a fast path for input that is already
        exactly what it would return: float ndarrays of the right shapes, y
        finite. Anything else, or anything doubtful, goes through
        scikit-learn's checks, which also word the errors.

        The fast path leaves X's finiteness to the solver's own pass: a NaN or
        inf makes the statistics, the column moments or the first loss
        non-finite, and then :func:`_require_finite` raises scikit-learn's
        error. That saves a whole read of X, 15-20% of an exact fit."""
        if (
            type(X) is np.ndarray and type(y) is np.ndarray
            and X.ndim == 2 and X.dtype in _KERNEL_DTYPES and X.shape[0] >= 1 and X.shape[1] >= 1
            and y.dtype.kind == "f" and y.shape[0] == X.shape[0]
            and (y.ndim == 1 or (y.ndim == 2 and y.shape[1] >= 1))
            and np.isfinite(y.sum())
        ):
            self.n_features_in_ = X.shape[1]
            self.__dict__.pop("feature_names_in_", None)
            return X, y
        return validate_data(
            self, X, y, dtype=list(_KERNEL_DTYPES), y_numeric=True, multi_output=True, reset=True
        )

    @available_if(lambda est: est.solver != "gd")
    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with one more chunk of rows.

        With ``solver`` ``"exact"``, ``"gram"`` or ``"auto"`` the chunk's
        sufficient statistics are merged with those of all earlier chunks (and
        of the last ``fit``) and the model is solved again: the result equals
        a fit on all the rows. With ``"sgd"`` one epoch of mini-batches runs
        over the chunk. ``"gd"`` reads every row at every step and cannot
        stream, so with ``solver="gd"`` this method is not available
        (``hasattr(model, "partial_fit")`` is False), as scikit-learn expects.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            The same number of targets in every call.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : LinearRegression
        """
        with _restore_on_error(self):
            self._check_params()
            first = not hasattr(self, "_stream")
            X, y = validate_data(
                self, X, y, dtype=[np.float64, np.float32], y_numeric=True, multi_output=True,
                reset=first,
            )
            X = _backend.as_kernel_X(X)
            n, d = X.shape
            Y = np.ascontiguousarray(y.reshape(n, -1), dtype=np.float64)
            sw, wsum = self._weights(sample_weight, X)
            solver = self._partial_solver(d)
            stream = None if first else self._stream
            if stream is not None and stream.solver == "gd":
                raise ValueError(
                    "the last fit ran solver='gd', which keeps nothing to continue from. Fit "
                    "with solver='exact', 'gram' or 'sgd' (or call partial_fit from the start)."
                )
            if stream is not None and (stream.solver != solver or stream.n_targets != Y.shape[1]
                                       or stream.y_is_1d != (y.ndim == 1)):
                raise ValueError(
                    f"partial_fit got {Y.shape[1]} target(s) with solver={solver!r}, but the "
                    f"model so far has {stream.n_targets} with solver={stream.solver!r}. Keep "
                    "y's shape and the solver fixed across calls, or call fit() to start over."
                )
            if solver == "sgd":
                state = stream.sgd if stream is not None else None
                result = self._run_sgd(X, Y, sw, wsum, state, epochs=1, W0=None, b0=None)
            else:
                stats = SufficientStats.from_arrays(X, Y, sw, n_jobs=self.n_jobs)
                if stream is not None:
                    stats = stream.stats.merge(stats)
                k = Y.shape[1]
                result = self._solve_from_stats(solver, stats, np.zeros((d, k)), np.zeros(k))
            self._set_result(result, y.ndim == 1)
            return self

    def _partial_solver(self, d):
        if self.solver == "auto":
            return "exact" if d <= _MAX_GRAM_FEATURES else "sgd"
        return self.solver

    def _fit_validated(self, X, y, sample_weight, coef_init, intercept_init):
        X = _backend.as_kernel_X(X)
        n, d = X.shape
        Y = np.ascontiguousarray(y.reshape(n, -1), dtype=np.float64)
        k = Y.shape[1]
        sw, wsum = self._weights(sample_weight, X)
        solver = self._choose_solver(n, d)
        W0, b0 = self._start(d, k, coef_init, intercept_init)
        if solver in ("exact", "gram"):
            stats = SufficientStats.from_arrays(X, Y, sw, n_jobs=self.n_jobs)
            if not stats.is_finite():
                _require_finite(X)  # a NaN/inf in X (when the fast path skipped it)
                raise ValueError(_OVERFLOW)
            result = self._solve_from_stats(solver, stats, W0, b0)
        elif solver == "sgd":
            result = self._run_sgd(X, Y, sw, wsum, None, epochs=self.max_iter, W0=W0, b0=b0)
        else:
            result = self._descend("gd", X, Y, sw, wsum, None, W0, b0)
        # Only now, with everything computed, touch the estimator.
        self._set_result(result, y.ndim == 1)
        return self

    def _solve_from_stats(self, solver, stats, W0, b0):
        if solver == "exact":
            W, b = stats.solve(alpha=self.alpha, fit_intercept=self.fit_intercept)
            # One pass, one solve: n_iter_ = 1, and the curve holds the optimum's cost.
            result = _FitResult("exact", W, b, 1, np.array([stats.loss(W, b, self.alpha)]), None)
        else:
            result = self._descend("gram", None, None, None, None, stats, W0, b0)
        result.stream = _StreamState(solver, stats.n_targets, stats=stats)
        return result

    def _set_result(self, r, y_is_1d):
        self.coef_ = r.W[:, 0].copy() if y_is_1d else np.ascontiguousarray(r.W.T)
        self.intercept_ = float(r.b[0]) if y_is_1d else r.b.copy()
        self.n_iter_ = int(r.n_iter)
        self.loss_curve_ = r.curve
        self.learning_rate_ = r.learning_rate
        self.solver_ = r.solver
        r.stream.y_is_1d = y_is_1d
        self._stream = r.stream

    def _weights(self, sample_weight, X):
        if sample_weight is None:
            return None, float(X.shape[0])
        sw = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        wsum = float(sw.sum())
        if not wsum > 0:
            raise ValueError(
                "sample_weight sums to zero: at least one sample needs a positive weight."
            )
        return np.ascontiguousarray(sw), wsum

    def _choose_solver(self, n, d):
        if self.solver != "auto":
            return self.solver
        if isinstance(self.learning_rate, str):
            return "exact" if d <= _MAX_GRAM_FEATURES else "gd"
        # Below ~4096 elements X sits in L1 and a fused step is as cheap as a
        # replayed one, so the statistics pass would be pure overhead.
        if n >= d and n * d >= 4096 and d <= _MAX_GRAM_FEATURES and d <= 25 * self.max_iter:
            return "gram"
        return "gd"

    def _start(self, d, k, coef_init, intercept_init):
        """Starting (W (d, k), b (k)) in model space."""
        if coef_init is None and self.warm_start and hasattr(self, "coef_"):
            coef_init = self.coef_
            if intercept_init is None and self.fit_intercept:
                intercept_init = self.intercept_
        if coef_init is None and self.init == "random":
            rng = check_random_state(self.random_state)
            W = rng.standard_normal((d, k))
            b = rng.standard_normal(k) if self.fit_intercept else np.zeros(k)
        else:
            W, b = np.zeros((d, k)), np.zeros(k)
        if coef_init is not None:
            c0 = np.array(coef_init, dtype=np.float64)
            if c0.shape == (d,) and k == 1:
                c0 = c0.reshape(1, d)
            if c0.shape != (k, d) or not np.isfinite(c0).all():
                raise ValueError(
                    f"coef_init must be finite with shape ({d},) for 1-D y or ({k}, {d}) "
                    f"(like coef_); got shape {c0.shape}."
                )
            W = np.ascontiguousarray(c0.T)
        if intercept_init is not None:
            if not self.fit_intercept:
                raise ValueError("intercept_init was given but fit_intercept=False.")
            i0 = np.array(intercept_init, dtype=np.float64).reshape(-1)
            if i0.shape == (1,):
                i0 = np.repeat(i0, k)
            if i0.shape != (k,) or not np.isfinite(i0).all():
                raise ValueError(
                    f"intercept_init must be a finite scalar or have shape ({k},); "
                    f"got shape {np.shape(intercept_init)}."
                )
            b = i0
        return W, b

    def _standardisation(self, X, sw, stats):
        """(shift, scale) of the standardised problem for learning_rate="auto"
        (None, None for a float step: plain descent on the model itself)."""
        if not isinstance(self.learning_rate, str):
            return None, None
        if stats is not None:
            mean, var = stats.mean_x, np.diag(stats.Cxx) / stats.weight_sum
        else:
            _, mean, var = _backend.column_moments(X, sw, n_jobs=self.n_jobs)
            if not (np.isfinite(mean).all() and np.isfinite(var).all()):
                _require_finite(X)  # a NaN/inf in X (when the fast path skipped it)
                raise ValueError(_OVERFLOW)
        if self.fit_intercept:
            shift, spread = mean, np.sqrt(var)
        else:
            shift, spread = None, np.sqrt(var + mean * mean)
        return shift, np.where(spread > 0, spread, 1.0)

    def _curvature(self, X, sw, wsum, stats, shift, scale):
        """L: the largest Hessian eigenvalue of the standardised mean loss."""
        common = dict(alpha=self.alpha, fit_intercept=self.fit_intercept, shift=shift,
                      scale=scale, n_jobs=self.n_jobs)
        if stats is not None:
            return _backend.hessian_norm_gram(stats, **common)
        return _backend.hessian_norm_stream(X, sample_weight=sw, weight_sum=wsum, **common)

    def _descend(self, solver, X, Y, sw, wsum, stats, W0, b0):
        k = W0.shape[1]
        shift, scale = self._standardisation(X, sw, stats)
        if scale is not None:
            L = self._curvature(X, sw, wsum, stats, shift, scale)
            lr = 1.0 / L if L > 0 else 1.0
        else:
            lr = float(self.learning_rate)
        V, c = _to_descended(W0, b0, shift, scale, self.fit_intercept)
        tol = -1.0 if self.tol is None else float(self.tol)
        common = dict(
            max_iter=self.max_iter, learning_rate=lr, tol=tol, alpha=self.alpha,
            fit_intercept=self.fit_intercept, shift=shift, scale=scale, n_jobs=self.n_jobs,
        )
        if solver == "gram":
            n_iter, status, _, _, last, curve = _backend.descend_gram(stats, V, c, **common)
        else:
            n_iter, status, _, _, last, curve = _backend.descend_stream(
                X, Y, V, c, sample_weight=sw, weight_sum=wsum, **common
            )
        if status == _STATUS_DIVERGED:
            raise self._divergence_error(X, Y, sw, stats, lr, n_iter, last)
        if self.tol is not None and status != _STATUS_CONVERGED:
            warnings.warn(
                f"Gradient descent reached max_iter={self.max_iter} before the gradient norm "
                f"fell to tol={self.tol} times its start. Increase max_iter, or use "
                "solver='exact' for the least-squares optimum.",
                ConvergenceWarning,
                stacklevel=4,  # the caller of fit()
            )
        W, b = _to_model(V, c, shift, scale, self.fit_intercept)
        result = _FitResult(solver, W, b, n_iter, curve.copy(), lr)
        result.stream = _StreamState(solver, k)
        return result

    def _run_sgd(self, X, Y, sw, wsum, state, *, epochs, W0, b0):
        """Epochs of mini-batch SGD from ``state`` (a previous partial_fit's) or
        from (W0, b0)."""
        n, d = X.shape
        k = Y.shape[1]
        if state is None:
            shift, scale = self._standardisation(X, sw, None)
            if scale is not None:
                L = self._curvature(X, sw, wsum, None, shift, scale)
                eta0 = 1.0 / (L + (d + 1) / min(self.batch_size, n))
            else:
                eta0 = float(self.learning_rate)
            if W0 is None:
                W0, b0 = self._start(d, k, None, None)
            V, c = _to_descended(W0, b0, shift, scale, self.fit_intercept)
            seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
            state = _SgdState(V, c, shift, scale, eta0, seed)
        V, c = state.V.copy(), state.c.copy()  # the kernel updates in place
        n_epochs, status, best, no_imp, ref, curve = _backend.descend_sgd(
            X, Y, V, c, sample_weight=sw, weight_sum=wsum, max_epochs=epochs,
            batch_size=self.batch_size, shuffle=self.shuffle, seed=state.seed, eta0=state.eta0,
            power_t=_SGD_POWER_T, epoch_offset=state.epochs, alpha=self.alpha,
            tol=-1.0 if self.tol is None else float(self.tol),
            n_iter_no_change=self.n_iter_no_change, best_loss=state.best_loss,
            no_improvement=state.no_improvement, ref_loss=state.ref_loss,
            fit_intercept=self.fit_intercept,
            shift=state.shift, scale=state.scale,
        )
        if status == _STATUS_DIVERGED:
            raise self._divergence_error(X, Y, sw, None, state.eta0, state.epochs + n_epochs,
                                         np.inf, what="epoch")
        if epochs > 1 and self.tol is not None and status != _STATUS_CONVERGED:
            warnings.warn(
                f"SGD ran max_iter={self.max_iter} epochs without {self.n_iter_no_change} "
                f"epochs in a row failing to improve the loss by tol={self.tol} times the "
                "first epoch's loss. Increase max_iter, or use solver='exact' for the "
                "least-squares optimum.",
                ConvergenceWarning,
                stacklevel=4,  # the caller of fit()
            )
        new_state = _SgdState(V, c, state.shift, state.scale, state.eta0, state.seed,
                              state.epochs + n_epochs, best, no_imp, ref)
        W, b = _to_model(V, c, state.shift, state.scale, self.fit_intercept)
        result = _FitResult("sgd", W, b, n_epochs, curve.copy(), state.eta0)
        result.stream = _StreamState("sgd", k, sgd=new_state)
        return result

    def _divergence_error(self, X, Y, sw, stats, lr, step, last_loss, what="step"):
        if stats is None:
            stats = SufficientStats.from_arrays(X, Y, sw, n_jobs=self.n_jobs)
        if not stats.is_finite():
            _require_finite(X)  # a NaN/inf in X, not the step, is to blame
            raise ValueError(_OVERFLOW)
        L = _plain_gd_lipschitz(stats, self.alpha, self.fit_intercept)
        safe = 2.0 / L if L > 0 else None
        how = "became non-finite" if not np.isfinite(last_loss) else "grew without bound"
        hint = f"the largest safe step for this data is 2/L = {safe:.6g}; " if safe else ""
        return DivergenceError(
            f"Gradient descent diverged at {what} {step}: the loss {how} with "
            f"learning_rate={lr:.6g}. The step is too large for this data: {hint}"
            "use learning_rate='auto' (a safe step chosen from the data) or a smaller value.",
            learning_rate=lr,
            max_safe_learning_rate=safe,
            step=step,
        )

    # -------------------------------------------------------------- predict
    def predict(self, X):
        """Predict with the linear model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_targets)
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        coef = np.atleast_2d(self.coef_)
        intercept = np.atleast_1d(np.asarray(self.intercept_, dtype=np.float64))
        P = _backend.linear_predict(X, coef.T, intercept, n_jobs=self.n_jobs)
        return P[:, 0] if np.ndim(self.coef_) == 1 else P

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


_SGD_POWER_T = 0.5  # eta_e = eta0 / (1 + e)^0.5


class _FitResult:
    """What a solver produced, before any of it is stored on the estimator."""

    def __init__(self, solver, W, b, n_iter, curve, learning_rate):
        self.solver, self.W, self.b = solver, W, b
        self.n_iter, self.curve, self.learning_rate = n_iter, curve, learning_rate
        self.stream = None


class _SgdState:
    """SGD's iterate and schedule between partial_fit calls."""

    def __init__(self, V, c, shift, scale, eta0, seed, epochs=0, best_loss=np.inf,
                 no_improvement=0, ref_loss=0.0):
        self.V, self.c, self.shift, self.scale = V, c, shift, scale
        self.eta0, self.seed, self.epochs = eta0, seed, epochs
        self.best_loss, self.no_improvement, self.ref_loss = best_loss, no_improvement, ref_loss


class _StreamState:
    """What partial_fit continues from: the statistics so far, or SGD's state."""

    def __init__(self, solver, n_targets, stats=None, sgd=None):
        self.solver, self.n_targets, self.stats, self.sgd = solver, n_targets, stats, sgd
        self.y_is_1d = True


@contextlib.contextmanager
def _restore_on_error(estimator):
    """Leave the estimator exactly as it was if fitting raises (including
    KeyboardInterrupt): attributes are only ever replaced, never mutated."""
    saved = dict(estimator.__dict__)
    try:
        yield
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(saved)
        raise


def _require_finite(X):
    """Raise scikit-learn's ValueError if X holds a NaN or an infinity."""
    assert_all_finite(X, input_name="X")


def _to_descended(W, b, shift, scale, fit_intercept):
    """Model (W (d, k), b (k)) -> descended (V, c): V = W * scale, c = b + shift . W."""
    V = np.ascontiguousarray(W * scale[:, None]) if scale is not None else W.copy()
    c = b + shift @ W if shift is not None else b.copy()
    if not fit_intercept:
        c = np.zeros_like(b)
    return V, np.ascontiguousarray(c, dtype=np.float64)


def _to_model(V, c, shift, scale, fit_intercept):
    """Descended (V, c) -> model (W, b); the inverse of :func:`_to_descended`."""
    W = V / scale[:, None] if scale is not None else V.copy()
    b = c - shift @ W if shift is not None else c.copy()
    if not fit_intercept:
        b = np.zeros_like(c)
    return W, b


def _plain_gd_lipschitz(stats: SufficientStats, alpha: float, fit_intercept: bool) -> float:
    """Largest eigenvalue of the Hessian of the mean loss in (coef, intercept)
    for plain (unstandardised) gradient descent."""
    d = stats.n_features
    H = np.empty((d + 1, d + 1)) if fit_intercept else np.empty((d, d))
    H[:d, :d] = stats.raw_xtx() / stats.weight_sum + alpha * np.eye(d)
    if fit_intercept:
        H[:d, d] = H[d, :d] = stats.mean_x
        H[d, d] = 1.0
    return float(np.linalg.eigvalsh(H)[-1]) if H.size else 0.0
