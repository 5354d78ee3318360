"""Small dense solves shared by the M-steps."""

import warnings

from scipy import linalg


def solve_psd(A, b):
    """Solve the symmetric positive semi-definite system ``A x = b``.

    Cholesky when ``A`` is well conditioned; otherwise the minimum-norm
    least-squares solution, which for a consistent singular system (an
    expert owning fewer points than parameters, collinear features) is still
    an exact minimiser of the quadratic, so the M-step stays monotone.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", linalg.LinAlgWarning)
        try:
            return linalg.solve(A, b, assume_a="pos", check_finite=False)
        except (linalg.LinAlgError, linalg.LinAlgWarning, ValueError):
            pass
    return linalg.lstsq(A, b, check_finite=False)[0]
