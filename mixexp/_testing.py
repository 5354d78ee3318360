"""Invariants every fit must satisfy; shared by the property tests and the fuzzer.

Not public API.
"""

import math
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ._validation import rescaled_sample_weight

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


def check_stream(estimator, batches, classes=None):
    """Feed ``batches`` of ``(X, y, sample_weight)`` to ``partial_fit`` and check the model.

    As :func:`check_fit`, but the objective history need not increase (each
    entry is one batch's) and the model is checked on all the rows.
    """
    X = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            for i, (X_batch, y_batch, weight) in enumerate(batches):
                extra = {"classes": classes} if classes is not None and i == 0 else {}
                estimator.partial_fit(X_batch, y_batch, sample_weight=weight, **extra)
        except ValueError as error:
            return "refused", str(error)
        except Exception as error:  # noqa: BLE001 - any other failure is the finding
            raise InvariantViolation(
                f"partial_fit raised {type(error).__name__}: {error}") from error
        try:
            _check_fitted_model(estimator, X, y, monotone=False)
        except InvariantViolation:
            raise
        except Exception as error:  # noqa: BLE001
            raise InvariantViolation(
                f"prediction raised {type(error).__name__}: {error}") from error
    return "fitted", f"log-likelihood {estimator.log_likelihood_:.4g}"


# Tolerances of check_one_expert on converged fits (tol=1e-10): the predictions'
# error in units of the target's spread (regressor), or in probability.
ONE_EXPERT_TOLERANCE = {"em": 1e-4, "lbfgs": 5e-3, "adam": 5e-2}


def check_one_expert(estimator, X, y, sample_weight=None):
    """A fitted, converged one-expert model against Ridge / LogisticRegression.

    The references (:func:`ridge_predictions`, :func:`logistic_probabilities`)
    solve the same penalised problem in standardised units. Returns a
    summary, or None when there is nothing to compare (several experts, a
    fit that did not converge, a reference that did not); raises
    :class:`InvariantViolation` on a mismatch.
    """
    if estimator.n_experts != 1 or not estimator.converged_:
        return None
    tolerance = ONE_EXPERT_TOLERANCE[estimator.solver]
    if np.asarray(X).dtype == np.float32:  # computed in float32
        tolerance = max(tolerance, 2e-2)
    weight = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
    # weights whose total overflows: the same problem at a representable scale
    weight, exponent = rescaled_sample_weight(weight)
    reference_X = X
    if isinstance(estimator.alpha, str):
        if not hasattr(estimator, "expert_alpha_"):  # alpha="auto" without a GCV choice
            return None
        # alpha="auto": Ridge at the chosen penalty per standardised weight
        # (centred first: a column of offset 1e6 and spread 1e-8 divided by its
        # spread alone would lose its digits)
        reference_X = (np.asarray(X, dtype=np.float64) - estimator._x_mean) / estimator._x_scale
        alpha = math.ldexp(float(estimator.expert_alpha_[0]), -exponent)
    else:
        alpha = math.ldexp(float(estimator.alpha), -exponent)
    if hasattr(estimator, "predict_proba"):
        try:
            with np.errstate(all="ignore"):
                reference, optimum = logistic_probabilities(X, y, alpha, weight,
                                                            return_objective=True)
        except np.linalg.LinAlgError:
            reference = None
        if reference is None or not np.all(np.isfinite(reference)):
            return None
        error = float(np.abs(estimator.predict_proba(X) - reference).max())
        # a nearly flat objective (separable classes, a negligible penalty) has
        # far-apart points of the same value: then the objective is compared
        if error > tolerance and estimator.objective_history_[-1] >= optimum - 1e-7:
            return f"one expert at the reference's objective ({optimum:.6g})"
    else:
        keep = weight > 0
        Y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        w = weight[keep] / weight[keep].sum()
        spread = np.sqrt(w @ (Y[keep] - w @ Y[keep]) ** 2)
        # float32 fits cast the targets to float32 (rounding at 6e-8 relative)
        rounding = 1e-5 if np.asarray(X).dtype == np.float32 else 1e-9
        unit = np.maximum(spread, rounding * np.abs(Y[keep]).max(axis=0))
        unit = np.where(unit > 0, unit, 1.0)
        reference = ridge_predictions(reference_X, y, alpha, weight)
        prediction = np.asarray(estimator.predict(X), dtype=np.float64).reshape(reference.shape)
        # compared on the weighted rows only: with fewer of them than parameters and
        # a negligible penalty, predictions elsewhere are not determined
        error = float((np.abs(prediction - reference)[keep] / unit).max())
    if not error <= tolerance:
        raise InvariantViolation(
            f"one expert differs from the reference by {error:.3g} (tolerance {tolerance:g})")
    return f"one expert within {error:.2g} of the reference"


def _check_fitted_model(estimator, X, y, monotone=True):
    for name in FITTED_ARRAYS:
        value = getattr(estimator, name, None)
        if value is not None and not np.all(np.isfinite(value)):
            raise InvariantViolation(f"{name} is not finite: {value}")
    if hasattr(estimator, "expert_variance_") and not np.all(estimator.expert_variance_ > 0):
        raise InvariantViolation(f"non-positive variance: {estimator.expert_variance_}")
    if not np.isfinite(estimator.log_likelihood_):
        raise InvariantViolation(f"log_likelihood_ is {estimator.log_likelihood_}")

    history = np.asarray(estimator.objective_history_)
    if monotone and history.size > 1:
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



def central_second_differences(function, x, step=1e-4):
    """Central finite differences of a scalar ``function`` at ``x`` (1-D): the Hessian."""
    size = x.size
    hessian = np.empty((size, size))
    e = np.eye(size) * step
    f0 = function(x)
    for i in range(size):
        hessian[i, i] = (function(x + e[i]) - 2 * f0 + function(x - e[i])) / step**2
        for j in range(i):
            hessian[i, j] = hessian[j, i] = (
                function(x + e[i] + e[j]) - function(x + e[i] - e[j])
                - function(x - e[i] + e[j]) + function(x - e[i] - e[j])) / (4 * step**2)
    return hessian

# ---- references for one expert -------------------------------------------------------
def _weighted_standardised(X, sample_weight):
    keep = sample_weight > 0
    w = sample_weight[keep] / sample_weight[keep].sum()
    X = np.asarray(X, dtype=np.float64)[keep]
    mean = w @ X
    scale = np.sqrt(w @ (X - mean) ** 2)
    constant = X.max(axis=0) == X.min(axis=0)
    scale[constant | ~(scale > 0)] = 1.0
    return (X - mean) / scale, scale, keep


def ridge_predictions(X, y, alpha, sample_weight=None):
    """Ridge(alpha) fitted to (X, y, sample_weight), solved in standardised units.

    Returns the predictions at X (n, t). Least squares on the weighted,
    equilibrated augmented design: accurate for any column scale, where
    scikit-learn's solvers lose digits beyond scales of about 1e6.
    """
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    sample_weight = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
    Y = np.asarray(y, dtype=np.float64).reshape(n, -1)
    Z, scale, keep = _weighted_standardised(X, sample_weight)
    root = np.sqrt(sample_weight[keep])
    with np.errstate(over="ignore", divide="ignore", under="ignore"):
        penalty_rows = np.diag(np.minimum(np.sqrt(alpha) * np.minimum(1 / scale, 1e150), 1e150))
    design = np.vstack([np.column_stack([Z, np.ones(len(Z))]) * root[:, None],
                        np.column_stack([penalty_rows, np.zeros(d)])])
    unit = np.linalg.norm(design, axis=0)
    unit[unit == 0] = 1.0
    rhs = np.vstack([Y[keep] * root[:, None], np.zeros((d, Y.shape[1]))])
    solution = np.linalg.lstsq(design / unit, rhs, rcond=None)[0] / unit[:, None]
    mean = (sample_weight[keep] / sample_weight[keep].sum()) @ X[keep]
    return np.column_stack([(X - mean) / scale, np.ones(n)]) @ solution


def logistic_probabilities(X, y, alpha, sample_weight=None, max_iter=200,
                           return_objective=False):
    """LogisticRegression(C=1/(2 alpha)) on (X, y, sample_weight) by damped Newton.

    The binary model for two classes, the multinomial one for more; solved
    in standardised units (any column scale). Returns the class
    probabilities at X (n, C), columns in sorted class order, or None when
    Newton did not converge (a separable problem with a tiny penalty); with
    ``return_objective`` also the mean penalised log-likelihood at the optimum
    (the estimators' objective).
    """
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    sample_weight = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
    Z, scale, keep = _weighted_standardised(X, sample_weight)
    mean = (sample_weight[keep] / sample_weight[keep].sum()) @ X[keep]
    classes, codes = np.unique(np.asarray(y)[keep], return_inverse=True)
    all_classes = np.unique(y)
    Z1 = np.column_stack([Z, np.ones(len(Z))])
    w = sample_weight[keep]
    binary = all_classes.size == 2
    n_logits, q = (1 if binary else all_classes.size), Z1.shape[1]
    onehot = (np.asarray(y)[keep][:, None] == all_classes[None, :]).astype(float)
    targets = onehot[:, -n_logits:]
    with np.errstate(over="ignore", divide="ignore", under="ignore"):
        inverse = np.minimum(1.0 / scale, 1e150)
    penalty = np.concatenate([np.minimum(alpha * inverse**2, 1e200), [0.0]])

    def log_proba(theta, A):
        logits = A @ theta.reshape(n_logits, q).T
        if binary:
            logits = np.column_stack([np.zeros(len(A)), logits])
        top = logits.max(axis=1, keepdims=True)
        return logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))

    def loss(theta):
        return (-np.sum(w[:, None] * onehot * log_proba(theta, Z1))
                + np.sum(penalty * theta.reshape(n_logits, q) ** 2))

    theta = np.zeros(n_logits * q)
    for _ in range(max_iter):
        P = np.exp(log_proba(theta, Z1))[:, -n_logits:]
        grad = ((w[:, None] * (P - targets)).T @ Z1
                + 2 * penalty * theta.reshape(n_logits, q)).ravel()
        hess = np.zeros((n_logits * q, n_logits * q))
        for a in range(n_logits):
            for b in range(n_logits):
                weight = w * P[:, a] * ((a == b) - P[:, b])
                hess[a * q:(a + 1) * q, b * q:(b + 1) * q] = Z1.T @ (weight[:, None] * Z1)
        hess += np.diag(np.tile(2 * penalty, n_logits))
        unit = np.sqrt(np.maximum(np.diag(hess), 1e-300))
        step = -np.linalg.lstsq(hess / unit[:, None] / unit[None, :], grad / unit,
                                rcond=1e-14)[0] / unit
        t, current = 1.0, loss(theta)
        while loss(theta + t * step) > current and t > 1e-12:
            t /= 2
        theta = theta + t * step
        if np.abs(t * step * unit).max() < 1e-10 * max(1.0, np.abs(theta * unit).max()):
            A = np.column_stack([(X - mean) / scale, np.ones(n)])
            proba = np.exp(log_proba(theta, A))
            return (proba, -loss(theta) / w.sum()) if return_objective else proba
    return (None, None) if return_objective else None
