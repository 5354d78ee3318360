"""Gating modes: which experts a sample is routed to, and the posterior over them.

``"soft"`` routes every sample to every expert, weighted by the softmax gate
g. ``top_k=k`` keeps each sample's k most probable experts and renormalises
the gate over them (Shazeer et al. 2017). ``"hard"`` keeps the single most
probable expert; in training it is classification EM (Celeux & Govaert
1992): each sample goes to the expert with the largest joint g_k p_k, and
the quantity maximised is the classification log-likelihood
sum_i max_k log g_k(x_i) p_k(y_i | x_i).

The math that touches every sample (top-k selection and renormalisation,
the classification E-step) lives in the kernels; this module only decides
which kernel a mode needs. Per-sample arrays live in the kernels' namespace
(``kernels.xp``); the summaries it returns are host values.
"""

import numpy as np


def routing_k(gating, top_k, n_experts):
    """How many experts prediction keeps per sample, or None for all of them."""
    if gating == "hard":
        return 1
    if top_k is None or top_k >= n_experts:
        return None
    return int(top_k)


def routed_log_gate(kernels, log_g, gating, top_k):
    """The log gate prediction mixes with: (n, K), -inf for experts not kept.

    ``log_g`` (n, K) is the dense log gate; it is returned unchanged for
    soft gating (and for ``top_k >= K``, which keeps every expert).
    """
    k = routing_k(gating, top_k, log_g.shape[1])
    if k is None:
        return log_g
    return kernels.top_k_log_gate(log_g, k)


def posterior(kernels, log_joint, classify, resp_out=None):
    """Per-sample objective term and responsibilities from log g + log p.

    Returns ``(per_row, resp)``: with ``classify`` the classification
    E-step (max_k of the joint, one-hot responsibilities), else the usual
    log-normaliser and soft posterior.
    """
    if classify:
        return kernels.classify_log_joint(log_joint, resp_out=resp_out)
    return kernels.normalize_log_joint(log_joint, resp_out=resp_out)


def routed_e_step(model, kernels, X, Y, params, resp, gating, top_k):
    """E-step of the model prediction uses; fills ``resp`` (n, K).

    Returns log p(y_i | x_i) (n,) under the routed gate: the mixture over
    the kept experts with the renormalised gate (for ``"hard"``, the
    density of the argmax-gate expert alone). The soft case takes the
    model's (fused) E-step.
    """
    k = routing_k(gating, top_k, resp.shape[1])
    if k is None:
        return model.e_step(kernels, X, Y, params, resp)
    log_joint = kernels.top_k_log_gate(model.log_prior(kernels, X, params), k)
    log_joint += model.log_density(kernels, X, Y, params)
    return kernels.normalize_log_joint(log_joint, resp_out=resp)[0]


def _training_responsibilities(model, kernels, X, Y, params, gating, resp):
    """Fill ``resp`` (n, K) with the responsibilities training uses (the dense
    posterior, or the classification posterior for hard gating); returns the
    soft E-step's log-normaliser (n,), or None for hard gating."""
    if gating == "hard":
        log_joint = model.log_prior(kernels, X, params)
        log_joint += model.log_density(kernels, X, Y, params)
        posterior(kernels, log_joint, True, resp_out=resp)
        return None
    return model.e_step(kernels, X, Y, params, resp)


def expert_design_gram(model, kernels, rows, params, gating):
    """Each expert's weighted design moments sum_i s_i h_ik [x_i, 1][x_i, 1]^T: (K, d + 1, d + 1),
    x_i the experts' columns of the row.

    On the standardised rows, with the responsibilities h training uses and
    the (rescaled) sample weights s: the data part of the precision of each
    expert's weighted least-squares fit, in float64 on the host (one pass).
    """
    n_experts = model.n_experts(params)

    def chunk_gram(chunk):
        resp = chunk.scratch("resp", n_experts)[: chunk.X.shape[0]]
        _training_responsibilities(model, kernels, chunk.X, chunk.Y, params, gating, resp)
        weighted = resp * chunk.sample_weight[:, None].astype(resp.dtype, copy=False)
        # on the experts' own columns (expert_features)
        gram, x_sum, _, _, w_sum = kernels.weighted_moments(model.expert_view(chunk.X),
                                                            chunk.Y, weighted)
        return gram, x_sum, w_sum

    gram, x_sum, w_sum = rows.map_reduce(chunk_gram)
    d = x_sum.shape[1]
    design = np.empty((n_experts, d + 1, d + 1))
    design[:, :d, :d] = gram
    design[:, :d, d] = design[:, d, :d] = x_sum
    design[:, d, d] = w_sum
    return design


def training_summary(model, kernels, rows, params, gating, top_k):
    """Routed log-likelihood, expert usage and training shares of a fit (one pass).

    Returns ``(log_likelihood, usage, share)`` on the training rows:
    log_likelihood, the weighted mean of log p(y | x) under the routing
    prediction uses; usage (K,), the fraction of the training weight each
    expert receives from the routed gate; share (K,), the fraction it
    receives from the responsibilities training uses (the dense posterior,
    or the classification posterior for hard gating). Both sum to 1.
    """
    n_experts = model.n_experts(params)

    def chunk_summary(chunk):
        X, Y, weights = chunk.X, chunk.Y, chunk.sample_weight
        resp = chunk.scratch("resp", n_experts)[: X.shape[0]]
        log_norm = _training_responsibilities(model, kernels, X, Y, params, gating, resp)
        share = kernels.to_host(weights @ resp.astype(np.float64, copy=False))
        if routing_k(gating, top_k, n_experts) is not None:
            log_norm = routed_e_step(model, kernels, X, Y, params, resp, gating, top_k)
        gate = routed_log_gate(kernels, model.log_prior(kernels, X, params), gating, top_k)
        usage = kernels.to_host(weights @ kernels.xp.exp(gate, out=gate).astype(np.float64,
                                                                                copy=False))
        return float(weights @ log_norm), usage, share

    total, usage, share = rows.map_reduce(chunk_summary)
    return total / rows.total_weight, usage / rows.total_weight, share / rows.total_weight
