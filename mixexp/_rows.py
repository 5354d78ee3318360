"""Blocks of rows: how passes over per-sample arrays bound their temporaries.

Sums over the samples (column statistics, objectives, M-step reductions)
are taken block by block, in float64, so that no temporary is the size of
the data (twice its size for float32 data): at a million rows those set the
peak memory of a fit.
"""

# Rows per block: a few MB of temporaries for the usual widths.
ROWS_PER_BLOCK = 65_536


def row_blocks(n_rows):
    """Slices covering ``range(n_rows)`` in blocks of ``ROWS_PER_BLOCK`` rows."""
    return [slice(start, start + ROWS_PER_BLOCK) for start in range(0, n_rows, ROWS_PER_BLOCK)]
