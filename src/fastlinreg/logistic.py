"""Logistic regression on the fused kernels: binary (sigmoid) and
multinomial (softmax), a drop-in for scikit-learn's LogisticRegression."""

from __future__ import annotations

import functools
import numbers

import numpy as np
from scipy.special import expit, log_expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils._available_if import available_if
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from . import solvers
from ._losses import LOGISTIC, SOFTMAX
from ._validation import KERNEL_DTYPES, check_params, check_weights, restore_on_error
from .backends import Problem, _is_dask_collection, get_backend

__all__ = ["LogisticRegression"]


class LogisticRegression(ClassifierMixin, BaseEstimator):
    """Logistic regression, binary or multinomial, by the fused C++ kernels.

    Minimises scikit-learn's objective::

        C · sum_i w_i · logloss_i + 1/2 ||coef||²

    (the intercept is not penalised; no second term with ``penalty=None``).
    Internally the solvers minimise the same objective divided by
    ``C · sum_i w_i``: the weighted mean loss plus ``alpha/2 ||coef||²`` with
    ``alpha = 1 / (C · sum_i w_i)``, the form the fused pass computes. Two
    classes fit the sigmoid model, more the softmax (multinomial) one.

    Parameters
    ----------
    penalty : {"l2", None}, default="l2"
    tol : float or None, default=1e-4
        ``None``: no tolerance; run ``max_iter`` iterations (``"lbfgs"`` and
        ``"newton"`` stop earlier only when no further progress is possible).
        ``"lbfgs"``: scikit-learn's gtol on the scaled objective; ``"newton"``:
        stop when the largest gradient component is at most ``tol``;
        ``"gd"``: when the gradient norm falls to ``tol`` times its start;
        ``"sgd"``: scikit-learn's no-improvement rule (LinearRegression's).
    C : float, default=1.0
        Inverse penalty strength, as in scikit-learn.
    fit_intercept : bool, default=True
    class_weight : dict, "balanced" or None, default=None
        Weights per class, multiplied into ``sample_weight``.
    random_state : int, RandomState instance or None, default=None
        Seeds ``"sgd"``'s row order.
    solver : {"auto", "lbfgs", "newton", "gd", "sgd"}, default="auto"
        - ``"lbfgs"``: scipy's L-BFGS-B, one fused pass over X per evaluation.
          A binary L2 fit of many rows (every 10th row at least 5000, and 500
          per parameter) starts from L-BFGS on every 10th row, preconditioned
          by that subsample's Hessian; the stopping rule is the same.
        - ``"newton"``: Newton's method with the full Hessian (IRLS) and a
          backtracking line search; each iteration reads X twice (the fused
          pass and the weighted Gram XᵀDX).
        - ``"gd"``: gradient descent on the standardised problem with step 1/L,
          L from the loss's curvature bound (1/4 sigmoid, 1/2 softmax).
        - ``"sgd"``: mini-batch SGD (256 rows), reproducible for a fixed
          ``random_state``; ``max_iter`` counts epochs; ``partial_fit``.
        - ``"auto"``: ``"newton"`` when the model has at most 100 parameters,
          ``(n_features + 1) · k <= 100`` (k = 1 for two classes, else the
          number of classes): its Hessian is then cheap to form and solve and
          it converges in a few passes; else ``"lbfgs"``.
    max_iter : int, default=100
    warm_start : bool, default=False
        Start from the previous fit's coefficients when the shapes agree.
    n_jobs : int or None, default=None
        Threads; the result is bitwise the same for any count.
    backend : str, default="auto"
        Where the work runs (see :func:`fastlinreg.available_backends`).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
    intercept_ : ndarray of shape (1,) or (n_classes,)
    n_iter_ : ndarray of shape (1,)
        Iterations (epochs for ``"sgd"``).
    loss_curve_ : ndarray of shape (n_iter_[0],)
        The scaled objective after each iteration.
    solver_ : str
    backend_ : str
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)

    Examples
    --------
    >>> import numpy as np
    >>> from fastlinreg import LogisticRegression
    >>> X = np.array([[80.0], [90.0], [95.0], [105.0], [110.0], [120.0]])
    >>> model = LogisticRegression(C=10.0).fit(X - 100, [0, 0, 1, 0, 1, 1])
    >>> model.predict([[-30.0], [30.0]])
    array([0, 1])
    >>> float(model.predict_proba([[0.0]]).sum().round(12))
    1.0
    """

    _parameter_constraints: dict = {
        "penalty": [StrOptions({"l2"}), None],
        "tol": [Interval(numbers.Real, 0, None, closed="left"), None],
        "C": [Interval(numbers.Real, 0, None, closed="neither")],
        "fit_intercept": ["boolean"],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "random_state": ["random_state"],
        "solver": [StrOptions({"auto", "lbfgs", "newton", "gd", "sgd"})],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "warm_start": ["boolean"],
        "n_jobs": [numbers.Integral, None],
        "backend": [str],
    }

    def __init__(
        self,
        penalty="l2",
        *,
        tol=1e-4,
        C=1.0,
        fit_intercept=True,
        class_weight=None,
        random_state=None,
        solver="auto",
        max_iter=100,
        warm_start=False,
        n_jobs=None,
        backend="auto",
    ):
        self.penalty = penalty
        self.tol = tol
        self.C = C
        self.fit_intercept = fit_intercept
        self.class_weight = class_weight
        self.random_state = random_state
        self.solver = solver
        self.max_iter = max_iter
        self.warm_start = warm_start
        self.n_jobs = n_jobs
        self.backend = backend

    def fit(self, X, y, sample_weight=None):
        """Fit the model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            float32 stays float32; a C-contiguous float32/float64 X is not copied.
        y : array-like of shape (n_samples,)
            Labels of any kind (ints, strings, booleans); at least two classes.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : LogisticRegression
            If fitting raises, the estimator is left as it was.
        """
        with restore_on_error(self):
            check_params(self)
            backend = get_backend(self.backend, data=X)
            if _on_workers(backend, X):  # dask: labels summarised where the rows are
                problem, classes = _dask_labels().fit_problem(self, X, y, sample_weight)
            else:
                X, y = validate_data(self, X, y, dtype=list(KERNEL_DTYPES))
                check_classification_targets(y)
                classes = np.unique(y)
                if classes.shape[0] < 2:
                    raise ValueError(
                        "This solver needs samples of at least 2 classes in the data, but the "
                        f"data contains only one class: {classes[0]!r}."
                    )
                problem = self._problem(backend, X, y, classes, sample_weight)
            W0, b0 = self._start(problem, classes)
            settings = self._settings(problem)
            result = solvers.fit(settings, backend, problem, W0, b0)
            self.classes_ = classes
            self._store(result, backend)
            return self

    @available_if(lambda est: est.solver == "sgd")
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch of ``"sgd"`` over a chunk of rows, continuing the last
        ``fit`` or ``partial_fit``. Only with ``solver="sgd"`` (the other
        solvers read every row at every iteration and cannot stream).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        classes : array-like of shape (n_classes,), default=None
            Every class of the whole stream: required on the first call.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : LogisticRegression
        """
        with restore_on_error(self):
            check_params(self)
            stream = getattr(self, "_stream", None)
            first = stream is None or stream.solver != "sgd"
            backend = get_backend(self.backend, data=X)
            on_workers = _on_workers(backend, X)
            if not on_workers:
                X, y = validate_data(self, X, y, dtype=list(KERNEL_DTYPES), reset=first)
                check_classification_targets(y)
            if first:
                if classes is None:
                    raise ValueError("classes must be passed on the first call to partial_fit.")
                self.classes_ = np.unique(np.asarray(classes))
                if self.classes_.shape[0] < 2:
                    raise ValueError("classes must hold at least 2 classes.")
            if on_workers:
                labels = _dask_labels()
                problem, _ = labels.fit_problem(
                    self, X, y, sample_weight, self.classes_, reset=first
                )
            else:
                unseen = np.setdiff1d(np.unique(y), self.classes_)
                if unseen.size:
                    raise ValueError(f"y holds labels {unseen!r} not in classes {self.classes_!r}.")
                problem = self._problem(backend, X, y, self.classes_, sample_weight)
            settings = self._settings(problem, "sgd")
            result = solvers.partial_fit_sgd(settings, backend, problem, None if first else stream)
            self._store(result, backend)
            return self

    def decision_function(self, X):
        """Logits: (n_samples,) for two classes, else (n_samples, n_classes).
        A dask array for dask X (lazy, block by block), as every prediction method."""
        check_is_fitted(self)
        backend = get_backend("auto" if self.backend == "auto" else self.backend_, data=X)
        if _on_workers(backend, X):
            X = backend.validate_predict_data(self, X)
        else:
            X = validate_data(self, X, dtype=list(KERNEL_DTYPES), reset=False)
        P = backend.predict(X, self.coef_.T, self.intercept_, self.n_jobs)
        return P[:, 0] if P.shape[1] == 1 else P

    def predict(self, X):
        """The most probable class of each row, (n_samples,)."""
        return self._of_logits(X, _labels, labels=True)

    def predict_proba(self, X):
        """Class probabilities, (n_samples, n_classes); rows sum to 1."""
        return self._of_logits(X, _probabilities)

    def predict_log_proba(self, X):
        """Log class probabilities, (n_samples, n_classes), finite at any margin."""
        return self._of_logits(X, _log_probabilities)

    def score(self, X, y, sample_weight=None):
        """Mean accuracy (weighted by ``sample_weight``); for dask X summed on the workers."""
        predicted = self.predict(X)
        if _is_dask_collection(predicted):
            return _dask_labels().accuracy(predicted, y, sample_weight)
        from sklearn.metrics import accuracy_score  # as ClassifierMixin.score: on first use

        return float(accuracy_score(y, predicted, sample_weight=sample_weight))

    def _of_logits(self, X, fn, labels=False):
        """``fn(logits, classes=classes_)``: (n, n_classes) floats, or (n,)
        ``labels``; block by block for dask X."""
        z = self.decision_function(X)
        fn = functools.partial(fn, classes=self.classes_)
        if _is_dask_collection(z):
            width, dtype = (None, self.classes_.dtype) if labels else (len(self.classes_), float)
            return _dask_labels().map_rows(z, fn, width, dtype)
        return fn(z)

    def _problem(self, backend, X, y, classes, sample_weight) -> Problem:
        X = backend.prepare_X(X)
        codes = np.searchsorted(classes, y)
        k = classes.shape[0]
        Y = (codes == 1).astype(np.float64)[:, None] if k == 2 else np.eye(k)[codes]
        sw, _ = check_weights(sample_weight, X)
        if self.class_weight is not None:
            # "balanced" counts classes by their sample weights, as scikit-learn does
            per_class = _class_weights(self.class_weight, classes, y, sw)
            cw = per_class[codes]
            sw, _ = check_weights(cw if sw is None else sw * cw, X)
        wsum = float(X.shape[0]) if sw is None else float(sw.sum())
        if sw is not None and np.count_nonzero(np.bincount(codes, weights=sw, minlength=k)) < 2:
            raise ValueError(
                "Only one class has samples of positive weight: a classifier needs at least 2 "
                "classes. Give samples of another class a positive sample_weight."
            )
        return Problem(X, Y, sw, wsum, LOGISTIC if k == 2 else SOFTMAX, self.n_jobs)

    def _settings(self, problem, solver=None) -> solvers.Settings:
        alpha = 0.0 if self.penalty is None else 1.0 / (self.C * problem.weight_sum)
        return solvers.Settings(
            solver or self.solver,
            "auto",
            self.max_iter,
            None
            if self.tol is None and (solver or self.solver) in ("gd", "sgd")
            else self.tol or 0.0,
            alpha,
            self.fit_intercept,
            256,
            True,
            5,
            self.random_state,
            self.n_jobs,
        )

    def _start(self, problem, classes):
        d, k = problem.X.shape[1], problem.Y.shape[1]
        W0, b0 = np.zeros((d, k)), np.zeros(k)
        if (
            self.warm_start
            and hasattr(self, "coef_")
            and self.coef_.shape == (k, d)
            and np.array_equal(self.classes_, classes)
        ):
            W0 = np.ascontiguousarray(self.coef_.T)
            b0 = self.intercept_.copy() if self.fit_intercept else b0
        return W0, b0

    def _store(self, r: solvers.FitResult, backend):
        b = r.b.copy()
        if b.shape[0] > 1 and self.fit_intercept:
            b -= b.mean()  # softmax is blind to a common shift; scikit-learn's are centred
        self.coef_ = np.ascontiguousarray(r.W.T)
        self.intercept_ = b
        self.n_iter_ = np.array([int(r.n_iter)])
        self.loss_curve_ = r.curve
        self.solver_ = r.solver
        self.backend_ = backend.NAME
        self._stream = r.stream


def _labels(z, classes):
    return classes[(z > 0).astype(np.intp) if z.ndim == 1 else z.argmax(axis=1)]


def _probabilities(z, classes=None):
    if z.ndim == 1:
        p1 = expit(z)
        return np.column_stack([1.0 - p1, p1])
    E = np.exp(z - z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def _log_probabilities(z, classes=None):
    if z.ndim == 1:
        return np.column_stack([log_expit(-z), log_expit(z)])
    m = z.max(axis=1, keepdims=True)
    return z - (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))


def _on_workers(backend, data) -> bool:
    """Whether ``data`` is a dask collection that the dask backend leaves where it is."""
    return backend.NAME == "dask" and _is_dask_collection(data)


def _dask_labels():
    from .backends import _dask_labels  # imports dask: only for dask input

    return _dask_labels


def _class_weights(class_weight, classes, y, sw):
    """compute_class_weight with "balanced" counting classes by sample weight
    (scikit-learn >= 1.7 does; older ones take no sample_weight)."""
    if isinstance(class_weight, str) and sw is not None:
        totals = np.array([sw[y == c].sum() for c in classes])
        return sw.sum() / (len(classes) * totals)
    return compute_class_weight(class_weight, classes=classes, y=y)
