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
every solver penalises the same quantity. The softmax gate's M-step
(``mixexp._gates``) subtracts it from its Newton objective.
"""



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


def balance_log_prior_gradient(gate, sample_weight, balance):
    """Penalty and its gradient in the experts' log priors (gates that are not one softmax).

    With l_ik = log g_ik as the coordinates (a tree of gates, whose leaf
    priors are sums of log-softmaxes), d penalty / d l_ik =
    ``balance * 2K s_i / S * g_ik I_k``; the gate turns it into its own
    parameters' gradient by the chain rule.

    Returns
    -------
    penalty : float
    log_prior_gradient : ndarray of shape (n, K), in the namespace of ``gate``.
    """
    n_experts = gate.shape[1]
    weights = sample_weight / sample_weight.sum()
    importance = weights @ gate
    penalty = balance * squared_cv(importance)
    gradient = (2.0 * n_experts * balance) * weights[:, None] * gate * importance[None, :]
    return penalty, gradient

