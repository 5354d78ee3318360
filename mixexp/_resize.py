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
or drop, from K sums over the rows taken in one pass of the rows object
(``map_reduce``): the same choice in memory and on Dask workers, where
nothing of size n comes back to the client.
"""

import numpy as np


def _row_sums(rows, function):
    """``function`` summed over ``rows``: a pass of a rows object (in memory or on
    Dask workers, ``mixexp._rows``), or one call on TrainingData already in memory."""
    if hasattr(rows, "map_reduce"):
        return rows.map_reduce(function)
    return function(rows)


def _split_one(model, kernels, rows, params, rng):
    """Split the expert with the largest share of the expected negative log-likelihood.

    The shares are K float64 sums over the rows, taken in one pass: no
    per-row quantity outlives its chunk (on Dask, none leaves its worker).
    """
    n_experts = model.n_experts(params)

    def misfit(chunk):
        xp = kernels.xp
        resp = xp.empty((chunk.X.shape[0], n_experts), dtype=chunk.X.dtype)
        model.e_step(kernels, chunk.X, chunk.Y, params, resp)
        log_p = model.log_density(kernels, chunk.X, chunk.Y, params)
        # an expert with no responsibility for a row adds nothing (0 * -inf would be NaN)
        expected = resp * xp.where(resp > 0, log_p, 0.0)
        return -np.asarray(kernels.to_host(chunk.sample_weight @ expected), dtype=np.float64)

    return model.split(params, int(np.argmax(_row_sums(rows, misfit))), rng)


def _prune(model, kernels, rows, params, n_experts):
    """Keep the ``n_experts`` most used experts (weighted mean gate, one pass)."""

    def usage(chunk):
        gate = kernels.xp.exp(model.log_prior(kernels, chunk.X, params))
        return np.asarray(kernels.to_host(chunk.sample_weight @ gate), dtype=np.float64)

    used = _row_sums(rows, usage)
    # the n_experts most used, in their original order
    keep = np.sort(np.argsort(-used, kind="stable")[:n_experts])
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


def resize_experts(model, kernels, rows, params, n_experts, rng):
    """Parameters with ``n_experts`` experts from those of a fit with another number.

    Parameters
    ----------
    model : MixtureModel
    kernels : kernel bundle
    rows : rows object or TrainingData
        The rows of the new fit: ``InMemoryRows`` or ``mixexp._dask.DaskRows``
        (one pass each to choose the expert to split, and one to prune), or
        standardised TrainingData in the kernels' namespace.
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
        params = _split_one(model, kernels, rows, params, rng)
    if model.n_experts(params) > n_experts:
        params = _prune(model, kernels, rows, params, n_experts)
    return params
