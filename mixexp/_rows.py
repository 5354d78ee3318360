"""Where the training rows live, and passes over them in chunks.

:class:`InMemoryRows` holds the validated inputs as the user gave them
(NumPy, or CuPy for the GPU backend) with the standardisation to apply.
A pass (:meth:`InMemoryRows.map_reduce`) standardises one chunk of rows at
a time into a reused scratch buffer, hands it to a row function that
returns float64 statistics, and sums those in chunk order: no standardised
copy of X and no (n, K) array outlives a chunk, and the result depends on
the chunking only through the rounding of the final sums (and not at all on
the thread count). Rows that fit in one chunk are standardised once, on the
first pass, and their scratch is reused as it is by the later ones. It also
owns the per-chunk work arrays row functions need
(:meth:`InMemoryRows.scratch`), so solvers allocate nothing of size n. The
object counts its passes over the data, so a solver's cost can be reported
as passes per iteration. ``mixexp._dask.DaskRows``
holds chunks on Dask workers behind the same methods.

Code not yet written as row functions asks for :meth:`InMemoryRows.whole`:
the standardised copy, made once on demand (a fit that needs it pays its
memory; the common EM fit does not).

The rows initialisation starts from (:func:`canonical_rows`: distinct,
hash-sampled, in canonical order) are chosen here too, where the rows live.

Sums over the samples elsewhere (column statistics, objectives, M-step
reductions) are taken over :func:`row_blocks`, in float64, so that no
temporary is the size of the data (twice its size for float32 data).
"""

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ._backend import array_namespace, to_host

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


def _splitmix64(z):
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def row_hash(*blocks):
    """A 64-bit hash of each row of [blocks...] (side by side): (n,) uint64.

    Depends on the row's values alone (-0.0 hashes as 0.0), not on its
    position. Computed in the blocks' array namespace (NumPy or CuPy), a
    column at a time: no stacked copy of the data (the peak memory of large
    fits), and the same bits on every backend.
    """
    xp = array_namespace(blocks[0])
    h = xp.zeros(blocks[0].shape[0], dtype=np.uint64)
    for block in blocks:
        for j in range(block.shape[1]):
            bits = xp.ascontiguousarray(block[:, j] + 0.0, dtype=np.float64).view(np.uint64)
            h = _splitmix64(h ^ bits)
    return h


def hash_threshold(n_candidates, max_rows):
    """Rows whose :func:`row_hash` is at most this are sampled: about
    ``max_rows`` of ``n_candidates``."""
    return np.uint64(int(2**64 * max_rows / n_candidates) - 1)


def canonical_rows(X, Y, sample_weight, max_rows):
    """Distinct positively-weighted rows of [X, Y], sorted, with summed weights.

    Parameters
    ----------
    X, Y : arrays of shape (n, d) and (n, t)
        The user's inputs and encoded targets (before any arithmetic, so that
        equal rows are bitwise equal in every ordering), NumPy or CuPy.
    sample_weight : array of shape (n,)
    max_rows : int
        Above this many rows, a subsample chosen by row hash is used: whole
        groups of equal rows are kept or dropped together.

    Returns
    -------
    index : ndarray of shape (m,)
        Index (host) of one representative of each distinct row, in
        lexicographic order of the rows' values (so a shift of a column keeps
        the order).
    weight : ndarray of shape (m,)
        Total sample weight of each distinct row (host).

    The subsample is chosen where the data live, without stacking X and Y;
    only its rows are stacked and brought to the host (for CuPy input, the
    only per-sample data of a fit that leave the device).
    """
    xp = array_namespace(X)
    candidates = xp.flatnonzero(sample_weight > 0)
    if candidates.size > max_rows:
        threshold = hash_threshold(candidates.size, max_rows)
        if candidates.size == X.shape[0]:
            hashes = row_hash(X, Y)  # no copy of the data
        else:
            hashes = row_hash(X[candidates], Y[candidates])
        candidates = candidates[hashes <= threshold]
    rows = to_host(xp.concatenate([X[candidates], Y[candidates]], axis=1))
    return canonical_order(to_host(candidates), rows, to_host(sample_weight[candidates]))


def canonical_order(candidates, rows, weights):
    """The host half of :func:`canonical_rows`: candidate rows (host ``[X, Y]``
    side by side) sorted and merged; returns ``(index, weight)``."""
    # lexsort of the columns (first column first), then equal neighbours
    # merged: twice as fast as np.unique(axis=0), which sorts row bytes
    order = np.lexsort(rows.T[::-1])
    rows = rows[order]
    starts = np.ones(order.size, dtype=bool)
    starts[1:] = np.any(rows[1:] != rows[:-1], axis=1)
    weight = np.bincount(np.cumsum(starts) - 1, weights=weights[order])
    return candidates[order[starts]], weight


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
    """Consecutive training rows: standardised ``X`` (a scratch view), ``Y`` and weights.

    Row functions take their work arrays from :meth:`scratch`, not from the
    caller: on a Dask worker the buffers are the worker's own.
    """

    X: np.ndarray
    Y: np.ndarray
    sample_weight: np.ndarray
    rows: slice
    source: "InMemoryRows | None" = None

    def scratch(self, name, n_columns):
        """A work array of at least this chunk's rows by ``n_columns`` (see
        :meth:`InMemoryRows.scratch`)."""
        return self.source.scratch(name, n_columns)


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
    buffers : dict, optional
        Where the scratch arrays are kept: a Dask worker thread passes its
        own dict, so that its tasks reuse one set of buffers.
    """

    # All rows are here: whole() and take() serve (not so on a cluster).
    local = True

    def __init__(self, X, Y, sample_weight, x_mean, x_scale, kernels, *,
                 rows_per_chunk=None, buffers=None):
        self.kernels = kernels
        self.X, self.Y, self.sample_weight = X, Y, sample_weight
        self.x_mean, self.x_scale = x_mean, x_scale
        xp = kernels.xp
        self._mean = xp.asarray(x_mean, dtype=X.dtype)
        self._scale = xp.asarray(x_scale, dtype=X.dtype)
        if rows_per_chunk is None:
            rows_per_chunk = default_chunk_rows(X.shape[1], X.dtype.itemsize,
                                                device=kernels.device)
        self.rows_per_chunk = int(rows_per_chunk)
        self.passes = 0
        # buffers shared with other rows (a Dask worker's) may hold their rows
        self._own_buffers = buffers is None
        self._buffers = {} if buffers is None else buffers
        self._whole = None
        self._single_chunk = None
        self.total_weight = None if sample_weight is None else float(sample_weight.sum())

    @property
    def n_samples(self):
        return self.X.shape[0]

    @property
    def dtype(self):
        return self.X.dtype

    @property
    def n_features(self):
        return self.X.shape[1]

    def _standardized(self, rows, out):
        # (X - mean) / scale in X's dtype, one rounding per operation: the
        # same bits in every chunking
        self.kernels.xp.subtract(self.X[rows], self._mean, out=out)
        out /= self._scale
        return out

    def scratch(self, name, n_columns):
        """A per-chunk work array (rows of the largest chunk, ``n_columns``, X's dtype).

        Made once per ``name``, columns and dtype (a larger one is reused:
        a worker's blocks differ in length) and reused by every pass: row
        functions slice it to their chunk's rows, so no (n, K) array exists.
        """
        n_rows = min(self.n_samples, self.rows_per_chunk)
        buffer = self._buffers.get(name)
        if (buffer is None or buffer.shape[0] < n_rows or buffer.shape[1:] != (n_columns,)
                or buffer.dtype != self.X.dtype):
            buffer = self._buffers[name] = self.kernels.xp.empty((n_rows, n_columns),
                                                                 dtype=self.X.dtype)
        return buffer[:n_rows]

    def chunks(self):
        """Yield the rows as :class:`Chunk` objects; each ``X`` is valid until the next."""
        n, size = self.n_samples, self.rows_per_chunk
        standardized = self.scratch("_standardized", self.X.shape[1])
        if n <= size and self._own_buffers:
            # one chunk in a scratch of our own: its standardised rows stay
            # valid (X and the standardisation never change), so every pass
            # after the first skips the work (about a tenth of a fast pass)
            if self._single_chunk is None:
                self._single_chunk = self._standardized(slice(0, n), standardized)
            yield Chunk(self._single_chunk, self.Y, self.sample_weight, slice(0, n), self)
            return
        for start in range(0, n, size):
            rows = slice(start, min(start + size, n))
            X = self._standardized(rows, standardized[: rows.stop - start])
            yield Chunk(X, None if self.Y is None else self.Y[rows],
                        None if self.sample_weight is None else self.sample_weight[rows], rows,
                        self)

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

    def canonical_sample(self, max_rows):
        """The rows initialisation starts from: ``(TrainingData, weight)``.

        The distinct positively weighted rows (a hash-chosen subsample of
        about ``max_rows`` above it), in canonical order, with summed
        weights (``weight``, host); see ``mixexp._init.canonical_rows``.
        """
        xp = self.kernels.xp
        index, weight = canonical_rows(self.X, self.Y, self.sample_weight, max_rows)
        return self.take(xp.asarray(index), sample_weight=xp.asarray(weight)), weight

    def targets(self):
        """``(Y, sample_weight)``: what the expert family is configured from."""
        return self.Y, self.sample_weight

    def whole(self):
        """All rows standardised, as TrainingData (made once, on first request)."""
        if self._whole is None:
            X = self._standardized(slice(None), self.kernels.xp.empty_like(self.X))
            self._whole = TrainingData(X, self.Y, self.sample_weight)
        return self._whole
