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
"""

import numpy as np

# Size of the symmetry-breaking step, in units of the expert's noise
# standard deviation (Gaussian) or of the class logits (logistic).
_SPLIT_STEP = 1e-2


def _split_one(family, kernels, data, params, rng):
    n_samples, n_experts = data.X.shape[0], params["gate_coef"].shape[0]
    resp = kernels.xp.empty((n_samples, n_experts), dtype=data.X.dtype)
    family.e_step(kernels, data.X, data.Y, params, resp)
    log_p = family.log_density(kernels, data.X, data.Y, params)
    misfit = -kernels.to_host(data.sample_weight @ (resp * log_p))
    j = int(np.argmax(misfit))

    grown = {}
    for key, value in params.items():
        grown[key] = np.concatenate([value, value[j : j + 1]], axis=0)
    grown["gate_intercept"][[j, -1]] -= np.log(2.0)
    # step scale per target (Gaussian: noise standard deviation)
    scale = _SPLIT_STEP * (np.sqrt(params["variance"][j]) if "variance" in params else 1.0)
    # inputs are standardised: a step of norm ~1 over the d + 1 coordinates
    # moves each prediction by about `scale`
    n_coordinates = params["coef"].shape[-1] + 1
    for key in ("coef", "intercept"):
        shape = params[key].shape[1:]
        step = rng.standard_normal(shape) / np.sqrt(n_coordinates)
        step *= scale.reshape(-1, *(1,) * (len(shape) - 1)) if np.ndim(scale) else scale
        grown[key][j] += step
        grown[key][-1] -= step
    return grown


def _prune(kernels, data, params, n_experts):
    log_g = kernels.log_gate(data.X, params["gate_coef"], params["gate_intercept"])
    usage = kernels.to_host(data.sample_weight @ kernels.xp.exp(log_g))
    # the n_experts most used, in their original order
    keep = np.sort(np.argsort(-usage, kind="stable")[:n_experts])
    return {key: value[keep].copy() for key, value in params.items()}


def replace_expert(family, kernels, data, params, k, rng):
    """Parameters where expert ``k`` is replaced by half of a split of the worst-fitting expert.

    The other experts keep their indices; the input is unchanged. Used to
    re-initialise an expert whose responsibilities vanished.
    """
    others = [j for j in range(params["gate_coef"].shape[0]) if j != k]
    remaining = {key: value[others] for key, value in params.items()}
    grown = _split_one(family, kernels, data, remaining, rng)
    # the new half was appended last: move it into slot k
    order = np.concatenate([np.arange(k), [len(others)], np.arange(k, len(others))])
    return {key: value[order] for key, value in grown.items()}


def resize_experts(family, kernels, data, params, n_experts, rng):
    """Parameters with ``n_experts`` experts from those of a fit with another number.

    Parameters
    ----------
    family : expert family
    kernels : kernel bundle
    data : TrainingData
        The data of the new fit (standardised), in the kernels' namespace.
    params : dict of ndarray
        Internal parameters of the previous fit, expert axis first.
    n_experts : int
    rng : numpy Generator
        Draws the symmetry-breaking steps of splits.

    Returns
    -------
    params : dict of ndarray
        With ``n_experts`` rows on the expert axis; the input is unchanged.
    """
    while params["gate_coef"].shape[0] < n_experts:
        params = _split_one(family, kernels, data, params, rng)
    if params["gate_coef"].shape[0] > n_experts:
        params = _prune(kernels, data, params, n_experts)
    return params
