"""Test configuration shared by the whole suite."""

import os

# scikit-learn's check_array_api_input only runs with SciPy's array API
# support switched on, which must happen before SciPy is first imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import functools  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mixexp._base import BaseMixtureOfExperts  # noqa: E402

_original_fit = BaseMixtureOfExperts.fit


def assert_never_decreases(history, rtol=1e-12):
    """EM's objective history must be non-decreasing (up to rounding)."""
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
        assert_never_decreases(self.objective_history_)
        if self.alpha == 0:
            assert_never_decreases(self.log_likelihood_history_)
        return result

    monkeypatch.setattr(BaseMixtureOfExperts, "fit", checked_fit)
