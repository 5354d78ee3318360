"""
=================================================
Gated classification: experts and their regions
=================================================

A :class:`~mixexp.MixtureOfExpertsClassifier` is a set of logistic
regressions, each in charge of one region of the input space. Where the
class boundary changes direction from one region to the next, no single
logistic regression can follow it, while a mixture of a few of them can,
and stays readable: the gate draws the regions, each expert draws a
straight boundary inside its own.

The data come from :func:`~mixexp.datasets.make_moe_classification`: three
regions, each with its own linear class boundary.
"""

# %%
# Data and models
# ---------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from mixexp import MixtureOfExpertsClassifier
from mixexp.datasets import make_moe_classification
from mixexp.plotting import plot_gate

X, y, truth = make_moe_classification(
    n_samples=1500, n_features=2, n_experts=3, n_classes=2, random_state=10
)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.4, random_state=0)

logistic = LogisticRegression().fit(X_train, y_train)
moe = MixtureOfExpertsClassifier(n_experts=3, n_init=5, random_state=0).fit(X_train, y_train)

# %%
# Test accuracy and log-loss
# --------------------------
from sklearn.metrics import log_loss  # noqa: E402

for name, model in [("logistic regression", logistic), ("mixture of 3 experts", moe)]:
    proba = model.predict_proba(X_test)
    print(f"{name:22s} accuracy {model.score(X_test, y_test):.3f}   "
          f"log-loss {log_loss(y_test, proba):.3f}")

# %%
# Decision regions
# ----------------
# Left: the single logistic regression, one straight boundary. Middle: the
# mixture's probability of class 1 (red) and its decision boundary (the 0.5
# contour), which bends where the gate hands over from one expert to the
# next. Right: the gate's regions, with each expert's own boundary (dashed)
# drawn where that expert leads. The expert of the upper region sees almost
# only class 0 there: it learns a nearly constant model and has no boundary
# of its own.
low, high = X_test.min(axis=0), X_test.max(axis=0)
low, high = low - 0.05 * (high - low), high + 0.05 * (high - low)  # plot_gate's margin
grid_0, grid_1 = np.meshgrid(np.linspace(low[0], high[0], 200),
                             np.linspace(low[1], high[1], 200))
grid = np.column_stack([grid_0.ravel(), grid_1.ravel()])

fig, axes = plt.subplots(1, 3, figsize=(14, 4.6), sharey=True, layout="constrained")
for ax, (name, model) in zip(axes[:2], [("Logistic regression", logistic),
                                        ("Mixture of 3 logistic experts", moe)]):
    proba = model.predict_proba(grid)[:, 1].reshape(grid_0.shape)
    ax.contourf(grid_0, grid_1, proba, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.6)
    ax.contour(grid_0, grid_1, proba, levels=[0.5], colors="k", linewidths=1.5)
    ax.scatter(X_test[:, 0], X_test[:, 1], c=y_test, cmap="RdBu_r", s=10, edgecolors="k",
               linewidths=0.3)
    ax.set_title(name)
    ax.set_xlabel("x0")
axes[0].set_ylabel("x1")

plot_gate(moe, X_test, ax=axes[2], show_data=False)
gate = moe.predict_gate(grid)
expert_proba = moe.predict_experts(grid)[:, :, 1]  # (n, K): each expert's P(class 1)
colors = plt.cm.tab10(np.arange(moe.n_experts))
for k in range(moe.n_experts):
    # expert k's own boundary, masked outside the region where it leads
    own = np.where(gate.argmax(axis=1) == k, expert_proba[:, k], np.nan).reshape(grid_0.shape)
    axes[2].contour(grid_0, grid_1, own, levels=[0.5], colors=[colors[k]],
                    linestyles="--", linewidths=2)
axes[2].set_title("Gate regions and each expert's boundary")
plt.show()

# %%
# Reading the experts
# -------------------
# Each expert is a logistic regression on the raw features: its weight
# vector is normal to its boundary, and the nearly constant expert has
# weights close to zero. With two classes the weights are centred over the
# classes, so class 1's row is half the usual binary logistic regression
# coefficient.
test_share = moe.predict_gate(X_test).mean(axis=0)
for k in range(moe.n_experts):
    w = moe.expert_coef_[k, 1]
    print(f"expert {k + 1}: class-1 weights ({w[0]:6.2f}, {w[1]:6.2f}), "
          f"share of the test data {test_share[k]:.2f}")
