"""Small dense solves shared by the M-steps."""

import warnings

import numpy as np
from scipy import linalg


def solve_psd(A, b):
    """Solve the symmetric positive semi-definite system ``A x = b``.

    Cholesky when ``A`` is well conditioned; otherwise the minimum-norm
    least-squares solution, which for a consistent singular system (an
    expert owning fewer points than parameters, collinear features) is still
    an exact minimiser of the quadratic, so the M-step stays monotone.

    Both solve the system scaled symmetrically to a unit diagonal: a penalty
    on a feature of tiny scale (alpha / scale^2 = 1e20 at scale 1e-12) makes
    ``A``'s diagonal span many orders of magnitude, and the least-squares
    cut-off, relative to the largest singular value, then dropped every data
    direction. Diagonal scaling changes no exact solution.
    """
    diagonal = np.diagonal(A)
    scale = np.where(diagonal > 0, diagonal, 1.0) ** -0.5
    A_scaled = A * scale[:, None] * scale[None, :]
    b_scaled = b * (scale if b.ndim == 1 else scale[:, None])
    with warnings.catch_warnings():
        warnings.simplefilter("error", linalg.LinAlgWarning)
        try:
            x = linalg.solve(A_scaled, b_scaled, assume_a="pos", check_finite=False)
        except (linalg.LinAlgError, linalg.LinAlgWarning, ValueError):
            x = linalg.lstsq(A_scaled, b_scaled, check_finite=False)[0]
    return x * (scale if b.ndim == 1 else scale[:, None])
