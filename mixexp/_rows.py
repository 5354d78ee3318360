"""Where the training rows live, and passes over them in chunks.

:class:`InMemoryRows` holds the validated inputs as the user gave them
(NumPy, or CuPy for the GPU backend) with the standardisation to apply.
A pass (:meth:`InMemoryRows.map_reduce`) standardises one chunk of rows at
a time into a reused scratch buffer, hands it to a row function that
returns float64 statistics, and sums those in chunk order: no standardised
copy of X and no (n, K) array outlives a chunk, and the result depends on
the chunking only through the rounding of the final sums (and not at all on
the thread count). It also owns the per-chunk work arrays row functions
need (:meth:`InMemoryRows.scratch`), so solvers allocate nothing of size n.
The object counts its passes over the data, so a solver's
cost can be reported as passes per iteration. A Dask version will hold
chunks on workers behind the same two methods.

Code not yet written as row functions asks for :meth:`InMemoryRows.whole`:
the standardised copy, made once on demand (a fit that needs it pays its
memory; the common EM fit does not).

Sums over the samples elsewhere (column statistics, objectives, M-step
reductions) are taken over :func:`row_blocks`, in float64, so that no
temporary is the size of the data (twice its size for float32 data).
"""

from dataclasses import dataclass
from functools import cached_property

import numpy as np

# Rows per block: a few MB of temporaries for the usual widths.
ROWS_PER_BLOCK = 65_536
# A chunk's standardised scratch takes about this many bytes: chunks of
# 2**16 rows at d=10 spent 10% of a 10-iteration fit at n=1e5, d=5, K=3 on
# per-chunk overhead; at 8 MB that fit is one chunk, and the scratch of a
# fit of 1e6 rows stays a small fraction of X.
_CHUNK_BYTES = 2**23
_MIN_CHUNK_ROWS, _MAX_CHUNK_ROWS = 2**12, 2**20
# On a GPU each chunk costs dozens of kernel launches and several host
# round trips, whatever its size: chunks of 8 MB made a fit at n=1e7,
# d=10 about 100 chunks per pass, and the whole fit was only 1.5x the
# 16-core Numba one on an H200. Chunks of 256 MB keep the scratch small
# beside the data on any GPU that holds them.
_DEVICE_CHUNK_BYTES = 2**28
_MAX_DEVICE_CHUNK_ROWS = 2**26


def default_chunk_rows(n_features, itemsize, device=False):
    """Rows per chunk whose standardised scratch takes about ``_CHUNK_BYTES``
    (``_DEVICE_CHUNK_BYTES`` for data in GPU memory)."""
    chunk_bytes, most = ((_DEVICE_CHUNK_BYTES, _MAX_DEVICE_CHUNK_ROWS) if device
                         else (_CHUNK_BYTES, _MAX_CHUNK_ROWS))
    rows = chunk_bytes // max(1, n_features * itemsize)
    return int(min(max(rows, _MIN_CHUNK_ROWS), most))


def row_blocks(n_rows):
    """Slices covering ``range(n_rows)`` in blocks of ``ROWS_PER_BLOCK`` rows."""
    return [slice(start, start + ROWS_PER_BLOCK) for start in range(0, n_rows, ROWS_PER_BLOCK)]


def add_statistics(total, part):
    """``total + part`` for nested dicts / tuples of arrays and floats (``total`` may be None)."""
    if total is None:
        return part
    if isinstance(part, dict):
        return {key: add_statistics(total[key], value) for key, value in part.items()}
    if isinstance(part, tuple):
        return tuple(add_statistics(t, p) for t, p in zip(total, part, strict=True))
    return total + part


@dataclass
class TrainingData:
    """All of some rows at once, standardised: X, 2-D targets, sample weights
    (what :meth:`InMemoryRows.whole` and :meth:`InMemoryRows.take` give).

    The arrays live in the namespace of the fit's kernel bundle (on the GPU
    for backend="cupy"); ``total_weight`` is a host float.
    """

    X: np.ndarray
    Y: np.ndarray
    sample_weight: np.ndarray

    @cached_property
    def total_weight(self):
        # cached: on the GPU each sum is a round trip to the host
        return float(self.sample_weight.sum())


@dataclass
class Chunk:
    """Consecutive training rows: standardised ``X`` (a scratch view), ``Y`` and weights."""

    X: np.ndarray
    Y: np.ndarray
    sample_weight: np.ndarray
    rows: slice


class InMemoryRows:
    """Training rows held in memory, standardised chunk by chunk.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Validated inputs on the user's scale, in the namespace of ``kernels``.
    Y : ndarray of shape (n, t) or None
        Encoded 2-D targets (X's dtype); None for prediction.
    sample_weight : ndarray of shape (n,) or None
    x_mean, x_scale : ndarray of shape (d,)
        Host arrays: the standardisation ``(X - x_mean) / x_scale``.
    kernels : kernel bundle
    rows_per_chunk : int, optional
        Default: :func:`default_chunk_rows` for X's width and dtype.
    """

    def __init__(self, X, Y, sample_weight, x_mean, x_scale, kernels, *,
                 rows_per_chunk=None):
        self.kernels = kernels
        self.X, self.Y, self.sample_weight = X, Y, sample_weight
        xp = kernels.xp
        self._mean = xp.asarray(x_mean, dtype=X.dtype)
        self._scale = xp.asarray(x_scale, dtype=X.dtype)
        if rows_per_chunk is None:
            rows_per_chunk = default_chunk_rows(X.shape[1], X.dtype.itemsize,
                                                device=kernels.device)
        self.rows_per_chunk = int(rows_per_chunk)
        self.passes = 0
        self._scratch = None
        self._buffers = {}
        self._whole = None
        self.total_weight = None if sample_weight is None else float(sample_weight.sum())

    @property
    def n_samples(self):
        return self.X.shape[0]

    @property
    def dtype(self):
        return self.X.dtype

    def _standardized(self, rows, out):
        # (X - mean) / scale in X's dtype, one rounding per operation: the
        # same bits in every chunking
        self.kernels.xp.subtract(self.X[rows], self._mean, out=out)
        out /= self._scale
        return out

    def scratch(self, name, n_columns):
        """A per-chunk work array (rows of the largest chunk, ``n_columns``, X's dtype).

        Made once per ``name`` and shape and reused by every pass: row
        functions slice it to their chunk's rows, so no (n, K) array exists.
        """
        shape = (min(self.n_samples, self.rows_per_chunk), n_columns)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.shape != shape:
            buffer = self._buffers[name] = self.kernels.xp.empty(shape, dtype=self.X.dtype)
        return buffer

    def chunks(self):
        """Yield the rows as :class:`Chunk` objects; each ``X`` is valid until the next."""
        n, size = self.n_samples, self.rows_per_chunk
        if self._scratch is None:
            self._scratch = self.kernels.xp.empty((min(n, size), self.X.shape[1]),
                                                  dtype=self.X.dtype)
        for start in range(0, n, size):
            rows = slice(start, min(start + size, n))
            X = self._standardized(rows, self._scratch[: rows.stop - start])
            yield Chunk(X, None if self.Y is None else self.Y[rows],
                        None if self.sample_weight is None else self.sample_weight[rows], rows)

    def map_reduce(self, function):
        """One pass: ``function(chunk)`` on every chunk, its statistics summed in chunk order.

        ``function`` returns float64 statistics (host arrays and floats, in
        nested dicts or tuples) that add over rows.
        """
        self.passes += 1
        total = None
        for chunk in self.chunks():
            total = add_statistics(total, function(chunk))
        return total

    def map(self, function):
        """``function(chunk)`` on every chunk: a tuple of arrays whose first axis is the
        chunk's rows, gathered into arrays of all rows (prediction: no temporary
        larger than a chunk besides the outputs themselves)."""
        outputs = None
        for chunk in self.chunks():
            parts = function(chunk)
            if outputs is None:
                outputs = tuple(self.kernels.xp.empty((self.n_samples, *p.shape[1:]),
                                                      dtype=p.dtype) for p in parts)
            for output, part in zip(outputs, parts, strict=True):
                output[chunk.rows] = part
        return outputs

    def take(self, index, sample_weight=None):
        """Rows ``index`` (an array of the kernels' namespace) as standardised TrainingData,
        with their own weights or ``sample_weight``."""
        X = self._standardized(index, self.kernels.xp.empty((len(index), self.X.shape[1]),
                                                            dtype=self.X.dtype))
        weight = self.sample_weight[index] if sample_weight is None else sample_weight
        return TrainingData(X, self.Y[index], weight)

    def whole(self):
        """All rows standardised, as TrainingData (made once, on first request)."""
        if self._whole is None:
            X = self._standardized(slice(None), self.kernels.xp.empty_like(self.X))
            self._whole = TrainingData(X, self.Y, self.sample_weight)
        return self._whole
