"""Rows held on Dask workers: fitting and predicting where the data already live.

Imported only when an input is a Dask collection (``pip install
"mixexp[dask]"``). The estimators see :class:`DaskRows` as they see
:class:`mixexp._rows.InMemoryRows`: ``map_reduce(function)`` runs the row
function on every block, where the block is (each block standardised there
by an ``InMemoryRows`` of its own, in the worker thread's reused buffers),
and tree-sums the float64 statistics the blocks return. Only the row
function (model, parameters, the kernel bundle's name) travels to the
workers and only statistics travel back; the data are persisted once. The
active ``distributed.Client`` runs the passes if there is one, else Dask's
default scheduler (``dask.compute`` chooses).

Before any parameter exists, one pass checks every block (NaN, infinity,
magnitudes, negative weights: the in-memory messages) and returns the
column moments that standardise X and configure the expert family.
Initialisation gathers the hash-chosen sample of at most about 10,000
distinct rows that an in-memory fit starts from (the same rows, whatever
the chunking), never all rows.

What runs here is one-pass EM with soft gating (``mixexp._solvers._em``),
the multi-pass EM that recomputes the E-step in every pass
(``mixexp._solvers._em_rows``: hard gating, load balancing, logistic
experts above ``NEWTON_MAX_PARAMS`` parameters), L-BFGS with one pass per
evaluation (``mixexp._solvers._gradient.RowsObjective``), or, for
estimators as experts, EM with their ``partial_fit`` streamed through the
blocks (``mixexp._solvers._em_stream``, over :meth:`DaskRows.fold`). What
needs all rows at once in one memory (Adam, partial_fit, estimators
without a weighted partial_fit, a tree gate's multi-pass M-step) is
refused up front by :func:`check_supported`. A warm start with another
``n_experts`` resizes the previous fit from K sums per pass
(``mixexp._resize``), as in memory. A
classifier's labels are found by one reduction (:func:`_checked_labels`).
Prediction maps the estimator's chunk function over the input's blocks
(:func:`map_rows`) and stays lazy.
"""

import threading
import warnings

import dask
import dask.array as da
import numpy as np
import pandas as pd
from dask import delayed
from sklearn.exceptions import DataConversionWarning
from sklearn.utils.validation import _assert_all_finite, check_is_fitted, validate_data

from ._backend import resolve_backend, single_threaded_blas
from ._experts._estimator import partial_fit_takes_weights
from ._experts._poisson import check_counts
from ._rows import (
    InMemoryRows,
    add_statistics,
    canonical_order,
    hash_threshold,
    row_hash,
)
from ._validation import (
    FLOAT_DTYPES,
    check_magnitude,
    check_target_magnitude,
)

# Each worker thread keeps one set of scratch buffers for all its tasks
# (fresh memory is slow; the blocks of one array have one width).
_THREAD = threading.local()


def _thread_buffers():
    if not hasattr(_THREAD, "buffers"):
        _THREAD.buffers = {}
    return _THREAD.buffers


# ---- what runs on dask input ---------------------------------------------------


def check_supported(estimator, kernels, what="fit"):
    """Refuse, before any data are touched, what cannot run on Dask input yet.

    Raises ValueError (TypeError for a wrong input type) naming what is
    supported and what to use instead; nothing is ever gathered silently.
    """
    name = type(estimator).__name__
    if kernels.device:
        raise ValueError(
            f"backend={estimator.backend!r} cannot serve Dask input: the Dask path runs the "
            "CPU kernels on the workers. Use backend='auto', 'numba' or 'numpy'."
        )
    if what != "fit":
        return
    instead = ("Or fit in memory (on NumPy arrays, or on a sample computed from the Dask "
               "collection) and predict on Dask input, which stays lazy.")
    if estimator.solver not in ("em", "lbfgs"):
        raise ValueError(
            f"solver={estimator.solver!r} is not supported on Dask input: use solver='em' "
            "(one pass over the blocks per iteration) or 'lbfgs' (one pass per function "
            f"evaluation). {instead}"
        )
    expert = getattr(estimator, "expert", None)
    tree = hasattr(estimator, "branching")  # a tree of gates: soft gating, no balance
    if expert is not None and not isinstance(expert, str):
        _check_streamed_expert(estimator, expert, tree, instead)
    for setting, value, default in (("gating", estimator.gating, "soft"),
                                    ("balance", estimator.balance, 0)):
        if value == default:
            continue
        if tree:
            raise ValueError(
                f"{setting}={value!r} is not supported on Dask input for {name}: its tree of "
                f"gates trains on a cluster with gating='soft' and balance=0 only. {instead}")
        if expert not in (None, "gaussian", "logistic"):
            raise ValueError(
                f"{setting}={value!r} with expert={estimator.expert!r} is not supported on "
                "Dask input: its M-step needs all rows in one memory there. "
                f"{instead}")
        if estimator.solver != "em":
            raise ValueError(
                f"{setting}={value!r} with solver={estimator.solver!r} is not supported on "
                "Dask input: on a cluster only EM trains hard gating and load balancing "
                f"(several passes per iteration). Use solver='em'. {instead}")


def _check_streamed_expert(estimator, expert, tree, instead):
    """A scikit-learn estimator as expert trains on Dask input by ``partial_fit`` streamed
    through the blocks (``mixexp._solvers._em_stream``): refuse what cannot."""
    expert_name = f"expert={type(expert).__name__}(...)"
    if not partial_fit_takes_weights(expert):
        what = ("has no partial_fit" if not callable(getattr(expert, "partial_fit", None))
                else "has a partial_fit without sample_weight")
        raise ValueError(
            f"{expert_name} cannot be fitted on Dask input: its fit needs all rows in one "
            "memory, so on Dask input each expert is trained by streaming the blocks through "
            "partial_fit(X, y, sample_weight=...) (dask-ml's Incremental convention), and "
            f"{type(expert).__name__} {what}. Use an estimator whose partial_fit takes "
            "sample_weight (for example SGDRegressor, or SGDClassifier(loss='log_loss')), "
            "or a built-in family (expert='gaussian', 'poisson', 'student_t' or "
            f"'logistic'). {instead}")
    settings = [f"{name}={value!r}" for name, value, default in (
        ("gating", estimator.gating, "soft"), ("balance", estimator.balance, 0))
        if value != default]
    if tree or settings:
        what = "a tree of gates" if tree else " and ".join(settings)
        raise ValueError(
            f"{expert_name} with {what} is not supported on Dask input: experts streamed "
            "through partial_fit train under a flat gate with gating='soft' and balance=0 "
            f"only. {instead}")


def refuse_partial_fit(estimator):
    """partial_fit takes mini-batches in memory: never a Dask collection."""
    raise TypeError(
        f"{type(estimator).__name__}.partial_fit does not take Dask input: it runs Adam on "
        "in-memory mini-batches. Fit on the Dask collection with solver='em' instead, or "
        "pass computed blocks (for example `for block in X.to_delayed().ravel(): "
        "est.partial_fit(block.compute(), ...)`)."
    )


# ---- inputs --------------------------------------------------------------------


def is_dask_collection(a):
    """Whether ``a`` is a Dask collection (array, DataFrame, Series)."""
    return dask.is_dask_collection(a)


def _numeric(dtype):
    try:
        return np.dtype(dtype).kind in "biuf"
    except TypeError:  # pandas extension dtypes (strings, categories)
        return False


def _as_array(a, name, lengths=True, numeric=True):
    """A Dask array for a Dask array, DataFrame or Series (numeric columns unless
    ``numeric`` is False: class labels)."""
    if isinstance(a, da.Array):
        return a
    if hasattr(a, "to_dask_array"):
        dtypes = a.dtypes  # a Series' is one dtype, a DataFrame's one per column
        dtypes = list(dtypes) if isinstance(dtypes, pd.Series) else [dtypes]
        other = sorted({str(t) for t in dtypes if not _numeric(t)})
        if other and numeric:
            raise ValueError(
                f"{name} must hold numbers only; found columns of dtype {other}. Encode "
                "categorical columns as numbers (for example `.cat.codes`) before fitting."
            )
        with warnings.catch_warnings():
            # labels of a pandas string dtype become an object array, as in memory
            warnings.filterwarnings("ignore", "Dask currently has limited support",
                                    UserWarning)
            return a.to_dask_array(lengths=True if lengths else None)
    raise TypeError(f"{name} is a {type(a).__name__}: expected a Dask array, DataFrame or "
                    "Series.")


def _known_chunks(a):
    """``a`` with its chunk sizes known (one cheap pass over the lengths if not)."""
    if any(np.isnan(size) for size in a.chunks[0]):
        a = a.compute_chunk_sizes()
    return a


def _checked_X(estimator, X, reset, lengths=True):
    """A 2-D float Dask array of X, one column chunk; sets or checks ``n_features_in_``."""
    # feature names come from the DataFrame's (empty pandas) meta, before the conversion
    validate_data(estimator, X._meta if hasattr(X, "columns") else X, skip_check_array=True,
                  reset=reset)
    X = _as_array(X, "X", lengths)
    if X.ndim != 2:
        raise ValueError(
            f"Expected 2D array, got {X.ndim}D array instead. Reshape your data either using "
            "array.reshape(-1, 1) if your data has a single feature or array.reshape(1, -1) "
            "if it contains a single sample."
        )
    if X.dtype.kind == "c":
        raise ValueError("Complex data not supported in X.")
    if X.dtype.kind not in "biuf":
        raise ValueError(f"X has dtype {X.dtype}; a numeric Dask array is needed.")
    if X.dtype not in FLOAT_DTYPES:
        X = X.astype(np.float64)
    if X.shape[1] < 1:
        raise ValueError(f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of "
                         f"1 is required by {type(estimator).__name__}.")
    if X.numblocks[1] != 1:  # kernels take whole rows
        X = X.rechunk({1: -1})
    return X


def _aligned(a, X, name, numeric=True):
    """``a`` (Dask, NumPy or None) as a Dask array with X's row chunks."""
    if a is None:
        return None
    if not is_dask_collection(a):  # sent to the workers in X's chunks
        a = np.asarray(a)
        rows = X.chunks[0] if a.shape[0] == X.shape[0] else (a.shape[0],)
        return da.from_array(a, chunks=(rows, *((s,) for s in a.shape[1:])))
    a = _known_chunks(_as_array(a, name, numeric=numeric))
    if a.shape[0] == X.shape[0] and a.chunks[0] != X.chunks[0]:
        a = a.rechunk({0: X.chunks[0]})
    if a.ndim == 2 and a.numblocks[1] != 1:
        a = a.rechunk({1: -1})
    return a


def _checked_labels(estimator, y, X):
    """One-hot classes (n, C) with X's chunks; ``classes_`` from one pass over y.

    The distinct labels are found by a reduction (each block's, merged), so
    only they reach the client; the in-memory checks then run on them.
    """
    y = _aligned(y, X, "y", numeric=False)
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected. Please change the "
            "shape of y to (n_samples, ), for example using ravel().",
            DataConversionWarning, stacklevel=5,
        )
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"y should be a 1d array, got an array of shape {y.shape} instead.")
    if y.shape[0] != X.shape[0]:
        raise ValueError("Found input variables with inconsistent numbers of samples: "
                         f"{[X.shape[0], y.shape[0]]}")
    classes = np.asarray(dask.compute(da.unique(y))[0])
    if classes.dtype.kind == "f":  # NaN or infinite labels: the in-memory message first
        _raise_non_finite((bool(np.isnan(classes).any()), bool(np.isinf(classes).any())), "y",
                          classes.dtype, estimator)
    # classes_, its checks (label type, at least two classes) and n_targets, as in memory
    estimator._encode_targets(classes, fitting=True)
    classes = estimator.classes_
    return y.map_blocks(_one_hot, classes, X.dtype, dtype=X.dtype, new_axis=1,
                        chunks=(y.chunks[0], (classes.size,)), meta=np.empty((0, 0), X.dtype))


def _one_hot(labels, classes, dtype):
    """One-hot rows (n, C) of a block of labels, every one of them in ``classes``."""
    codes = np.searchsorted(classes, labels)
    return (codes[:, None] == np.arange(classes.size)).astype(dtype)


def _checked_targets(estimator, y, X):
    """2-D float targets with X's chunks (one-hot classes for a classifier)."""
    if not estimator._y_numeric:
        return _checked_labels(estimator, y, X)
    y = _aligned(y, X, "y")
    if y.ndim not in (1, 2):
        raise ValueError(f"Found array with dim {y.ndim}. {type(estimator).__name__} "
                         "expected <= 2.")
    if y.shape[0] != X.shape[0]:
        raise ValueError("Found input variables with inconsistent numbers of samples: "
                         f"{[X.shape[0], y.shape[0]]}")
    if y.dtype.kind not in "biuf":
        # labels are refused with the in-memory message, from a few rows
        estimator._check_target_kind(y[: min(5, y.shape[0])].compute())
    # the estimator's target attributes, from one row of the same shape
    Y = estimator._encode_targets(np.zeros((1,) + y.shape[1:]), fitting=True)
    y = y.astype(np.float64)
    if y.ndim == 1:
        y = y[:, None]
    return y.reshape((y.shape[0], Y.shape[1])).astype(X.dtype)


def _checked_weights(sample_weight, X):
    """Sample weights as float64 Dask (n,) with X's chunks (ones if None)."""
    n = X.shape[0]
    if sample_weight is None:
        return da.ones(n, chunks=X.chunks[0], dtype=np.float64)
    if np.ndim(sample_weight) == 0 and not is_dask_collection(sample_weight):
        return da.full(n, float(sample_weight), chunks=X.chunks[0], dtype=np.float64)
    sample_weight = _aligned(sample_weight, X, "sample_weight")
    if sample_weight.ndim != 1:
        raise ValueError(
            f"Sample weights must be 1D array or scalar, got {sample_weight.ndim}D array. "
            f"Expected either a scalar value or a 1D array of length {n}."
        )
    if sample_weight.shape != (n,):
        raise ValueError(f"sample_weight.shape == {sample_weight.shape}, expected {(n,)}!")
    return sample_weight.astype(np.float64)


# ---- the first pass: checks and column moments ---------------------------------


def _moments(A, weight):
    """Weighted moments of a block's columns (float64; the range over positive weights)."""
    total = float(weight.sum())
    columns = A.shape[1]
    if not total > 0:
        mean = m2 = np.zeros(columns)
    else:
        mean = (weight @ A.astype(np.float64, copy=False)) / total
        m2 = weight @ (A - mean) ** 2
    positive = A[weight > 0]
    low = positive.min(axis=0) if positive.shape[0] else np.full(columns, np.inf)
    high = positive.max(axis=0) if positive.shape[0] else np.full(columns, -np.inf)
    return {"weight": total, "mean": mean, "m2": m2, "low": low.astype(np.float64),
            "high": high.astype(np.float64)}


def _merge_moments(a, b):
    """Moments of two blocks together (Chan et al.); blocks without weight add nothing."""
    total = a["weight"] + b["weight"]
    if not b["weight"] > 0 or not total > 0:
        mean, m2 = a["mean"], a["m2"]
    elif not a["weight"] > 0:
        mean, m2 = b["mean"], b["m2"]
    else:
        share = b["weight"] / total
        delta = b["mean"] - a["mean"]
        mean = a["mean"] + share * delta
        m2 = a["m2"] + b["m2"] + delta**2 * a["weight"] * share
    return {"weight": total, "mean": mean, "m2": m2, "low": np.minimum(a["low"], b["low"]),
            "high": np.maximum(a["high"], b["high"])}


def _finite_flags(A):
    finite = np.isfinite(A)
    if finite.all():
        return (False, False)
    return (bool(np.isnan(A).any()), bool((~finite & ~np.isnan(A)).any()))


@np.errstate(invalid="ignore", over="ignore")  # bad input is reported after the pass
def _block_summary(X, Y, weight):
    """Everything the first pass learns of one block (small host values)."""
    magnitude = np.abs(weight)
    largest = float(magnitude.max()) if weight.size else 0.0
    top = int(np.frexp(largest)[1]) if largest > 0 and np.isfinite(largest) else 0
    return {
        "x_flags": _finite_flags(X), "y_flags": _finite_flags(Y),
        "w_flags": _finite_flags(weight),
        "negative": bool((weight < 0).any()),
        # sum of |w| 2^-top in this block's own binary scale: no overflow
        "w_largest": largest, "w_scaled": (float(np.ldexp(magnitude, -top).sum()), top),
        "w_nonzero": int(np.count_nonzero(weight)), "positive": int((weight > 0).sum()),
        # witnesses for the count check of expert="poisson": the least target,
        # a few non-integers
        "y_min": Y.min(axis=0) if Y.shape[0] else np.full(Y.shape[1], np.inf),
        "y_fraction": Y[np.isfinite(Y) & (Y != np.round(Y))][:3].astype(np.float64),
        "x_max": np.abs(X).max(axis=0) if X.shape[0] else np.zeros(X.shape[1]),
        "y_max": np.abs(Y).max(axis=0) if Y.shape[0] else np.zeros(Y.shape[1]),
        "x": _moments(X, weight), "y": _moments(Y, weight),
    }


@np.errstate(invalid="ignore", over="ignore")  # bad input is reported after the pass
def _merge_summaries(a, b):
    either = lambda key: tuple(p or q for p, q in zip(a[key], b[key]))
    top = max(a["w_scaled"][1], b["w_scaled"][1])
    scaled = sum(float(np.ldexp(s, t - top)) for s, t in (a["w_scaled"], b["w_scaled"]))
    return {
        "x_flags": either("x_flags"), "y_flags": either("y_flags"),
        "w_flags": either("w_flags"), "negative": a["negative"] or b["negative"],
        "w_largest": max(a["w_largest"], b["w_largest"]), "w_scaled": (scaled, top),
        "w_nonzero": a["w_nonzero"] + b["w_nonzero"], "positive": a["positive"] + b["positive"],
        "y_min": np.minimum(a["y_min"], b["y_min"]),
        "y_fraction": np.concatenate([a["y_fraction"], b["y_fraction"]])[:3],
        "x_max": np.maximum(a["x_max"], b["x_max"]), "y_max": np.maximum(a["y_max"], b["y_max"]),
        "x": _merge_moments(a["x"], b["x"]), "y": _merge_moments(a["y"], b["y"]),
    }


def _block_moments(X, Y, weight):
    return {"x": _moments(X, weight), "y": _moments(Y, weight)}


def _merge_block_moments(a, b):
    return {"x": _merge_moments(a["x"], b["x"]), "y": _merge_moments(a["y"], b["y"])}


def _tree(parts, combine):
    """Pairwise tree of delayed ``combine`` over ``parts``, in block order."""
    parts = list(parts)
    while len(parts) > 1:
        parts = [delayed(combine, pure=True)(parts[i], parts[i + 1]) if i + 1 < len(parts)
                 else parts[i] for i in range(0, len(parts), 2)]
    return parts[0]


def _raise_non_finite(flags, name, dtype, estimator=None):
    """scikit-learn's own error for NaN or infinity in ``name``: raised by its check on
    a one-value witness, so the message is the in-memory one."""
    nan, inf = flags
    if nan or inf:
        witness = np.array([np.nan if nan else np.inf], dtype=dtype)
        _assert_all_finite(witness, input_name=name, estimator_name=(
            None if estimator is None else type(estimator).__name__))


def _weight_exponent(summary):
    """The exponent of ``mixexp._validation.rescaled_sample_weight`` from the block sums."""
    largest = summary["w_largest"]
    if not largest > 0:
        return 0
    top = int(np.frexp(largest)[1])
    scaled, block_top = summary["w_scaled"]
    mean = float(np.ldexp(scaled, block_top - top)) / summary["w_nonzero"]
    exponent = top + int(np.frexp(mean)[1]) - 1
    return exponent if abs(exponent) > 60 else 0


def _mean_scale(moments):
    # the in-memory rule (mixexp._validation): a column constant over the
    # positively weighted rows is scaled by 1
    variance = moments["m2"] / moments["weight"]
    scale = np.sqrt(variance)
    scale[(moments["high"] == moments["low"]) | ~(scale > 0)] = 1.0
    return moments["mean"].copy(), scale


def training_rows(estimator, X, y, sample_weight, kernels):
    """Checked training rows on the workers: ``(DaskRows, weight_exponent)``.

    Sets ``n_features_in_`` (and ``feature_names_in_`` for a DataFrame)
    and the estimator's target attributes. Raises the in-memory ValueErrors
    for bad input, after one pass over the blocks and before any parameter
    exists.
    """
    check_supported(estimator, kernels)
    if not is_dask_collection(X):
        raise TypeError(
            "y or sample_weight is a Dask collection but X is not: pass X as a Dask array "
            "or DataFrame too (the fit runs where the data are), or compute y and "
            "sample_weight to fit in memory."
        )
    X = _known_chunks(_checked_X(estimator, X, reset=True))
    if X.shape[0] < 1:
        raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 "
                         f"is required by {type(estimator).__name__}.")
    Y = _checked_targets(estimator, y, X)
    weight = _checked_weights(sample_weight, X)
    # persisted once, where they are: every later pass reads these blocks
    X, Y, weight = dask.persist(X, Y, weight)
    blocks = _blocks(X, Y, weight)
    summary = dask.compute(_tree([delayed(_block_summary, pure=True)(*b) for b in blocks],
                                 _merge_summaries))[0]
    _raise_non_finite(summary["x_flags"], "X", X.dtype, estimator)
    _raise_non_finite(summary["y_flags"], "y", Y.dtype, estimator)
    _raise_non_finite(summary["w_flags"], "sample_weight", np.float64)
    if summary["w_nonzero"] == 0:
        raise ValueError("Sample weights must contain at least one non-zero number.")
    if summary["negative"]:
        raise ValueError("Negative values in data passed to `sample_weight`.")
    _check_magnitudes(summary, X.dtype)
    if getattr(estimator, "expert", None) == "poisson":  # the in-memory check, on witnesses
        check_counts(np.concatenate([summary["y_fraction"], summary["y_min"]])[None, :])
    exponent = _weight_exponent(summary)
    moments = summary
    if exponent:
        # weights beyond 2^+/-60 on average: rescaled as in memory, and the
        # moments taken again with them (their sums could overflow)
        weight = dask.persist(weight.map_blocks(np.ldexp, -exponent, dtype=np.float64))[0]
        blocks = _blocks(X, Y, weight)
        moments = dask.compute(_tree([delayed(_block_moments, pure=True)(*b) for b in blocks],
                                     _merge_block_moments))[0]
    x_mean, x_scale = _mean_scale(moments["x"])
    y_mean = moments["y"]["mean"]
    y_spread = np.sqrt(moments["y"]["m2"] / moments["y"]["weight"])
    total = moments["x"]["weight"]
    # two rows with the targets' weighted mean and variance: what the family
    # is configured from (as partial_fit does from a stream's moments)
    targets = (np.stack([y_mean - y_spread, y_mean + y_spread]).astype(X.dtype),
               np.full(2, 0.5 * total))
    rows = DaskRows(X, Y, weight, x_mean, x_scale, kernels, total_weight=total,
                    n_positive=summary["positive"], targets=targets)
    return rows, exponent


def _check_magnitudes(summary, dtype):
    """check_magnitude / check_target_magnitude of ``mixexp._validation`` from the maxima."""
    for name, largest in (("X", summary["x_max"]), ("y", summary["y_max"])):
        check_magnitude(np.array([largest.max()]), name, dtype)
    check_target_magnitude(summary["y_max"][None, :].astype(np.float64), dtype)


def _blocks(*arrays):
    """Per row block, the delayed blocks of ``arrays`` (one column chunk each)."""
    return list(zip(*(a.to_delayed().ravel() for a in arrays), strict=True))


# ---- the rows ------------------------------------------------------------------


@single_threaded_blas
def _block_pass(function, X, Y, weight, x_mean, x_scale, kernels):
    """``function`` mapped and reduced over one block, on its worker."""
    rows = InMemoryRows(X, Y, weight, x_mean, x_scale, kernels, buffers=_thread_buffers())
    return rows.map_reduce(function)


@single_threaded_blas
def _block_fold(function, state, X, Y, weight, x_mean, x_scale, kernels):
    """``state = function(chunk, state)`` over one block's chunks in order, on its worker."""
    rows = InMemoryRows(X, Y, weight, x_mean, x_scale, kernels, buffers=_thread_buffers())
    for chunk in rows.chunks():
        state = function(chunk, state)
    return state


def _block_sample(X, Y, weight, offset, threshold):
    """The block's rows of the initial sample: positive weight, hash at most ``threshold``."""
    keep = weight > 0
    if threshold is not None:
        keep &= row_hash(X, Y) <= threshold
    index = np.flatnonzero(keep)
    return X[index], Y[index], weight[index], index + offset


class DaskRows:
    """Training rows held on Dask workers, with the interface one-pass EM uses.

    Parameters
    ----------
    X, Y, sample_weight : dask arrays, persisted
        Checked inputs (n, d), encoded targets (n, t) and float64 weights
        (n,), with the same row chunks and one column chunk.
    x_mean, x_scale : ndarray of shape (d,)
        The standardisation, applied block by block on the workers.
    kernels : kernel bundle
        A CPU backend's (it travels by name).
    total_weight : float
    n_positive : int
        Rows with a positive weight (the initial sample's candidates).
    targets : tuple
        Two rows standing for the targets' weighted moments, and their
        weights (see :meth:`targets`).
    """

    # The rows are spread over workers: no whole() or take() of them here.
    local = False

    def __init__(self, X, Y, sample_weight, x_mean, x_scale, kernels, *, total_weight,
                 n_positive, targets):
        self.X, self.Y, self.sample_weight = X, Y, sample_weight
        self.x_mean, self.x_scale = x_mean, x_scale
        self.kernels = kernels
        self.total_weight = float(total_weight)
        self.passes = 0
        self._n_positive = n_positive
        self._targets = targets
        self._blocks = _blocks(X, Y, sample_weight)
        self._offsets = np.concatenate([[0], np.cumsum(X.chunks[0])[:-1]]).astype(np.int64)

    @property
    def n_samples(self):
        return self.X.shape[0]

    @property
    def n_features(self):
        return self.X.shape[1]

    @property
    def dtype(self):
        return self.X.dtype

    def map_reduce(self, function):
        """One pass: ``function(chunk)`` on every chunk of every block, where the block
        is; the float64 statistics are summed within blocks, then tree-summed over
        blocks in block order, and only they come back."""
        self.passes += 1
        parts = [delayed(_block_pass, pure=False)(function, X, Y, weight, self.x_mean,
                                                  self.x_scale, self.kernels)
                 for X, Y, weight in self._blocks]
        return dask.compute(_tree(parts, add_statistics))[0]

    def fold(self, function, state):
        """One sequential pass: ``state = function(chunk, state)`` over every chunk, in
        block order, each block on its worker; the final state comes back.

        The state (small: models streamed through the blocks, as dask-ml's
        ``Incremental`` does) travels from block to block; the blocks stay
        where they are. The tasks run one after another, so the pass takes
        the sum of the blocks' times, not the longest.
        """
        self.passes += 1
        for X, Y, weight in self._blocks:
            state = delayed(_block_fold, pure=False)(function, state, X, Y, weight,
                                                    self.x_mean, self.x_scale, self.kernels)
        return dask.compute(state)[0]

    def canonical_sample(self, max_rows):
        """The in-memory fit's initial rows, gathered: ``(TrainingData, weight)``.

        The same rows as ``mixexp._rows.canonical_rows`` chooses (the hash of
        a row depends on its values alone), so a seed gives the same start
        as in memory whatever the chunking; at most about ``max_rows`` rows
        reach the client.
        """
        threshold = (hash_threshold(self._n_positive, max_rows)
                     if self._n_positive > max_rows else None)
        parts = dask.compute([delayed(_block_sample, pure=True)(X, Y, weight, offset, threshold)
                              for (X, Y, weight), offset in zip(self._blocks, self._offsets,
                                                                strict=True)])[0]
        X, Y, weight, _ = (np.concatenate(column) for column in zip(*parts, strict=True))
        positions, summed = canonical_order(np.arange(X.shape[0]),
                                            np.concatenate([X, Y], axis=1), weight)
        sample = InMemoryRows(X, Y, weight, self.x_mean, self.x_scale, self.kernels)
        return sample.take(positions, sample_weight=summed), summed

    def targets(self):
        """Two rows and weights with the targets' weighted mean, variance and total
        weight: what the expert family is configured from."""
        return self._targets

    def whole(self):
        raise ValueError(
            "This fit needs all training rows in one memory, which Dask input does not "
            "offer. Fit in memory, or use the options the Dask path supports (solver='em' "
            "or 'lbfgs'; see the user guide page 'Data beyond one machine: Dask')."
        )


# ---- prediction ----------------------------------------------------------------


def _check_block_finite(X, estimator_name):
    if not np.isfinite(X).all():
        nan = bool(np.isnan(X).any())
        _assert_all_finite(np.array([np.nan if nan else np.inf], dtype=X.dtype),
                           input_name="X", estimator_name=estimator_name)


@single_threaded_blas
def _predict_block(function, name, x_mean, x_scale, kernels, encode, X, y=None):
    """``function`` over one block's chunks, its outputs packed side by side (float64).

    ``name``: the estimator's, for scikit-learn's message on NaN or infinity.
    """
    _check_block_finite(X, name)
    Y = None if encode is None else encode(y).astype(X.dtype, copy=False)
    rows = InMemoryRows(X, Y, None, x_mean, x_scale, kernels, buffers=_thread_buffers())
    if Y is None:
        outputs = rows.map(lambda chunk: function(chunk.X, kernels))
    else:
        outputs = rows.map(lambda chunk: function(chunk.X, kernels, chunk.Y))
    return np.concatenate([np.asarray(out, dtype=np.float64).reshape(X.shape[0], -1)
                           for out in outputs], axis=1)


def _unpack(packed, start, size, tail, dtype):
    return packed[:, start:start + size].reshape((packed.shape[0], *tail)).astype(dtype)


def map_rows(estimator, X, function, encode=None, y=None):
    """Lazy ``function(Xs, kernels[, Y])`` over the blocks of Dask ``X`` (the Dask
    form of ``BaseMixtureOfExperts._map_rows``): a tuple of Dask arrays with X's row
    chunks. ``function`` runs once per block; nothing is computed here but one
    row of zeros, which gives the outputs' shapes and dtypes."""
    check_is_fitted(estimator)
    kernels = resolve_backend(estimator.backend, X)
    check_supported(estimator, kernels, what="predict")
    X = _checked_X(estimator, X, reset=False, lengths=y is not None)
    x_mean, x_scale = estimator._x_mean, estimator._x_scale
    meta_X = np.zeros((1, X.shape[1]), dtype=X.dtype)
    meta_Y = None
    if y is not None:
        X = _known_chunks(X)
        y = _aligned(y, X, "y", numeric=estimator._y_numeric)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X and y have inconsistent numbers of samples: {X.shape[0]} "
                             f"and {y.shape[0]}.")
        # a bad target (dimensions, count) is refused now, not at compute time
        meta_Y = encode(np.zeros((1,) + y.shape[1:], dtype=y.dtype) if estimator._y_numeric
                        else estimator.classes_[:1]).astype(X.dtype)  # (a known label)
    meta = function(meta_X, kernels) if y is None else function(meta_X, kernels, meta_Y)
    layout, start = [], 0
    for out in meta:
        size = int(np.prod(out.shape[1:], dtype=np.int64))
        layout.append((start, size, out.shape[1:], out.dtype))
        start += size
    arguments = [X, "ij"] if y is None else [X, "ij", y, "i" if y.ndim == 1 else "ij"]
    # one task per block computes every output, packed side by side; each
    # output is then a lazy column slice of it
    packed = da.blockwise(
        _predict_block, "ik", function, None, type(estimator).__name__, None, x_mean, None,
        x_scale, None, kernels, None, encode, None, *arguments, new_axes={"k": start},
        concatenate=True, dtype=np.float64, meta=np.empty((0, 0)),
    )
    outputs = []
    for offset, size, tail, dtype in layout:
        out = packed.map_blocks(
            _unpack, offset, size, tail, dtype, dtype=dtype,
            chunks=(packed.chunks[0], *((n,) for n in tail)),
            **({"drop_axis": 1} if not tail else
               {"new_axis": list(range(2, 1 + len(tail)))} if len(tail) > 1 else {}),
            meta=np.empty((0,) * (1 + len(tail)), dtype=dtype))
        outputs.append(out)
    return tuple(outputs)


def weighted_mean(per_row, sample_weight):
    """Weighted mean of a lazy (n,) array as a float, in one pass (weights: Dask, NumPy
    or None; only relative weights matter)."""
    if sample_weight is None:
        return float(dask.compute(per_row.astype(np.float64).mean())[0])
    per_row = _known_chunks(per_row)
    weight = _aligned(sample_weight, per_row[:, None], "sample_weight").astype(np.float64)
    if weight.shape != per_row.shape:
        raise ValueError(f"sample_weight.shape == {weight.shape}, expected {per_row.shape}!")
    total, weighted = dask.compute(weight.sum(), (weight * per_row).sum())
    return float(weighted / total)


def n_rows(X):
    """The number of rows of a Dask collection (its lengths computed if unknown)."""
    return int(_known_chunks(_as_array(X, "X")).shape[0])


def r2_score(y_pred, y, sample_weight):
    """scikit-learn's ``r2_score`` (uniform average over targets) in one pass."""
    y_pred = _known_chunks(y_pred)
    y = _aligned(y, y_pred, "y").astype(np.float64)
    if y.ndim == 1:
        y, y_pred = y[:, None], y_pred[:, None]
    weight = (da.ones(y.shape[0], chunks=y.chunks[0]) if sample_weight is None
              else _aligned(sample_weight, y, "sample_weight").astype(np.float64))
    parts = [delayed(_r2_block, pure=True)(*b) for b in _blocks(y, y_pred.astype(np.float64),
                                                                  weight)]
    moments, residual = dask.compute(_tree(parts, _merge_r2))[0]
    total = moments["m2"]
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(total > 0, 1.0 - residual / total,
                          np.where(residual > 0, 0.0, 1.0))  # sklearn's force_finite
    return float(np.mean(scores))


def _r2_block(y, y_pred, weight):
    return _moments(y, weight), weight @ (y - y_pred) ** 2


def _merge_r2(a, b):
    return _merge_moments(a[0], b[0]), a[1] + b[1]


def accuracy(y_pred, y, sample_weight):
    """scikit-learn's ``accuracy_score`` in one pass."""
    y_pred = _known_chunks(y_pred)
    y = _aligned(y, y_pred, "y", numeric=False)
    correct = (y_pred == y).astype(np.float64)
    return weighted_mean(correct, sample_weight)
