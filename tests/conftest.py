"""Test configuration shared by the whole suite."""

import os

# scikit-learn's check_array_api_input only runs with SciPy's array API
# support switched on, which must happen before SciPy is first imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import functools  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mixexp._base import BaseMixtureOfExperts  # noqa: E402

# Helper modules of the tests (``_kernel_harness``), importable by name: the
# tests are not a package, and --import-mode=importlib does not add tests/.
sys.path.insert(0, str(Path(__file__).parent))
from mixexp._testing import objective_rtol  # noqa: E402

_original_fit = BaseMixtureOfExperts.fit


def assert_never_decreases(history, rtol=1e-12):
    """EM's objective history must be non-decreasing (up to rounding).

    ``rtol`` is the rounding level of the objective: 1e-12 for float64
    fits, 100 eps for float32 fits, whose E-step runs in float32.
    """
    history = np.asarray(history)
    if history.size < 2:
        return
    slack = rtol * max(np.abs(history).max(), 1.0)
    drops = np.diff(history)
    assert drops.min() >= -slack, f"EM decreased the objective by {-drops.min():.3e}"


@pytest.fixture(autouse=True)
def check_every_fit_is_monotone(monkeypatch):
    """Every fit made anywhere in the test suite is checked for monotone EM."""

    @functools.wraps(_original_fit)
    def checked_fit(self, *args, **kwargs):
        result = _original_fit(self, *args, **kwargs)
        X = args[0] if args else kwargs["X"]
        rtol = objective_rtol(getattr(X, "dtype", np.float64))
        assert_never_decreases(self.objective_history_, rtol)
        # with a balance penalty the objective differs from the log-likelihood
        # even at alpha=0, so only the objective is monotone; so it does with
        # estimator experts whose own penalty mixexp counts (Ridge's alpha)
        if (self.alpha == 0 and self.balance == 0
                and getattr(self, "_expert_kind", None) != "estimator"):
            assert_never_decreases(self.log_likelihood_history_, rtol)
        return result

    monkeypatch.setattr(BaseMixtureOfExperts, "fit", checked_fit)
