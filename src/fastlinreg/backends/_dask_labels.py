"""A classifier's labels held in dask: the classes and their (weighted)
counts summarised on the workers in one small pass, the targets Y and the
class-weighted sample weights made lazily block by block, and the
prediction methods' per-block maps. Neither X nor y comes to the client.

Imported only by logistic.py for dask input, once dask is known to be installed.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import DataConversionWarning
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets

try:  # only used once backends/dask.py has found dask installed
    import dask
    import dask.array as da
except ImportError:
    pass

from .._losses import LOGISTIC, SOFTMAX
from . import _dask_rows as rows
from . import dask as dask_backend
from ._protocol import Problem


def fit_problem(estimator, X, y, sample_weight, classes=None, *, reset=True):
    """(Problem, classes) of a classifier's dask rows, as logistic.py's
    ``_problem`` makes them in memory.

    ``classes`` None: the classes found in y (fit); else the stream's classes
    (partial_fit), which must hold every label of y. ``estimator`` gives
    ``class_weight`` and ``n_jobs``, and gets ``n_features_in_`` (``reset``).
    One pass over y and the weights on the workers, returning per-class
    counts; X is not read.
    """
    X = dask_backend.validate_rows(estimator, X, reset=reset)
    n, chunks = X.shape[0], X.chunks[0]
    labels = label_array(y, n, chunks)
    sw = None
    if sample_weight is not None:
        sw = rows.aligned(rows.numeric_array(sample_weight, "sample_weight"), chunks)
        if sw.ndim != 1 or sw.shape[0] != n:
            raise ValueError(f"sample_weight must have shape ({n},); got {sw.shape}.")
    summary = rows.Rows(labels, None, sw, 0.0, "", None).map_reduce(block_labels, merge_labels)
    found, counts, totals, weight_total = summary
    classes = _classes(found, classes)
    k, where = classes.shape[0], np.searchsorted(classes, found)
    counts, totals = _per_class(k, where, counts), _per_class(k, where, totals)
    cw = None
    if estimator.class_weight is not None:
        cw = class_weights(estimator.class_weight, classes, counts, totals, weight_total)
    per_class = (counts if totals is None else totals) * (1.0 if cw is None else cw)
    weighted = sw is not None or cw is not None
    if weighted and not per_class.sum() > 0:
        raise ValueError("sample_weight sums to zero: at least one sample needs a positive weight.")
    if weighted and np.count_nonzero(per_class) < 2:
        raise ValueError(
            "Only one class has samples of positive weight: a classifier needs at least 2 "
            "classes. Give samples of another class a positive sample_weight."
        )
    if cw is not None:
        weights = [] if sw is None else [sw]
        sw = da.map_blocks(_weigh, labels, *weights, classes=classes, cw=cw, dtype=np.float64)
        weight_total = float(sw.sum().compute())  # as in memory: the weighted rows' sum
    elif sw is None:
        weight_total = float(n)
    width = 1 if k == 2 else k
    Y = labels.map_blocks(
        _targets, classes=classes, dtype=np.float64, chunks=(chunks, (width,)), new_axis=1
    )
    loss = LOGISTIC if k == 2 else SOFTMAX
    return Problem(X, Y, sw, float(weight_total), loss, estimator.n_jobs), classes


def label_array(y, n: int, chunks):
    """y as a 1-D dask array of labels (any dtype) with the row ``chunks``."""
    if rows.is_dataframe(y):
        if not isinstance(getattr(y, "dtype", None), (np.dtype, type(None))):
            y = y.astype(object)  # pandas' strings and categories as numpy labels
        y = y.to_dask_array(lengths=True)
    elif not isinstance(y, da.Array):
        y = np.asarray(y)  # already on the client
        if y.ndim == 0 or y.shape[0] != n:
            raise ValueError(f"y must have shape ({n},); got {y.shape}.")
        y = da.from_array(y, chunks=(chunks,) + y.shape[1:])
    if any(np.isnan(c) for c in y.chunks[0]):
        y = y.compute_chunk_sizes()
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected. Please change the "
            "shape of y to (n_samples,), for example using ravel().",
            DataConversionWarning,
            stacklevel=4,
        )
        y = y[:, 0]
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"y must have shape ({n},); got {y.shape}.")
    return y.rechunk((chunks,))


def _classes(found, classes):
    """The fit's classes: ``found`` when ``classes`` is None, after scikit-learn's
    check of the target type (its verdict on y's distinct values is y's)."""
    if found.dtype.kind == "f" and not np.isfinite(found).all():
        raise ValueError("Input y contains NaN or infinity. Remove or impute those values.")
    check_classification_targets(found)
    if classes is None:
        classes = found
        if classes.shape[0] < 2:
            raise ValueError(
                "This solver needs samples of at least 2 classes in the data, but the data "
                f"contains only one class: {classes[0]!r}."
            )
    unseen = np.setdiff1d(found, classes)
    if unseen.size:
        raise ValueError(f"y holds labels {unseen!r} not in classes {classes!r}.")
    return classes


def _per_class(k, where, values):
    if values is None:
        return None
    out = np.zeros(k)
    out[where] = values
    return out


def class_weights(class_weight, classes, counts, totals, weight_total):
    """Each class's weight from its count (and, with sample weights, its total
    weight): logistic.py's ``_class_weights`` from the summary."""
    k = classes.shape[0]
    if isinstance(class_weight, str):  # "balanced"
        if not (counts > 0).all():
            raise ValueError("classes should have valid labels that are in y")  # scikit-learn's
        with np.errstate(divide="ignore"):
            cw = counts.sum() / (k * counts) if totals is None else weight_total / (k * totals)
    else:
        cw = compute_class_weight(class_weight, classes=classes, y=classes)
    if not (np.isfinite(cw).all() and (cw >= 0).all()):
        raise ValueError(
            f"class_weight gives the classes the weights {cw!r}: each must be finite and "
            "non-negative (a class whose samples all have zero sample_weight cannot be "
            "'balanced')."
        )
    return cw


def block_labels(index, start, y, _, w):
    """(distinct labels, their counts, their weight totals or None, weight sum) of a block."""
    if y.shape[0] == 0:
        return None
    values, inverse = np.unique(y, return_inverse=True)
    counts = np.bincount(inverse, minlength=values.shape[0])
    if w is None:
        return values, counts, None, 0.0
    if not (np.isfinite(w).all() and (w >= 0).all()):
        raise ValueError(
            f"sample_weight must be finite and non-negative; block {index} (rows {start} to "
            f"{start + y.shape[0] - 1}) holds other values."
        )
    # Each class's total as logistic.py's _class_weights sums it (one block: the same bits)
    totals = np.array([w[inverse == j].sum() for j in range(values.shape[0])])
    return values, counts, totals, float(np.sum(w))


def merge_labels(*parts):
    """The blocks' summaries as one, in block order."""
    parts = [p for p in parts if p is not None]
    if len(parts) <= 1:
        return parts[0] if parts else None
    values, inverse = np.unique(np.concatenate([p[0] for p in parts]), return_inverse=True)
    m = values.shape[0]
    counts = np.bincount(inverse, np.concatenate([p[1] for p in parts]), m).astype(np.int64)
    totals, weight_total = None, parts[0][3]
    if parts[0][2] is not None:
        totals = np.bincount(inverse, np.concatenate([p[2] for p in parts]), m)
        for p in parts[1:]:
            weight_total += p[3]
    return values, counts, totals, weight_total


def _weigh(y, *w, classes, cw):
    """A block's sample weights times its labels' class weights."""
    per_row = cw[np.searchsorted(classes, y)]
    return w[0] * per_row if w else per_row


def _targets(y, classes):
    """A block's Y: 1 for the second class (two classes), else one-hot rows."""
    codes = np.searchsorted(classes, y)
    k = classes.shape[0]
    return (codes == 1).astype(np.float64)[:, None] if k == 2 else np.eye(k)[codes]


def block_separated(index, start, X, Y, w, W, b, n_jobs):
    """Whether the model puts each row of this block of positive weight on its class's side."""
    from ..solvers.objective import separated

    return None if X.shape[0] == 0 else separated(rows.block_predict(X, W, b, n_jobs), Y, w)


def all_of(*parts) -> bool:
    return all(p for p in parts if p is not None)


def map_rows(z, fn, width=None, dtype=np.float64):
    """``fn`` of each block of decision values z ((n,) or (n, k)), lazily:
    (n, width) out, or (n,) for ``width`` None."""
    if width is None:
        return (
            z.map_blocks(fn, dtype=dtype, drop_axis=1)
            if z.ndim == 2
            else z.map_blocks(fn, dtype=dtype)
        )
    extra = {"new_axis": 1} if z.ndim == 1 else {}
    return z.map_blocks(fn, dtype=dtype, chunks=(z.chunks[0], (width,)), **extra)


def accuracy(predicted, y, sample_weight=None) -> float:
    """The (weighted) share of rows whose predicted label is y's, summed on the workers."""
    n, chunks = predicted.shape[0], predicted.chunks[0]
    hits = (predicted == label_array(y, n, chunks)).astype(np.float64)
    if sample_weight is None:
        return float(hits.mean().compute())
    w = rows.aligned(rows.numeric_array(sample_weight, "sample_weight"), chunks)
    num, den = dask.compute((hits * w).sum(), w.sum())
    return float(num / den)
