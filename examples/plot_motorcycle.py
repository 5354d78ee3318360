"""
================================================
Mixture of experts on the motorcycle crash data
================================================

The motorcycle crash data (Silverman 1985) record the head acceleration of
a crash-test dummy after a simulated impact. The curve has flat, falling and
rising phases, and the noise jumps from almost nothing before 14 ms to tens
of g afterwards: a single linear model, or any model with one noise level,
describes it badly. A mixture of linear experts gives each phase its own
line and its own noise level, and the gate says where each phase starts and
ends.
"""

# %%
# The data
# --------
# 133 measurements: time after impact in ms (the feature), acceleration in
# g (the target).
import matplotlib.pyplot as plt
import numpy as np

from mixexp import MixtureOfExpertsRegressor
from mixexp.datasets import load_motorcycle
from mixexp.plotting import plot_experts, plot_gate

X, y = load_motorcycle(return_X_y=True)
print(X.shape, y.shape)

# %%
# Fit four experts
# ----------------
# EM finds a local maximum of the likelihood, so a few restarts
# (``n_init``) are kept and the best is returned. The number of experts is
# chosen by BIC in :ref:`sphx_glr_auto_examples_plot_n_experts_selection.py`;
# four is its choice here.
est = MixtureOfExpertsRegressor(n_experts=4, n_init=10, random_state=0).fit(X, y)
print(f"EM iterations: {est.n_iter_}, converged: {est.converged_}")
print(f"mean log-likelihood per sample: {est.log_likelihood_:.3f}")

# %%
# The fitted experts are ordinary linear models, one line each, with their
# own noise standard deviation:
share = est.predict_gate(X).mean(axis=0)
print("expert  gate share  intercept (g)  slope (g/ms)  noise std (g)")
for k in range(est.n_experts):
    print(f"{k + 1:6d}  {share[k]:10.2f}  {est.expert_intercept_[k]:13.1f}"
          f"  {est.expert_coef_[k, 0]:12.2f}  {np.sqrt(est.expert_variance_[k]):13.1f}")

# %%
# What the model predicts
# -----------------------
# Top: each expert's line where its gate is above 5%, the mixture mean and
# the band of +/- 2 predictive standard deviations. The band is narrow
# before the impact and wide after it: the predictive standard deviation
# combines the noise of the experts in charge (widened a little by the
# uncertainty of their fitted lines) with their disagreement.
# Bottom: the gate, a smooth partition of the time axis.
fig, (top, bottom) = plt.subplots(
    2, 1, sharex=True, figsize=(8, 7), height_ratios=[3, 1], layout="constrained"
)
plot_experts(est, X, y, ax=top)
top.set_ylabel("acceleration (g)")
top.legend(loc="lower right", fontsize="small")
plot_gate(est, X, ax=bottom, margin=0.0)
bottom.set_xlabel("time after impact (ms)")
plt.show()

# %%
# Compared with one linear model
# ------------------------------
# One expert is a ridge regression with one noise level. On held-out log
# likelihood (the quality of the whole predictive distribution, not only of
# its mean) the mixture is far ahead.
from sklearn.model_selection import KFold, cross_val_score  # noqa: E402


def held_out_log_likelihood(estimator, X, y):
    return estimator.log_likelihood(X, y)


cv = KFold(n_splits=5, shuffle=True, random_state=0)
for n_experts in (1, 4):
    model = MixtureOfExpertsRegressor(n_experts=n_experts, n_init=5, random_state=0)
    scores = cross_val_score(model, X, y, cv=cv, scoring=held_out_log_likelihood)
    print(f"{n_experts} expert(s): held-out log-likelihood {scores.mean():.2f} "
          f"+/- {scores.std():.2f} per sample")
