"""scikit-learn-style linear models fitted by fastlinreg's kernels.

An estimator is its parameters, their validation and the learned
attributes: the strategies live in fastlinreg.solvers, the work in
fastlinreg.backends.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils._available_if import available_if
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from . import solvers
from ._estimator_inference import InferenceMixin
from ._losses import SQUARED
from ._validation import (
    KERNEL_DTYPES,
    SPARSE_FORMATS,
    check_alpha,
    check_params,
    check_start,
    first_model,
    restore_on_error,
    rows_problem,
    validate_for,
)
from .backends import get_backend
from .inference import COV_TYPES

__all__ = ["LinearRegression"]


class LinearRegression(InferenceMixin, RegressorMixin, BaseEstimator):
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
          optimum, so ``"exact"`` (``"gd"`` above 4096 features, dense or
          sparse: the d x d statistics would outgrow a sparse X). With a float
          ``learning_rate`` the documented result is that step's GD trajectory,
          so ``"gram"`` when ``n_samples >= n_features``, X has at least 4096
          elements (smaller ones stay in L1 cache, where a fused step costs no
          more than a replayed one) and the one-off d² statistics are cheaper
          than the steps (``n_features <= 25 * max_iter``), else ``"gd"``
          (the tutorial's 16 points: ``"gd"``, its trajectory computed in
          closed form from the statistics). The choice is stored in ``solver_``.
    learning_rate : "auto" or float, default="auto"
        Gradient-descent step. A float runs plain gradient descent on (coef,
        intercept): exactly the tutorial's iterates. ``"auto"`` runs gradient
        descent on the centred, column-scaled problem (folded into the kernel's
        arithmetic; X is not copied) with step ``1/L``, L the largest Hessian
        eigenvalue bounded from above by 10 Lanczos passes: the loss then decreases
        monotonically whatever the column scales. The step used is stored in
        ``learning_rate_``.
    max_iter : int, default=1000
        Number of gradient-descent steps (epochs for ``"sgd"``) at most, up to
        2**28 (the loss curve is allocated for them up front).
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
    alpha : float or array-like of shape (n_targets,), default=0.0
        L2 penalty strength (ridge), scaled as in the objective above; an
        array gives each target its own (scikit-learn's Ridge takes
        ``alpha * sum(w)``, i.e. ``n * alpha`` unweighted). With an array the
        automatic step follows the largest.
    init : {"zeros", "random"}, default="zeros"
        Starting coefficients when ``fit`` gets none: zeros, or standard normal
        draws from ``random_state`` (the tutorial's ``rng.randn()``).
    warm_start : bool, default=False
        Start from the previous fit's coefficients (and, on the same rows,
        its automatic step: see fastlinreg.solvers._curvature).
    positive : bool, default=False
        Constrain the coefficients to be non-negative (the intercept stays
        free). ``"exact"`` solves the constrained least squares with an
        active-set NNLS (scipy.optimize.nnls) on the statistics; ``"gd"``,
        ``"gram"`` and ``"sgd"`` project onto ``coef >= 0`` after each step
        (their ``tol`` then tests the projected gradient).

    n_jobs : int or None, default=None
        Threads. ``None`` follows OpenMP's default (``OMP_NUM_THREADS`` and
        threadpoolctl's limits); ``-1`` uses every core. The result is bitwise
        the same for any thread count. Where other processes hold cores and
        the threads of a gradient-descent fit arrive late, it runs spells of
        steps on one thread instead.
    random_state : int, RandomState instance or None, default=None
        Seeds ``init="random"`` and SGD's row order.
    backend : str, default="auto"
        Where the work runs: ``"auto"`` (the compiled CPU kernels; ``"dask"``
        when X is a dask array or DataFrame) or a name from
        :func:`fastlinreg.available_backends`, such as ``"cpu"`` or
        ``"reference"`` (plain numpy, the tests' oracle). A backend that
        cannot run here raises a ValueError that says why.
    cov_type : {"nonrobust", "HC0", "HC1", "HC2", "HC3"}, default="nonrobust"
        The coefficients' covariance in :meth:`summary` and :meth:`conf_int`
        (see :mod:`fastlinreg.inference`). The HC ones make ``fit`` take a
        second pass over X; after ``partial_fit``, call :meth:`robust_pass`.
    verbose : int, default=0
        1: a descent fit (``"gd"``, ``"gram"``, ``"sgd"``) that runs longer
        than 2 s shows its step, loss and rate on stderr (a tqdm bar when
        tqdm is installed), reported from the C++ loop's periodic check.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,) or (n_targets, n_features)
        (n_targets, n_features) whenever y is 2-D, (1, n_features) for y of
        shape (n, 1), as scikit-learn; X's float dtype (float32 X, float32
        coefficients: the solvers work in float64 and round at the end).
    intercept_ : float or ndarray of shape (n_targets,)
        A scalar of X's dtype for 1-D y, else (n_targets,).
    n_iter_ : int
        Gradient-descent steps taken (1 for ``"exact"``: one pass, one solve).
    loss_curve_ : ndarray of shape (n_iter_,)
        The cost at each step, evaluated before that step's update (the
        tutorial's printed ``costM``); for ``"exact"``, the cost at the optimum.
    learning_rate_ : float or None
        The step used (``None`` for ``"exact"``).
    solver_ : str
        The solver that ran.
    backend_ : str
        The backend that ran it.
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
        # The loss curve is allocated for max_iter steps up front: 2**28 is 2 GiB.
        "max_iter": [Interval(numbers.Integral, 1, 2**28, closed="both")],
        "tol": [Interval(numbers.Real, 0, None, closed="left"), None],
        "alpha": [Interval(numbers.Real, 0, None, closed="left"), "array-like"],
        "positive": ["boolean"],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "init": [StrOptions({"zeros", "random"})],
        "warm_start": ["boolean"],
        "n_jobs": [numbers.Integral, None],
        "random_state": ["random_state"],
        "backend": [str],
        "cov_type": [StrOptions(set(COV_TYPES))],
        "verbose": ["verbose"],
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
        backend="auto",
        cov_type="nonrobust",
        verbose=0,
        positive=False,
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
        self.backend = backend
        self.cov_type = cov_type
        self.verbose = verbose
        self.positive = positive

    def fit(self, X, y, sample_weight=None, coef_init=None, intercept_init=None):
        """Fit the model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            float32 X stays float32 in memory; a C-contiguous float32/float64 X
            is never copied. scipy.sparse CSR (matrix or array) is read in
            place and never densified; CSC and other formats are converted
            to CSR once (a copy of the index structure and values).
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
        with restore_on_error(self):
            check_params(self)
            backend = get_backend(self.backend, data=X)
            X, y = validate_for(backend)(self, X, y)
            problem = rows_problem(backend, X, y, sample_weight, SQUARED, self.n_jobs)
            previous = getattr(self, "_stream", None) if self.warm_start else None
            if coef_init is None and self.warm_start and hasattr(self, "coef_"):
                coef_init = self.coef_
                if intercept_init is None and self.fit_intercept:
                    intercept_init = self.intercept_
            d, k = problem.X.shape[1], problem.Y.shape[1]
            W0, b0 = check_start(
                coef_init,
                intercept_init,
                *first_model(self, d, k, random=coef_init is None),
                self.fit_intercept,
            )
            result = solvers.fit(self._settings(k), backend, problem, W0, b0, previous)
            self._store(result, backend, y.ndim == 1, problem.X.dtype)
            self._robust_after_fit(problem)
            return self

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
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            The same number of targets in every call.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : LinearRegression
        """
        with restore_on_error(self):
            check_params(self)
            stream = getattr(self, "_stream", None)
            backend = get_backend(self.backend, data=X)
            X, y = validate_for(backend)(self, X, y, reset=stream is None)
            if stream is not None and stream.y_is_1d != (y.ndim == 1):
                raise ValueError(
                    f"partial_fit got its target(s) as a {y.ndim}-D y, but the model so far "
                    f"was fitted on a {2 if stream.y_is_1d else 1}-D y. Keep y's shape fixed "
                    "across calls, or call fit() to start over."
                )
            problem = rows_problem(backend, X, y, sample_weight, SQUARED, self.n_jobs)
            settings = self._settings(problem.Y.shape[1])
            result = solvers.partial_fit(settings, backend, problem, stream)
            self._store(result, backend, y.ndim == 1, problem.X.dtype)
            return self

    def predict(self, X):
        """Predict with the linear model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_targets)
            In X's float dtype (accumulated in float64).
        """
        check_is_fitted(self)
        backend = get_backend("auto" if self.backend == "auto" else self.backend_, data=X)
        if hasattr(backend, "validate_predict_data"):  # rows that stay where they are (dask)
            X = backend.validate_predict_data(self, X)
        else:
            X = validate_data(
                self, X, dtype=list(KERNEL_DTYPES), accept_sparse=SPARSE_FORMATS, reset=False
            )
        coef = np.atleast_2d(self.coef_)
        intercept = np.atleast_1d(np.asarray(self.intercept_, dtype=np.float64))
        P = backend.predict(X, coef.T, intercept, self.n_jobs)
        P = P.astype(X.dtype, copy=False)
        return P[:, 0] if np.ndim(self.coef_) == 1 else P

    def save(self, path) -> None:
        """Write the fitted model to ``path``: a documented zip of JSON and
        ``.npy`` members, no pickle (see :mod:`fastlinreg.model_file`);
        :func:`fastlinreg.load` reads it back bit for bit."""
        from .model_file import save

        save(self, path)

    def _settings(self, n_targets: int) -> solvers.Settings:
        return solvers.Settings(
            self.solver,
            self.learning_rate,
            self.max_iter,
            self.tol,
            check_alpha(self.alpha, n_targets),
            self.fit_intercept,
            self.batch_size,
            self.shuffle,
            self.n_iter_no_change,
            self.random_state,
            self.n_jobs,
            self.verbose,
            self.positive,
        )

    def _store(self, r: solvers.FitResult, backend, y_is_1d: bool, dtype):
        # Attributes follow X's float dtype, as scikit-learn's do; the solvers
        # work in float64 throughout. A model beyond float32's range stays
        # float64 rather than become inf.
        W, b = r.W, r.b
        if dtype != np.float64:
            big = np.finfo(dtype).max
            if np.all(np.abs(W) <= big) and np.all(np.abs(b) <= big):
                W, b = W.astype(dtype), b.astype(dtype)
        self.coef_ = W[:, 0].copy() if y_is_1d else np.array(W.T, order="C")
        self.intercept_ = b[0] if y_is_1d else b.copy()
        self.n_iter_ = int(r.n_iter)
        self.loss_curve_ = r.curve
        self.learning_rate_ = r.learning_rate
        self.solver_ = r.solver
        self.backend_ = backend.NAME
        r.stream.y_is_1d = y_is_1d
        self._stream = r.stream
        self._robust = None

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.input_tags.sparse = True
        return tags
