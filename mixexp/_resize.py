"""Adding and removing experts of a fitted model (warm start with a new ``n_experts``).

Growing splits an expert in two: the expert with the largest share of the
expected negative log-likelihood, sum_i s_i h_ik (-log p_k(y_i | x_i)) (many
samples, badly fitted). Both halves keep its gate row, with the intercept
lowered by log 2, so their gates add up to the old one exactly; their
parameters are the old ones moved by +/- a small random step. Two identical
halves would give exactly the old mixture but stay identical under EM and
gradient steps; the symmetric step breaks the tie while changing the
log-likelihood only at second order, so the larger model starts from the
smaller one's fit and training separates the halves where that pays.

Shrinking removes the experts with the smallest usage (mean gate on the
training data); the softmax of the remaining gate rows is the old gate
conditioned on the kept experts.

Re-initialising a vanished expert (one that no sample is attributed to any
more) combines both: drop it, then split the worst-fitting expert into its
slot.

The split step itself (which parameters the two halves get) belongs to the
gate and the family (``split``); this module chooses which expert to split
or drop.
"""

import numpy as np


def _split_one(model, kernels, data, params, rng):
    """Split the expert with the largest share of the expected negative log-likelihood."""
    n_samples, n_experts = data.X.shape[0], model.n_experts(params)
    resp = kernels.xp.empty((n_samples, n_experts), dtype=data.X.dtype)
    model.e_step(kernels, data.X, data.Y, params, resp)
    log_p = model.log_density(kernels, data.X, data.Y, params)
    misfit = -kernels.to_host(data.sample_weight @ (resp * log_p))
    return model.split(params, int(np.argmax(misfit)), rng)


def _prune(model, kernels, data, params, n_experts):
    gate = kernels.xp.exp(model.log_prior(kernels, data.X, params))
    usage = kernels.to_host(data.sample_weight @ gate)
    # the n_experts most used, in their original order
    keep = np.sort(np.argsort(-usage, kind="stable")[:n_experts])
    return model.take(params, keep)


def replace_expert(model, kernels, data, params, k, rng):
    """Parameters where expert ``k`` is replaced by half of a split of the worst-fitting expert.

    The other experts keep their indices; the input is unchanged. Used to
    re-initialise an expert whose responsibilities vanished.
    """
    n_experts = model.n_experts(params)
    others = np.array([j for j in range(n_experts) if j != k])
    grown = _split_one(model, kernels, data, model.take(params, others), rng)
    # the new half was appended last: move it into slot k
    order = np.concatenate([np.arange(k), [n_experts - 1], np.arange(k, n_experts - 1)])
    return model.take(grown, order)


def resize_experts(model, kernels, data, params, n_experts, rng):
    """Parameters with ``n_experts`` experts from those of a fit with another number.

    Parameters
    ----------
    model : MixtureModel
    kernels : kernel bundle
    data : TrainingData
        The data of the new fit (standardised), in the kernels' namespace.
    params : dict
        Internal parameters of the previous fit.
    n_experts : int
    rng : numpy Generator
        Draws the symmetry-breaking steps of splits.

    Returns
    -------
    params : dict
        With ``n_experts`` experts; the input is unchanged.
    """
    while model.n_experts(params) < n_experts:
        params = _split_one(model, kernels, data, params, rng)
    if model.n_experts(params) > n_experts:
        params = _prune(model, kernels, data, params, n_experts)
    return params
