"""The softmax gating network: its penalty and its M-step.

The gate is g_k(x) = softmax_k(x . v_k + b_k) on internally standardised
inputs. Its M-step is a weighted multinomial logistic regression on soft
targets (the responsibilities), solved by damped Newton steps warm-started
from the previous gate. The line search guarantees the penalised gate
objective never decreases, which keeps EM monotone.
"""

import numpy as np
from scipy import linalg

_ARMIJO = 1e-4
_MAX_HALVINGS = 40


def gate_penalty(gate_coef, alpha):
    """alpha * ||V||^2 on the (standardised-scale) gate weights."""
    return alpha * float(np.sum(gate_coef**2))


def _gate_objective(W, log_g, gate_coef, alpha):
    return float(np.sum(W * log_g)) - gate_penalty(gate_coef, alpha)


def _center(gate_coef, gate_intercept):
    # Softmax is unchanged by a common shift of every expert's parameters;
    # removing the mean shift keeps them bounded and can only lower the
    # penalty, so the objective never decreases.
    return (
        gate_coef - gate_coef.mean(axis=0, keepdims=True),
        gate_intercept - gate_intercept.mean(),
    )


def _newton_direction(hess, grad):
    """Solve (-hess) step = grad for the ascent step, ridged for the null space."""
    neg_hess = -hess
    n_params = neg_hess.shape[0]
    # The intercept shift is a null direction of the softmax; the gradient
    # has no component along it, so a tiny ridge only makes the solve safe.
    ridge = 1e-10 * max(np.trace(neg_hess) / n_params, 1e-300)
    neg_hess[np.diag_indices(n_params)] += ridge
    try:
        return linalg.solve(neg_hess, grad, assume_a="pos", check_finite=False)
    except (linalg.LinAlgError, ValueError):
        return linalg.lstsq(neg_hess, grad, check_finite=False)[0]


def fit_gate(kernels, X, W, gate_coef, gate_intercept, alpha, max_iter=3, log_g=None):
    """Gate M-step: maximise sum_ik W_ik log g_k(x_i) - alpha ||V||^2.

    Parameters
    ----------
    kernels : kernel bundle
    X : ndarray of shape (n, d)
        Standardised inputs.
    W : ndarray of shape (n, K)
        Soft targets times sample weights.
    gate_coef, gate_intercept : ndarray of shape (K, d) and (K,)
        The starting gate (warm start).
    alpha : float
        L2 penalty on the gate weights.
    max_iter : int
        Newton steps at most.
    log_g : ndarray of shape (n, K), optional
        Scratch buffer for the log gate.

    Returns
    -------
    gate_coef, gate_intercept : new arrays, with an objective no lower than
        the starting one.
    """
    n_experts, d = gate_coef.shape
    if n_experts == 1:
        return np.zeros_like(gate_coef), np.zeros_like(gate_intercept)
    if log_g is None:
        log_g = np.empty((X.shape[0], n_experts), dtype=X.dtype)
    coef, intercept = _center(gate_coef, gate_intercept)
    kernels.log_gate(X, coef, intercept, out=log_g)
    objective = _gate_objective(W, log_g, coef, alpha)
    total_weight = float(W.sum())
    trial_log_g = np.empty_like(log_g)

    for _ in range(max_iter):
        grad, hess = kernels.gate_gradient_hessian(X, W, log_g)
        grad[:, :d] -= 2.0 * alpha * coef
        hess = hess.reshape(n_experts * (d + 1), n_experts * (d + 1))
        penalty_curvature = np.zeros((n_experts, d + 1))
        penalty_curvature[:, :d] = 2.0 * alpha
        hess[np.diag_indices_from(hess)] -= penalty_curvature.ravel()

        step = _newton_direction(hess, grad.ravel())
        decrement = float(grad.ravel() @ step)
        if not np.isfinite(decrement) or decrement <= 1e-12 * max(total_weight, 1.0):
            break
        step = step.reshape(n_experts, d + 1)

        t = 1.0
        for _ in range(_MAX_HALVINGS):
            trial_coef, trial_intercept = _center(
                coef + t * step[:, :d], intercept + t * step[:, d]
            )
            kernels.log_gate(X, trial_coef, trial_intercept, out=trial_log_g)
            trial_objective = _gate_objective(W, trial_log_g, trial_coef, alpha)
            if trial_objective >= objective + _ARMIJO * t * decrement:
                break
            t *= 0.5
        else:
            break  # no ascent found: keep the current gate
        coef, intercept, objective = trial_coef, trial_intercept, trial_objective
        log_g, trial_log_g = trial_log_g, log_g
    return coef, intercept
