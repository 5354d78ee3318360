"""Load balancing: a penalty that keeps the experts' average gate usage even.

The importance of expert k is its mean dense gate over the training data,
I_k = sum_i s_i g_k(x_i) / sum_i s_i (s the sample weights). The penalty is
``balance`` times the squared coefficient of variation of I (Shazeer et al.
2017),

    CV^2(I) = K sum_k I_k^2 - 1,

zero when every expert takes 1/K and K - 1 when one expert takes everything.
It is subtracted from the mean penalised log-likelihood, so ``balance`` is
in nats per sample, and it depends on the gate alone: in EM it enters the
gate M-step only, which stays a (generalised) M-step, so EM stays monotone.
The gate used is the dense, noise-free softmax, whatever the gating mode, so
every solver penalises the same quantity.
"""

import numpy as np

from ._gating import gate_penalty
from ._logistic import _ARMIJO, _MAX_HALVINGS, _center, _newton_direction


def squared_cv(importance):
    """K sum_k I_k^2 - 1 for an importance vector (K,) that sums to 1."""
    return float(importance.size * np.sum(importance**2) - 1.0)


def balance_terms(gate, sample_weight, balance):
    """Penalty and its gradient in the gate logits.

    Parameters
    ----------
    gate : ndarray of shape (n, K)
        Dense softmax gate.
    sample_weight : ndarray of shape (n,)
    balance : float

    Returns
    -------
    penalty : float
        ``balance * CV^2(I)``.
    logit_gradient : ndarray of shape (n, K)
        d penalty / d z_ik for the logits z = x V^T + b:
        ``balance * 2K s_i / S * g_ik (I_k - sum_j g_ij I_j)``.
    """
    n_experts = gate.shape[1]
    weights = sample_weight / sample_weight.sum()
    importance = weights @ gate
    penalty = balance * squared_cv(importance)
    # dI_j / dz_ik = w_i g_ij (delta_jk - g_ik), contracted with dCV^2/dI = 2K I
    spread = importance[None, :] - (gate @ importance)[:, None]
    gradient = (2.0 * n_experts * balance) * weights[:, None] * gate * spread
    return penalty, gradient


def fit_balanced_gate(kernels, X, W, sample_weight, gate_coef, gate_intercept, alpha, balance,
                      log_g=None, max_iter=3):
    """Gate M-step with load balancing.

    Maximises ``sum_ik W_ik log g_ik - alpha ||V||^2 - S balance CV^2(I)``
    (S the total sample weight) by a few damped Newton-like steps,
    warm-started from the previous gate: the direction solves the system
    of the (concave) multinomial-logistic part, whose Hessian is known, for
    the gradient of the whole objective, so it is an ascent direction; a
    backtracking line search on the whole objective accepts it. The result
    is never worse than the previous gate, so EM with this M-step stays
    monotone.

    Parameters
    ----------
    kernels : kernel bundle
    X : ndarray of shape (n, d)
    W : ndarray of shape (n, K)
        Responsibilities times sample weights.
    sample_weight : ndarray of shape (n,)
    gate_coef, gate_intercept : ndarray of shape (K, d) and (K,)
        The previous gate.
    alpha, balance : float
    log_g : ndarray of shape (n, K), optional
        Scratch buffer.
    max_iter : int
        Steps at most.

    Returns
    -------
    gate_coef, gate_intercept : ndarray of shape (K, d) and (K,)
    """
    n_experts, d = gate_coef.shape
    if n_experts == 1:
        return np.zeros_like(gate_coef), np.zeros_like(gate_intercept)
    total = float(sample_weight.sum())
    if log_g is None:
        log_g = np.empty(W.shape, dtype=X.dtype)
    trial_log_g = np.empty_like(log_g)

    def objective(coef, intercept, out):
        kernels.log_gate(X, coef, intercept, out=out)
        penalty = balance_terms(np.exp(out), sample_weight, balance)[0]
        return float(np.sum(W * out)) - gate_penalty(coef, alpha) - total * penalty

    coef, intercept = _center(gate_coef, gate_intercept)
    value = objective(coef, intercept, log_g)
    penalty_curvature = np.zeros((n_experts, d + 1))
    penalty_curvature[:, :d] = 2.0 * alpha
    for _ in range(max_iter):
        grad, hess = kernels.gate_gradient_hessian(X, W, log_g)
        grad[:, :d] -= 2.0 * alpha * coef
        logit_gradient = total * balance_terms(np.exp(log_g), sample_weight, balance)[1]
        grad[:, :d] -= logit_gradient.T @ X
        grad[:, d] -= logit_gradient.sum(axis=0)
        neg_hess = -hess.reshape(n_experts * (d + 1), n_experts * (d + 1))
        neg_hess[np.diag_indices_from(neg_hess)] += penalty_curvature.ravel()
        step = _newton_direction(neg_hess, grad.ravel())
        decrement = float(grad.ravel() @ step)
        if not np.isfinite(decrement) or decrement <= 1e-12 * max(total, 1.0):
            break
        step = step.reshape(n_experts, d + 1)
        t = 1.0
        for _ in range(_MAX_HALVINGS):
            trial_coef, trial_intercept = _center(coef + t * step[:, :d],
                                                  intercept + t * step[:, d])
            trial_value = objective(trial_coef, trial_intercept, trial_log_g)
            if trial_value >= value + _ARMIJO * t * decrement:
                break
            t *= 0.5
        else:
            break  # no ascent found: keep the current gate
        coef, intercept, value = trial_coef, trial_intercept, trial_value
        log_g, trial_log_g = trial_log_g, log_g
    return coef, intercept
