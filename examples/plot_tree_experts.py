"""
==========================================
Decision trees as experts
==========================================

``expert=`` takes any scikit-learn regressor whose ``fit`` accepts
``sample_weight``. Here the experts are shallow decision trees: each
regime of the data is a step function, which a linear expert can only
approximate by a slope, and a tree of depth two fits exactly. The gate is
still a softmax of the inputs, so the model says which tree owns which
region, and each tree gets a noise level of its own.

Training is generalised EM: every iteration fits each expert's tree with
the responsibilities as sample weights (see the user guide, "Scikit-learn
estimators as experts").
"""

# %%
# Two regimes of steps
# --------------------
# Left of 0 the target steps once, from -1 to 2, with little noise; right of
# 0 it steps twice (1, then -2, then 0.5), with more noise. 500 rows to fit, 2000 held out.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import r2_score
from sklearn.tree import DecisionTreeRegressor

from mixexp import MixtureOfExpertsRegressor
from mixexp.plotting import plot_experts


def regimes(n, rng):
    x = rng.uniform(-3.0, 3.0, size=n)
    left = x < 0
    steps = np.where(left, np.where(x > -1.5, 2.0, -1.0),
                     np.where(x > 2.0, 0.5, np.where(x > 1.0, -2.0, 1.0)))
    noise = np.where(left, 0.1, 0.4) * rng.normal(size=n)
    return x[:, None], steps + noise


rng = np.random.default_rng(0)
X, y = regimes(500, rng)
X_test, y_test = regimes(2000, rng)

# %%
# Trees against lines
# -------------------
# The same mixture of two experts, once with depth-2 trees, once with the
# default linear-Gaussian experts.
trees = MixtureOfExpertsRegressor(
    n_experts=2, expert=DecisionTreeRegressor(max_depth=2), n_init=3, random_state=0
).fit(X, y)
lines = MixtureOfExpertsRegressor(n_experts=2, n_init=3, random_state=0).fit(X, y)

for name, est in (("trees", trees), ("linear", lines)):
    print(f"{name:>6} experts: held-out R^2 {r2_score(y_test, est.predict(X_test)):.3f}, "
          f"log-likelihood {est.log_likelihood(X_test, y_test):.3f} per row")
print("noise std of the tree experts:", np.sqrt(trees.expert_variance_).round(2))

# %%
# EM's objective never decreases: a new tree that fits its weights worse
# than the one it would replace is not taken.
print("objective increments >= 0:", bool(np.all(np.diff(trees.objective_history_) >= -1e-12)))

# %%
# What each expert learned
# ------------------------
# Dashed: each expert's tree where its gate exceeds 5%; black: the mixture
# mean, with a band of two predictive standard deviations.
fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
plot_experts(trees, X, y, ax=axes[0])
axes[0].set_title("Depth-2 trees as experts")
plot_experts(lines, X, y, ax=axes[1])
axes[1].set_title("Linear experts")
axes[1].legend(loc="lower left", fontsize=8)
fig.tight_layout()
plt.show()
