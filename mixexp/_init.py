"""Starting points for EM: initial responsibilities, then one M-step.

Two guarantees shape this module.

* Row order and sample weights: the start is computed on the distinct rows
  of the weighted data, in a canonical (sorted) order, with the weights of
  repeated rows summed. Shuffling the rows, or replacing repeated rows by a
  weight, gives the same start (scikit-learn's sample-weight equivalence).
* Nested restarts: start ``i`` depends only on ``(seed, i)``, so fitting
  with more starts explores a superset and never ends with a worse optimum.
"""

import numpy as np

from ._gates._softmax import INITIAL_GATE_NEWTON_STEPS
from ._rows import canonical_rows, row_hash  # noqa: F401 (the starts' rows live with the rows)

# Kinds of start cycled through by ``n_init``; k-means alone lands in the
# same basin every time, so it is interleaved with random ones.
START_KINDS = {
    "kmeans": ("kmeans", "random_responsibilities", "random_partition", "random_subsets"),
    "random": ("random_responsibilities", "random_partition", "random_subsets"),
}
# Hard partitions are softened so no expert starts empty and the initial
# gate fit has finite weights.
_PARTITION_SMOOTHING = 0.1
# A random-subsets start gives each expert a few random rows (as many as Z
# has columns, plus one) and spreads this much of each other row's
# responsibility evenly. Starts that only partition the data leave every
# expert a blend of all regimes; an expert fitted to a handful of rows can
# start on a regime that holds a minority of the data. On the tone data
# (mixtools), two experts reach mixtools' optimum from 6 of 60 such starts
# and from none of k-means' or the partitions' (subsets of Z's width
# reached it once in 60, one row more 5 times).
_SUBSET_BACKGROUND = 1e-3
_KMEANS_MAX_ITER = 100


def start_kind(init_params, index):
    """Which kind of start the ``index``-th initialisation uses."""
    kinds = START_KINDS[init_params]
    return kinds[index % len(kinds)]


def _weighted_kmeans(Z, weight, n_clusters, rng):
    """Weighted k-means++ seeding and Lloyd iterations: labels (m,)."""
    m = Z.shape[0]
    centers = np.empty((n_clusters, Z.shape[1]))
    centers[0] = Z[rng.choice(m, p=weight / weight.sum())]
    closest = np.sum((Z - centers[0]) ** 2, axis=1)
    for c in range(1, n_clusters):
        mass = weight * closest
        if mass.sum() <= 0:  # fewer distinct points than clusters
            centers[c] = Z[rng.integers(m)]
        else:
            centers[c] = Z[rng.choice(m, p=mass / mass.sum())]
        closest = np.minimum(closest, np.sum((Z - centers[c]) ** 2, axis=1))

    # Lloyd iterations until the centers move less than scikit-learn's
    # KMeans tolerance (1e-4 of the mean variance, in squared distance): a
    # start needs the clusters, not their last digits
    tolerance = 1e-4 * np.mean(np.var(Z, axis=0))
    sums = np.empty_like(centers)
    for _ in range(_KMEANS_MAX_ITER):
        # |z - c|^2 less |z|^2, which is the same for every center of a row
        labels = np.argmin(np.sum(centers**2, axis=1) - 2.0 * Z @ centers.T, axis=1)
        # weighted means of every cluster at once (bincount per column)
        mass = np.bincount(labels, weights=weight, minlength=n_clusters)
        for j in range(Z.shape[1]):
            sums[:, j] = np.bincount(labels, weights=weight * Z[:, j], minlength=n_clusters)
        filled = mass > 0  # an emptied cluster keeps its center
        shift = np.sum((sums[filled] / mass[filled, None] - centers[filled]) ** 2)
        centers[filled] = sums[filled] / mass[filled, None]
        if shift <= tolerance:
            break
    return np.argmin(np.sum(centers**2, axis=1) - 2.0 * Z @ centers.T, axis=1)


def _smoothed_one_hot(labels, n_experts):
    resp = np.full((labels.size, n_experts), _PARTITION_SMOOTHING / n_experts)
    resp[np.arange(labels.size), labels] += 1.0 - _PARTITION_SMOOTHING
    return resp


def initial_responsibilities(kind, Z, weight, n_experts, rng):
    """Responsibilities (m, K) of one start, on standardised canonical rows ``Z``."""
    m = Z.shape[0]
    if kind == "kmeans":
        return _smoothed_one_hot(_weighted_kmeans(Z, weight, n_experts, rng), n_experts)
    if kind == "random_partition":
        return _smoothed_one_hot(rng.integers(n_experts, size=m), n_experts)
    if kind == "random_responsibilities":
        return rng.dirichlet(np.ones(n_experts), size=m)
    if kind == "random_subsets":
        return _random_subsets(Z, weight, n_experts, rng)
    raise ValueError(f"Unknown start kind {kind!r}.")


def _random_subsets(Z, weight, n_experts, rng):
    """Each expert owns a few random distinct rows; the rest is shared faintly."""
    m = Z.shape[0]
    size = min(Z.shape[1] + 1, max(1, m // n_experts))
    chosen = rng.choice(m, size=size * n_experts, replace=False, p=weight / weight.sum())
    resp = np.full((m, n_experts), _SUBSET_BACKGROUND / n_experts)
    owner = np.repeat(np.arange(n_experts), size)
    resp[chosen] = 0.0
    resp[chosen, owner] = 1.0
    return resp


def initial_params(model, kernels, data, neutral_params, resp, balance=0.0):
    """One M-step from responsibilities ``resp`` on ``data``: the start."""
    weighted = resp * data.sample_weight[:, None]
    return model.m_step(kernels, data, neutral_params, weighted,
                        gate_steps=INITIAL_GATE_NEWTON_STEPS, balance=balance)
