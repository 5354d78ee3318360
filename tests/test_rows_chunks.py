"""InMemoryRows' chunks: the standardised rows every pass sees, and when they are reused."""

import numpy as np
from numpy.testing import assert_array_equal

from mixexp._kernels import get_kernels
from mixexp._rows import InMemoryRows


def _rows(n, seed, **kwargs):
    rng = np.random.default_rng(seed)
    X = rng.normal(3.0, 2.0, size=(n, 4))
    Y = rng.normal(size=(n, 1))
    return InMemoryRows(X, Y, np.ones(n), X.mean(axis=0), X.std(axis=0),
                        get_kernels("numpy"), **kwargs)


def test_one_chunk_is_standardised_once_and_reused(monkeypatch):
    rows = _rows(500, 0)
    calls = []
    standardized = InMemoryRows._standardized

    def counted(self, index, out):
        calls.append(index)
        return standardized(self, index, out)

    monkeypatch.setattr(InMemoryRows, "_standardized", counted)
    original = rows.X.copy()
    expected = (rows.X - rows.x_mean) / rows.x_scale
    for _ in range(3):
        chunks = list(rows.chunks())
        assert len(chunks) == 1
        assert_array_equal(chunks[0].X, expected)
        assert_array_equal(chunks[0].Y, rows.Y)
    assert len(calls) == 1
    assert_array_equal(rows.X, original)  # standardised into the scratch, not in place


def test_several_chunks_are_standardised_every_pass(monkeypatch):
    rows = _rows(500, 0, rows_per_chunk=128)
    calls = []
    standardized = InMemoryRows._standardized
    monkeypatch.setattr(InMemoryRows, "_standardized",
                        lambda self, index, out: calls.append(index) or standardized(self, index,
                                                                                     out))
    expected = (rows.X - rows.x_mean) / rows.x_scale
    for _ in range(2):
        parts = [chunk.X.copy() for chunk in rows.chunks()]
        assert_array_equal(np.concatenate(parts), expected)
    assert len(calls) == 2 * 4


def test_shared_buffers_are_standardised_for_each_rows():
    # a Dask worker's rows share one set of buffers: one rows' chunk must not
    # be served from another's scratch
    buffers = {}
    first, second = _rows(300, 1, buffers=buffers), _rows(300, 2, buffers=buffers)
    for rows in (first, second, first, second):
        (chunk,) = list(rows.chunks())
        assert_array_equal(chunk.X, (rows.X - rows.x_mean) / rows.x_scale)
