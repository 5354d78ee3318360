"""
==========================================
Soft, hard and top-k gating
==========================================

The gate can mix experts in three ways, set by ``gating`` and ``top_k``:

- ``gating="soft"`` (the default): every expert contributes, weighted by
  its gate probability. Near a boundary two experts share the prediction,
  and the predictive band widens where they disagree.
- ``top_k=k``: only each input's k most probable experts are mixed, the
  gate renormalised over them. Training still fits the dense model (except
  with ``gate_noise``, below); ``top_k`` changes how the fitted model
  predicts. ``top_k=1`` uses the single most probable expert.
- ``gating="hard"``: each input belongs to one expert, in training too:
  classification EM gives each sample to its most probable expert, and
  prediction uses the expert of largest gate alone.

With ``solver="adam"`` and ``gate_noise > 0`` the top-k model itself is
trained, on gate logits perturbed by Gaussian noise at every step (noisy
top-k gating, Shazeer et al. 2017).

The data are a piecewise linear function with jumps at x = 3 and x = 7 and
a different noise level on each piece.
"""

# %%
# Data
# ----
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from mixexp import MixtureOfExpertsRegressor
from mixexp.plotting import plot_experts

rng = np.random.default_rng(0)
x = rng.uniform(0, 10, 600)
piece = np.digitize(x, [3.0, 7.0])
slope, intercept, noise = np.array([0.8, -1.0, 0.5]), np.array([0.0, 9.0, -6.0]), np.array(
    [0.2, 0.5, 0.3]
)
y = slope[piece] * x + intercept[piece] + noise[piece] * rng.standard_normal(x.size)
X = x[:, None]
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.5, random_state=0)

# %%
# Four ways to gate
# -----------------
models = {
    "soft": MixtureOfExpertsRegressor(n_experts=3, n_init=5, random_state=0),
    "soft training, top_k=1": MixtureOfExpertsRegressor(
        n_experts=3, top_k=1, n_init=5, random_state=0
    ),
    "hard (classification EM)": MixtureOfExpertsRegressor(
        n_experts=3, gating="hard", n_init=5, random_state=0
    ),
    "noisy top-2 (Adam)": MixtureOfExpertsRegressor(
        n_experts=3, solver="adam", top_k=2, gate_noise=1.0, learning_rate_init=0.05,
        batch_size=50, max_iter=500, n_init=5, random_state=0,
    ),
}
rows = []
for name, est in models.items():
    est.fit(X_train, y_train)
    rows.append({"gating": name, "held-out log-likelihood": est.log_likelihood(X_test, y_test),
                 "held-out R^2": est.score(X_test, y_test),
                 "expert usage": np.round(np.sort(est.expert_usage_), 2)})
print(pd.DataFrame(rows).set_index("gating").round(3).to_string())

# %%
# On data whose pieces really are separate, all four find the three pieces.
# They differ at the jumps. The soft model's gate is steep but smooth, so
# its mean passes through the gap and its band opens up there: within the
# overlap it honestly does not know which piece a point belongs to. The
# ``top_k=1`` and hard models jump from one line to the next and keep the
# band of a single expert. The soft model with ``top_k=1`` and the hard
# model use the same routing at prediction time, but were trained
# differently (dense likelihood against classification likelihood), so
# their experts and boundaries need not be identical.
#
# The noisy top-2 model, trained by Adam on mini-batches, stops with a much
# less steep gate: its boundaries are blurred over about a unit of x, and
# its held-out scores are the lowest. Noisy top-k gating is meant for many
# experts trained on large or streaming data, where the noise keeps experts
# just outside the top k in use; on a small problem like this one, EM's
# exact M-steps are hard to beat.
fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True, sharey=True,
                         layout="constrained")
for ax, (name, est) in zip(axes.ravel(), models.items()):
    plot_experts(est, X_train, y_train, ax=ax, n_points=800)
    ax.set_title(name)
    ax.set_xlim(1.5, 8.5)
axes[0, 0].legend(loc="lower left", fontsize="small")
plt.show()

# %%
# ``predict_gate`` always returns the dense softmax gate: top-k and hard
# gating act on top of it. At x = 3, where two pieces meet:
at_boundary = np.array([[3.0]])
for name, est in models.items():
    print(f"{name:26s} dense gate {np.round(est.predict_gate(at_boundary)[0], 3)}")
