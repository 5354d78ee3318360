"""Input checks and host/device plumbing for every estimator, in one place.

Host input is checked by scikit-learn (``validate_data``,
``_check_sample_weight``); CuPy input is checked on the device for a GPU
backend, with scikit-learn's messages, so nothing of size n leaves the
device. The checked arrays are then standardised and moved, once, into the
namespace of the fit's kernel bundle: the solvers see them as
:class:`mixexp._rows.InMemoryRows`, or as :class:`mixexp._rows.TrainingData` where a
whole standardised copy is needed.
"""

import math
from numbers import Number

import numpy as np
from sklearn.utils.validation import _check_sample_weight, _check_y, check_is_fitted, validate_data

from ._backend import (
    array_namespace,
    in_namespace,
    is_device_array,
    resolve_backend,
    to_host,
)
from ._rows import InMemoryRows, row_blocks

# Input dtypes kept as they are (anything else becomes float64): float32 input
# stays float32 in X, Y and the (n, K) buffers; parameters stay float64.
FLOAT_DTYPES = (np.float64, np.float32)

# Squares of larger values overflow (residuals, variances, Gram matrices),
# so such inputs are refused rather than fitted into NaN: per training dtype.
_MAX_MAGNITUDE = {np.dtype(np.float64): 1e150, np.dtype(np.float32): 1e18}
# A partial_fit batch whose weights total more than this (after the first
# batch's rescaling) is refused.
_MAX_WEIGHT_TOTAL = 2.0**200


# ---- input checks on the device ------------------------------------------------
# The host path is scikit-learn's (validate_data, _check_sample_weight); these
# give its messages for CuPy arrays without moving them to the host.


def check_device_array(a, *, input_name, estimator_name, ensure_2d, dtype):
    """A CuPy array checked as ``check_array`` would: dimensions, size, dtype, finite.

    ``dtype``: a tuple of kept float dtypes (anything else becomes the first),
    or None to keep the dtype (numeric, non-complex).
    """
    xp = array_namespace(a)
    if a.ndim == 0:
        raise ValueError(f"Input {input_name} is a 0-dimensional array, not a collection of "
                         "samples.")
    if ensure_2d and a.ndim != 2:
        raise ValueError(
            f"Expected 2D array, got {a.ndim}D array instead. Reshape your data either using "
            "array.reshape(-1, 1) if your data has a single feature or array.reshape(1, -1) "
            "if it contains a single sample."
        )
    if a.ndim > 2:
        raise ValueError(f"Found array with dim {a.ndim}, while dim <= 2 is required by "
                         f"{estimator_name}.")
    if a.dtype.kind == "c":
        raise ValueError(f"Complex data not supported in {input_name}.")
    if dtype is not None and a.dtype not in dtype:
        a = a.astype(dtype[0])
    if a.shape[0] < 1:
        raise ValueError(f"Found array with 0 sample(s) (shape={a.shape}) while a minimum of 1 "
                         f"is required by {estimator_name}.")
    if a.ndim == 2 and a.shape[1] < 1:
        raise ValueError(f"Found array with 0 feature(s) (shape={a.shape}) while a minimum of "
                         f"1 is required by {estimator_name}.")
    if a.dtype.kind == "f" and not bool(xp.isfinite(a).all()):
        kind = ("NaN" if bool(xp.isnan(a).any())
                else f"infinity or a value too large for {a.dtype!r}")
        raise ValueError(f"Input {input_name} contains {kind}.")
    return a


def check_device_sample_weight(sample_weight, X, *, ensure_non_negative=True):
    """Sample weights (n,) float64 in the namespace of ``X``, checked as _check_sample_weight does.

    ``X`` is a CuPy array; host weights are moved to the device.
    """
    xp, n_samples = array_namespace(X), X.shape[0]
    if sample_weight is None:
        return xp.ones(n_samples, dtype=np.float64)
    if isinstance(sample_weight, Number):
        sample_weight = xp.full(n_samples, float(sample_weight), dtype=np.float64)
    else:
        sample_weight = xp.asarray(sample_weight, dtype=np.float64)
    if sample_weight.ndim != 1:
        raise ValueError(
            f"Sample weights must be 1D array or scalar, got {sample_weight.ndim}D array. "
            f"Expected either a scalar value or a 1D array of length {n_samples}."
        )
    if sample_weight.shape != (n_samples,):
        raise ValueError(f"sample_weight.shape == {sample_weight.shape}, expected "
                         f"{(n_samples,)}!")
    check_device_array(sample_weight, input_name="sample_weight", estimator_name="",
                       ensure_2d=False, dtype=None)
    if bool(xp.all(sample_weight == 0)):
        raise ValueError("Sample weights must contain at least one non-zero number.")
    if ensure_non_negative and bool(xp.any(sample_weight < 0)):
        raise ValueError("Negative values in data passed to `sample_weight`.")
    return sample_weight


def check_magnitude(A, name, dtype):
    """ValueError if ``A`` holds values whose squares overflow in ``dtype``."""
    xp = array_namespace(A)
    limit = _MAX_MAGNITUDE[np.dtype(dtype)]
    largest = float(xp.max(xp.abs(A))) if A.size else 0.0
    if largest > limit:
        raise ValueError(
            f"{name} has values as large as {largest:.3g}; with {np.dtype(dtype).name} "
            f"data, values beyond {limit:.0e} overflow when squared. Rescale {name} "
            "(for example with StandardScaler or by dividing by a constant)."
        )


# Targets of a float32 fit are cast to float32: values this small would
# lose their digits or underflow to zero (squares underflow much earlier).
_MIN_TARGET_MAGNITUDE = {np.dtype(np.float32): 1e-18}


def check_target_magnitude(Y, dtype):
    """ValueError if the targets' values are too small for ``dtype`` (all but 0)."""
    limit = _MIN_TARGET_MAGNITUDE.get(np.dtype(dtype))
    if limit is None or not Y.size:
        return
    xp = array_namespace(Y)
    largest = to_host(xp.max(xp.abs(Y), axis=0))
    if np.any((largest > 0) & (largest < limit)):
        raise ValueError(
            f"y has no value larger than {float(largest[largest > 0].min()):.3g} in magnitude; "
            f"with {np.dtype(dtype).name} X the targets are fitted in {np.dtype(dtype).name}, "
            f"where values below {limit:.0e} lose their digits. Multiply y by a constant, or "
            "pass X as float64."
        )


def validate_training_input(estimator, X, y, sample_weight, kernels, *, encode, reset):
    """Validated ``(X, Y, sample_weight)``: Y the 2-D encoded targets in X's dtype.

    ``encode(y)`` turns validated targets into 2-D float64 ones (the
    estimator's target semantics); ``estimator._check_target_kind(y)``
    refuses a target of the wrong kind before any conversion. The arrays
    stay where they were checked: see :func:`training_rows`.
    """
    if is_device_array(X) and kernels.device:
        return _validate_on_device(estimator, X, y, sample_weight, kernels, encode, reset)
    X, y, sample_weight = to_host(X), to_host(y), to_host(sample_weight)
    estimator._check_target_kind(y)
    X, y = validate_data(
        estimator, X, y, dtype=FLOAT_DTYPES, reset=reset,
        multi_output=estimator._multi_output, y_numeric=estimator._y_numeric,
    )
    sample_weight = _check_sample_weight(
        sample_weight, X, dtype=np.float64, ensure_non_negative=True
    )
    check_magnitude(X, "X", X.dtype)
    Y = encode(y)
    check_magnitude(Y, "y", X.dtype)  # before the cast to X's dtype can overflow
    check_target_magnitude(Y, X.dtype)  # ... or underflow
    return X, Y.astype(X.dtype, copy=False), sample_weight


def _validate_on_device(estimator, X, y, sample_weight, kernels, encode, reset):
    """:func:`validate_training_input` for a CuPy ``X``: nothing of size n leaves the device."""
    X = validate_device_X(estimator, X, reset)
    if is_device_array(y):
        y = check_device_array(y, input_name="y", estimator_name=type(estimator).__name__,
                               ensure_2d=False, dtype=None)
    else:  # host targets (labels of any type): checked and encoded on the host
        estimator._check_target_kind(y)
        y = _check_y(y, multi_output=estimator._multi_output, y_numeric=estimator._y_numeric,
                     estimator=estimator)
    if y.shape[0] != X.shape[0]:
        raise ValueError("Found input variables with inconsistent numbers of samples: "
                         f"{[X.shape[0], y.shape[0]]}")
    sample_weight = check_device_sample_weight(sample_weight, X)
    check_magnitude(X, "X", X.dtype)
    Y = in_namespace(encode(y), kernels)
    check_magnitude(Y, "y", X.dtype)
    check_target_magnitude(Y, X.dtype)
    return X, Y.astype(X.dtype, copy=False), sample_weight


# Sample weights whose (mean positive) weight lies outside 2^-/+ this are
# rescaled by a power of two (see rescaled_sample_weight).
_WEIGHT_LOG2_RANGE = 60


def rescaled_sample_weight(sample_weight, exponent=None):
    """Sample weights times 2^-exponent, and the exponent: totals stay representable.

    Weights act as repeated rows, so their scale matters only against the
    penalties; a fit on weights times 2^-e with alpha times 2^-e is the same
    fit, and a power of two rescales exactly (``ldexp``, no overflow on the
    way). Without ``exponent``, it is 0 while the mean positive weight is
    within 2^+/-60 (ordinary weights are left exactly as they are), else the
    one that brings it to about 1. With ``exponent`` (a ``partial_fit``
    batch after the first), that one, and the result is checked.
    """
    xp = array_namespace(sample_weight)
    if exponent is None:
        magnitude = xp.abs(sample_weight)  # a weighted mean may take any sign
        largest = float(xp.max(magnitude))
        if not largest > 0:
            return sample_weight, 0
        top = math.frexp(largest)[1]
        # below 1 each, so the sum cannot overflow
        total = float(xp.ldexp(magnitude, -top).sum())
        mean = total / int(xp.count_nonzero(magnitude))
        exponent = top + math.frexp(mean)[1] - 1  # the mean comes to [1, 2)
        if abs(exponent) <= _WEIGHT_LOG2_RANGE:
            return sample_weight, 0
        return xp.ldexp(sample_weight, -exponent), exponent
    scaled = xp.ldexp(sample_weight, -exponent) if exponent else sample_weight
    with np.errstate(over="ignore"):
        total = float(scaled.sum())
    if not total < _MAX_WEIGHT_TOTAL:
        raise ValueError(
            "sample_weight of this partial_fit batch is too large for the scale of the first "
            f"batch's weights (its total, times 2^{-exponent}, is {total:.3g}): the penalty "
            "is measured against the weights, so a stream's weights must keep one scale."
        )
    return scaled, exponent


def validate_device_X(estimator, X, reset):
    """A CuPy X checked on the device; sets or checks ``n_features_in_``."""
    X = check_device_array(X, input_name="X", estimator_name=type(estimator).__name__,
                           ensure_2d=True, dtype=FLOAT_DTYPES)
    validate_data(estimator, X, skip_check_array=True, reset=reset)
    return X


def _column_statistics(A, sample_weight):
    """Total weight, weighted mean and variance of each column, and the range of the
    positively weighted rows: ``(S, mean, variance, low, high)``, in A's namespace.

    Accumulated in float64 over blocks of rows, so that no temporary the size
    of A (twice its size for float32 A) is made: at a million rows those
    dominated the peak memory of a fit.
    """
    xp = array_namespace(A)
    total = sample_weight.sum()
    weights = sample_weight / total
    blocks = row_blocks(A.shape[0])
    mean = sum(weights[rows] @ A[rows].astype(np.float64, copy=False) for rows in blocks)
    variance = sum(weights[rows] @ (A[rows] - mean) ** 2 for rows in blocks)
    positive = sample_weight > 0
    low = high = None
    for rows in blocks:
        block = A[rows][positive[rows]]
        if block.shape[0]:
            low = block.min(axis=0) if low is None else xp.minimum(low, block.min(axis=0))
            high = block.max(axis=0) if high is None else xp.maximum(high, block.max(axis=0))
    return float(total), mean, variance, low, high


def _standardisation_scale(variance, low, high):
    """The columns' standard deviations, 1 for a constant column.

    A column is constant when its weighted rows are all equal (its computed
    spread is then the mean's rounding error). Any other column is scaled by
    its spread however small: a relative cut-off (it was 1e-12 of the mean)
    discarded real features of tiny scale, or offset far from zero.
    """
    scale = array_namespace(variance).sqrt(variance)
    scale[(high == low) | ~(scale > 0)] = 1.0
    return scale


def weighted_mean_and_scale(A, sample_weight):
    """Column means and standard deviations under ``sample_weight``; constant columns' 1.

    ``A`` and ``sample_weight`` may be CuPy arrays (computed on the device);
    the results are host arrays.
    """
    _, mean, variance, low, high = _column_statistics(A, sample_weight)
    return to_host(mean), to_host(_standardisation_scale(variance, low, high))


def column_moments(A, sample_weight):
    """Weighted moments of the columns of a batch, to merge over a stream (host float64).

    ``{"weight": S, "mean": (m,), "m2": (m,), "low": (m,), "high": (m,)}``:
    the total weight, the weighted mean, the weighted sum of squared
    deviations, and the range of the positively weighted rows.
    """
    total, mean, variance, low, high = _column_statistics(A, sample_weight)
    return {"weight": total, "mean": to_host(mean),
            "m2": np.asarray(to_host(variance), dtype=np.float64) * total,
            "low": to_host(low).astype(np.float64), "high": to_host(high).astype(np.float64)}


def merge_moments(a, b):
    """Moments of two batches together (Chan et al.'s parallel update)."""
    total = a["weight"] + b["weight"]
    share = b["weight"] / total
    delta = b["mean"] - a["mean"]
    return {"weight": total, "mean": a["mean"] + share * delta,
            "m2": a["m2"] + b["m2"] + delta**2 * a["weight"] * share,
            "low": np.minimum(a["low"], b["low"]), "high": np.maximum(a["high"], b["high"])}


def moments_mean_scale(moments):
    """Mean and standardisation scale from :func:`column_moments` (constant columns: 1)."""
    scale = _standardisation_scale(moments["m2"] / moments["weight"], moments["low"],
                                   moments["high"])
    return moments["mean"].copy(), scale


def is_dask_input(*arrays):
    """Whether any of ``arrays`` is a Dask collection (told from its type's module,
    so nothing imports Dask unless the input is one)."""
    return any(type(a).__module__.split(".")[0] in ("dask", "dask_expr") for a in arrays)


def dask_support():
    """``mixexp._dask``: imported on the first Dask input (Dask is an optional
    dependency, ``pip install "mixexp[dask]"``)."""
    from . import _dask  # an optional dependency, loaded when used

    return _dask


def training_rows(X, Y, sample_weight, x_mean, x_scale, kernels):
    """The training rows in the namespace of ``kernels`` (host input for the GPU moves once).

    No standardised copy is made: passes standardise chunk by chunk (see
    ``mixexp._rows``).
    """
    return InMemoryRows(in_namespace(X, kernels), in_namespace(Y, kernels),
                        in_namespace(sample_weight, kernels), x_mean, x_scale, kernels)


def prediction_rows(estimator, X, encode_targets=None, y=None):
    """The rows a fitted estimator predicts on: validated X (and encoded y), standardised
    chunk by chunk (``mixexp._rows.InMemoryRows``: no standardised copy of X).

    Arrays live in the namespace of the backend that serves ``X`` (CuPy
    input stays on the device for a GPU backend). With ``y``, the targets
    are encoded where they are by ``encode_targets(y)`` and must have X's
    number of rows.
    """
    check_is_fitted(estimator)
    kernels = resolve_backend(estimator.backend, X)
    if is_device_array(X) and kernels.device:
        X = validate_device_X(estimator, X, reset=False)
    else:
        X = in_namespace(validate_data(estimator, to_host(X), dtype=FLOAT_DTYPES, reset=False),
                         kernels)
    Y = None
    if encode_targets is not None:
        # targets are encoded where they are (device labels stay on the device)
        Y = in_namespace(encode_targets(y if kernels.device else to_host(y)), kernels)
        if Y.shape[0] != X.shape[0]:
            raise ValueError(
                f"X and y have inconsistent numbers of samples: {X.shape[0]} and {Y.shape[0]}."
            )
    return InMemoryRows(X, Y, None, estimator._x_mean, estimator._x_scale, kernels)


def checked_sample_weight(sample_weight, per_row):
    """Sample weights for a weighted mean of ``per_row`` (n,), where it lives."""
    if is_device_array(per_row):
        return check_device_sample_weight(sample_weight, per_row, ensure_non_negative=False)
    return _check_sample_weight(sample_weight, per_row[:, None])


def resolve_columns(selector, name, n_features, feature_names=None):
    """The columns a ``gate_features`` / ``expert_features`` selector names: int array or None.

    ``selector`` is None (every column), integer indices, column names
    (``feature_names``: the names of a DataFrame's columns, else None) or a
    boolean mask of length ``n_features``; ``name`` is the parameter's name
    for the messages. Indices keep the order given. A selection of every
    column in order is returned as None, so that such a fit is the fit
    without a selection, bit for bit.
    """
    if selector is None:
        return None
    values = np.asarray(selector, dtype=object if isinstance(selector, (list, tuple))
                        else None)
    if values.ndim != 1:
        raise ValueError(f"{name} must be a 1-D list of column indices, column names or a "
                         f"boolean mask; got an array of shape {values.shape}.")
    items = values.tolist()
    if items and all(isinstance(v, (bool, np.bool_)) for v in items):
        if len(items) != n_features:
            raise ValueError(f"{name} is a boolean mask of length {len(items)}, but X has "
                             f"{n_features} columns.")
        columns = np.flatnonzero(np.asarray(items, dtype=bool))
    elif all(isinstance(v, str) for v in items) and items:
        if feature_names is None:
            raise ValueError(
                f"{name} names columns ({', '.join(map(repr, items[:3]))}"
                f"{', ...' if len(items) > 3 else ''}), but X has no column names: pass a "
                "pandas DataFrame, or select columns by integer index.")
        position = {str(feature): j for j, feature in enumerate(feature_names)}
        unknown = [v for v in items if v not in position]
        if unknown:
            raise ValueError(f"{name} names columns that X does not have: {unknown}. X's "
                             f"columns are {list(feature_names)}.")
        columns = np.array([position[v] for v in items], dtype=np.intp)
    elif all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
             for v in items):
        columns = np.asarray(items, dtype=np.intp)
        outside = [int(v) for v in columns if not 0 <= v < n_features]
        if outside:
            raise ValueError(f"{name} has column indices out of range for X with {n_features} "
                             f"columns: {outside} (indices run from 0 to {n_features - 1}).")
    else:
        raise ValueError(f"{name} must hold only integer indices, only column names or only "
                         f"booleans (a mask); got {items!r}.")
    if np.unique(columns).size != columns.size:
        raise ValueError(f"{name} selects some columns more than once: {items!r}. Name each "
                         "column once.")
    if columns.size == n_features and np.array_equal(columns, np.arange(n_features)):
        return None
    return columns
