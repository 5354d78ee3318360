"""Weighted multinomial logistic regression by damped Newton steps.

One solver serves two M-steps: the softmax gate (soft targets = weighted
responsibilities) and each expert of the classifier (targets = the expert's
weights times the one-hot classes). The line search guarantees the penalised
objective never decreases, which keeps EM monotone.
"""

import numpy as np
from scipy import linalg

_ARMIJO = 1e-4
_MAX_HALVINGS = 40


def _penalised_objective(targets, log_p, coef, penalty):
    return float(np.sum(targets * log_p)) - float(np.sum(penalty * coef**2))


def _center(coef, intercept):
    # Softmax is unchanged by a common shift of every class's parameters;
    # removing the mean shift keeps them bounded and can only lower the
    # penalty, so the objective never decreases.
    return coef - coef.mean(axis=0, keepdims=True), intercept - intercept.mean()


def _newton_direction(neg_hess, grad):
    """Solve neg_hess @ step = grad, ridged for the softmax null space."""
    n_params = neg_hess.shape[0]
    # The common shift is a null direction of the softmax; the gradient has
    # no component along it, so a tiny ridge only makes the solve safe.
    ridge = 1e-10 * max(np.trace(neg_hess) / n_params, 1e-300)
    neg_hess[np.diag_indices(n_params)] += ridge
    try:
        return linalg.solve(neg_hess, grad, assume_a="pos", check_finite=False)
    except (linalg.LinAlgError, ValueError):
        return linalg.lstsq(neg_hess, grad, check_finite=False)[0]


def fit_multinomial_logistic(kernels, X, targets, coef, intercept, penalty, *, max_iter=3,
                             log_p=None):
    """Maximise sum_ic T_ic log softmax_c(x_i . v_c + b_c) - sum_cj penalty_j v_cj^2.

    Parameters
    ----------
    kernels : kernel bundle
    X : ndarray of shape (n, d)
    targets : ndarray of shape (n, C)
        Non-negative weighted targets T (soft labels times sample weights).
    coef, intercept : ndarray of shape (C, d) and (C,)
        Starting point (warm start).
    penalty : ndarray of shape (d,)
        L2 penalty per feature (intercepts are not penalised).
    max_iter : int
        Newton steps at most.
    log_p : ndarray of shape (n, C), optional
        Scratch buffer for the log-probabilities.

    Returns
    -------
    coef, intercept : new arrays whose objective is no lower than the start's.
    """
    n_classes, d = coef.shape
    if log_p is None:
        log_p = np.empty((X.shape[0], n_classes), dtype=X.dtype)
    coef, intercept = _center(coef, intercept)
    kernels.log_gate(X, coef, intercept, out=log_p)  # log-softmax of a linear map
    objective = _penalised_objective(targets, log_p, coef, penalty)
    total_weight = float(targets.sum())
    trial_log_p = np.empty_like(log_p)
    penalty_curvature = np.zeros((n_classes, d + 1))
    penalty_curvature[:, :d] = 2.0 * penalty

    for _ in range(max_iter):
        grad, hess = kernels.gate_gradient_hessian(X, targets, log_p)
        grad[:, :d] -= 2.0 * penalty * coef
        neg_hess = -hess.reshape(n_classes * (d + 1), n_classes * (d + 1))
        neg_hess[np.diag_indices_from(neg_hess)] += penalty_curvature.ravel()

        step = _newton_direction(neg_hess, grad.ravel())
        decrement = float(grad.ravel() @ step)
        if not np.isfinite(decrement) or decrement <= 1e-12 * max(total_weight, 1.0):
            break
        step = step.reshape(n_classes, d + 1)

        t = 1.0
        for _ in range(_MAX_HALVINGS):
            trial_coef, trial_intercept = _center(
                coef + t * step[:, :d], intercept + t * step[:, d]
            )
            kernels.log_gate(X, trial_coef, trial_intercept, out=trial_log_p)
            trial_objective = _penalised_objective(targets, trial_log_p, trial_coef, penalty)
            if trial_objective >= objective + _ARMIJO * t * decrement:
                break
            t *= 0.5
        else:
            break  # no ascent found: keep the current parameters
        coef, intercept, objective = trial_coef, trial_intercept, trial_objective
        log_p, trial_log_p = trial_log_p, log_p
    return coef, intercept
