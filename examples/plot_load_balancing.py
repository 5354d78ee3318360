"""
=====================================
Load balancing: evening out the gate
=====================================

With more experts than the data need, the gate gives a large share of the
data to some experts and little to others. ``expert_usage_`` shows the
share each expert takes, and ``balance`` penalises an uneven gate (the
squared coefficient of variation of the experts' mean gate, in nats per
sample). Here eight experts are fitted to the motorcycle crash data with
three strengths of the penalty.
"""

# %%
# Fits
# ----
import matplotlib.pyplot as plt

from mixexp import MixtureOfExpertsRegressor
from mixexp.datasets import load_motorcycle
from mixexp.plotting import plot_expert_usage, plot_gate

X, y = load_motorcycle(return_X_y=True)
strengths = (0.0, 0.1, 1.0)
fits = {
    balance: MixtureOfExpertsRegressor(
        n_experts=8, balance=balance, n_init=3, random_state=0
    ).fit(X, y)
    for balance in strengths
}
for balance, est in fits.items():
    usage = est.expert_usage_
    print(f"balance={balance:<4}  smallest share {usage.min():.3f}, largest {usage.max():.3f}, "
          f"log-likelihood per sample {est.log_likelihood_:.3f}")

# %%
# Usage and gate
# --------------
# Top: each expert's share of the data, against the even share 1/8
# (dashed). Bottom: the gate over time. Without the penalty the shares range
# widely; the stronger the penalty, the closer they are to 1/8, paid for
# with a little training log-likelihood.
fig, axes = plt.subplots(2, 3, figsize=(12, 6), height_ratios=[1, 1.2],
                         layout="constrained")
for column, (balance, est) in enumerate(fits.items()):
    plot_expert_usage(est, ax=axes[0, column])
    axes[0, column].set_title(f"balance={balance}")
    axes[0, column].set_ylim(0, 0.3)
    plot_gate(est, X, ax=axes[1, column], margin=0.0)
    axes[1, column].set_xlabel("time after impact (ms)")
plt.show()
