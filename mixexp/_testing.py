"""Invariants every fit must satisfy; shared by the property tests and the fuzzer.

Not public API.
"""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

FITTED_ARRAYS = (
    "gate_coef_",
    "gate_intercept_",
    "expert_coef_",
    "expert_intercept_",
    "expert_variance_",
)


def objective_rtol(dtype):
    """Relative rounding level of a fit's objective for input of ``dtype``.

    A float64 fit's objective is exact to ~1e-12 relative. A float32 fit
    computes in float64 but stores its responsibilities, the M-step's
    weights, in float32: its objective may wobble at ~100 float32 eps.
    """
    if np.dtype(dtype) == np.float32:
        return 100.0 * float(np.finfo(np.float32).eps)
    return 1e-12


class InvariantViolation(AssertionError):
    """A fit broke one of the invariants of :func:`check_fit`."""


def check_fit(estimator, X, y, sample_weight=None):
    """Fit ``estimator`` and check what every fit must guarantee.

    A fit either raises a ``ValueError`` (returned as the outcome
    ``"refused"``), or returns a model with finite parameters, gate rows that
    sum to 1, finite predictions, and an objective history that never
    decreases (outcome ``"fitted"``). Anything else (another exception, a
    NaN, an unexpected warning) raises :class:`InvariantViolation`.

    Returns
    -------
    outcome : {"fitted", "refused"}
    detail : str
        The error message when refused, else a summary.
    """
    with warnings.catch_warnings():
        # a clear warning about non-convergence is an honest outcome;
        # any other warning (overflow, invalid value, ...) is a defect
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            estimator.fit(X, y, sample_weight=sample_weight)
        except ValueError as error:
            return "refused", str(error)
        except Exception as error:  # noqa: BLE001 - any other failure is the finding
            raise InvariantViolation(f"fit raised {type(error).__name__}: {error}") from error
        try:
            _check_fitted_model(estimator, X, y)
        except InvariantViolation:
            raise
        except Exception as error:  # noqa: BLE001
            raise InvariantViolation(
                f"prediction raised {type(error).__name__}: {error}"
            ) from error
    return "fitted", f"log-likelihood {estimator.log_likelihood_:.4g}"


def _check_fitted_model(estimator, X, y):
    for name in FITTED_ARRAYS:
        value = getattr(estimator, name, None)
        if value is not None and not np.all(np.isfinite(value)):
            raise InvariantViolation(f"{name} is not finite: {value}")
    if hasattr(estimator, "expert_variance_") and not np.all(estimator.expert_variance_ > 0):
        raise InvariantViolation(f"non-positive variance: {estimator.expert_variance_}")
    if not np.isfinite(estimator.log_likelihood_):
        raise InvariantViolation(f"log_likelihood_ is {estimator.log_likelihood_}")

    history = np.asarray(estimator.objective_history_)
    if history.size > 1:
        slack = objective_rtol(getattr(X, "dtype", np.float64)) * max(np.abs(history).max(), 1.0)
        if np.diff(history).min() < -slack:
            raise InvariantViolation(f"objective decreased by {-np.diff(history).min():.3e}")

    gate = estimator.predict_gate(X)
    if not np.all(np.isfinite(gate)) or not np.allclose(gate.sum(axis=1), 1.0, atol=1e-6):
        raise InvariantViolation("gate rows do not sum to 1")
    if hasattr(estimator, "predict_proba"):
        proba = estimator.predict_proba(X)
        if not np.all(np.isfinite(proba)) or not np.allclose(proba.sum(axis=1), 1.0, atol=1e-6):
            raise InvariantViolation("predict_proba rows do not sum to 1")
    else:
        mean, std = estimator.predict(X, return_std=True)
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
            raise InvariantViolation("non-finite prediction")
    resp = estimator.predict_responsibilities(X, y)
    if not np.all(np.isfinite(resp)) or not np.allclose(resp.sum(axis=1), 1.0, atol=1e-6):
        raise InvariantViolation("responsibility rows do not sum to 1")


def central_differences(function, x, step=1e-6):
    """Central finite differences of a scalar ``function`` at ``x`` (1-D): the gradient."""
    grad = np.empty_like(x)
    for j in range(x.size):
        e = np.zeros_like(x)
        e[j] = step
        grad[j] = (function(x + e) - function(x - e)) / (2 * step)
    return grad
