"""
========================================================
A tree of gates against a flat gate with as many experts
========================================================

A hierarchical mixture of experts (Jordan & Jacobs 1994) gates its experts
with a tree: the root splits the input space softly in two, and each half
is split again by a gate of its own. A flat mixture with the same four
experts has one softmax gate, whose regions are where one of four linear
functions is largest.

Some partitions are natural for a tree and impossible for a flat gate.
Below, the root splits on :math:`x_1`; its left child splits on
:math:`x_2` at +1.5 and its right child at -1.5. The four regions meet
along :math:`x_1 = 0` in a step, which the largest of four linear
functions cannot draw. Both models are fitted to data drawn from that
tree and compared on held-out data.
"""

# %%
# Data drawn from a known two-level tree
# --------------------------------------
import matplotlib.pyplot as plt
import numpy as np

from mixexp import HierarchicalMixtureOfExpertsRegressor, MixtureOfExpertsRegressor
from mixexp.datasets import load_motorcycle
from mixexp.plotting import plot_gate, plot_node_gates


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def two_level_tree(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-3, 3, size=(n, 2))
    right = sigmoid(6 * X[:, 0])
    upper_left, upper_right = sigmoid(6 * (X[:, 1] - 1.5)), sigmoid(6 * (X[:, 1] + 1.5))
    gate = np.column_stack([(1 - right) * (1 - upper_left), (1 - right) * upper_left,
                            right * (1 - upper_right), right * upper_right])
    coef = np.array([[1.0, 2.0], [-2.0, 1.0], [0.5, -1.5], [-1.0, -2.0]])
    intercept = np.array([0.0, 3.0, -3.0, 1.0])
    leaf = (rng.random(n)[:, None] > np.cumsum(gate, axis=1)).sum(axis=1)
    y = (X @ coef.T + intercept)[np.arange(n), leaf] + 0.2 * rng.standard_normal(n)
    return X, y


X, y = two_level_tree(3000, seed=0)
X_test, y_test = two_level_tree(3000, seed=1)

# %%
# Fit both models
# ---------------
# The same four linear-Gaussian experts, the same starts.
tree = HierarchicalMixtureOfExpertsRegressor(branching=(2, 2), n_init=4, random_state=0)
flat = MixtureOfExpertsRegressor(n_experts=4, n_init=4, random_state=0)
for name, est in [("tree (2, 2)", tree), ("flat, 4 experts", flat)]:
    est.fit(X, y)
    print(f"{name:16s} held-out R^2 {est.score(X_test, y_test):.4f}, "
          f"log-likelihood {est.log_likelihood(X_test, y_test):.4f} per sample, "
          f"BIC {est.bic(X_test, y_test):.0f}")

# %%
# The regions each gate draws
# ---------------------------
# The tree draws the step along :math:`x_1 = 0`; the flat gate bends its
# four regions to approximate it and misroutes the points near the step.
fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
plot_gate(tree, X[:600], ax=axes[0])
axes[0].set_title("hierarchical, branching=(2, 2)")
plot_gate(flat, X[:600], ax=axes[1])
axes[1].set_title("flat, n_experts=4")
fig.tight_layout()

# %%
# One level at a time
# -------------------
# On a single input, :func:`~mixexp.plotting.plot_node_gates` draws each
# node's own gate, one row per level, and the leaves' gate (the product
# along each path) last. On the motorcycle data the root splits the time
# axis near 21 ms, between the dip of the acceleration and its rebound;
# the second level splits each half again: the flat start from the dip
# (near 14 ms), the rebound from the tail (near 34 ms).
X_moto, y_moto = load_motorcycle(return_X_y=True)
moto = HierarchicalMixtureOfExpertsRegressor(branching=(2, 2), n_init=4, random_state=0)
moto.fit(X_moto, y_moto)
axes = plot_node_gates(moto, X_moto)
axes[0].set_title("motorcycle data, branching=(2, 2)")
plt.tight_layout()
plt.show()
