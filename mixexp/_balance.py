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

from ._logistic import fit_multinomial_logistic


def squared_cv(importance):
    """K sum_k I_k^2 - 1 for an importance vector (K,) that sums to 1 (host or device)."""
    return float(importance.size * (importance**2).sum() - 1.0)


def balance_terms(gate, sample_weight, balance):
    """Penalty and its gradient in the gate logits.

    Parameters
    ----------
    gate : ndarray of shape (n, K)
        Dense softmax gate (NumPy, or CuPy on the GPU backend).
    sample_weight : ndarray of shape (n,)
        In the namespace of ``gate``.
    balance : float

    Returns
    -------
    penalty : float
        ``balance * CV^2(I)``.
    logit_gradient : ndarray of shape (n, K)
        d penalty / d z_ik for the logits z = x V^T + b:
        ``balance * 2K s_i / S * g_ik (I_k - sum_j g_ij I_j)``, in the
        namespace of ``gate``.
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
                      log_g=None, log_g_ready=False, max_iter=3):
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
    log_g_ready : bool, default=False
        ``log_g`` holds the log gate of (gate_coef, gate_intercept) already.
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

    def balance_term(log_g):
        penalty, logit_gradient = balance_terms(kernels.xp.exp(log_g), sample_weight, balance)
        return total * penalty, total * logit_gradient

    return fit_multinomial_logistic(
        kernels, X, W, gate_coef, gate_intercept, np.full(d, float(alpha)),
        max_iter=max_iter, log_p=log_g, log_p_ready=log_g_ready, extra=balance_term,
    )
