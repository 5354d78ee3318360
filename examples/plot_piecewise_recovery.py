"""
=====================================================
Recovering the true parameters of a piecewise model
=====================================================

When the data really come from a mixture of linear experts, the fitted
model should give back the parameters that generated them.
:func:`~mixexp.datasets.make_moe_regression` draws such data and returns
the true parameters under the estimator's attribute names, so the two can
be compared directly: expert weights and intercepts, noise variances, and
the gate.

Two things must be taken care of before comparing. The experts come out in
an arbitrary order, so fitted experts are first matched to true ones. And
the softmax gate is unchanged when the same vector is added to every
expert's gate weights, so gate parameters are compared after centring them
over the experts.
"""

# %%
# Data with known parameters
# --------------------------
# 2000 samples, two features, three experts, noise standard deviation 0.3.
import matplotlib.pyplot as plt
import numpy as np
from scipy.optimize import linear_sum_assignment

from mixexp import MixtureOfExpertsRegressor
from mixexp.datasets import make_moe_regression
from mixexp.plotting import plot_gate

X, y, truth = make_moe_regression(
    n_samples=2000, n_features=2, n_experts=3, noise=0.3, random_state=3
)

# %%
# Fit and match the experts
# -------------------------
# The fit knows nothing of the truth. Experts are matched by solving an
# assignment problem on the distance between their weight vectors and
# intercepts.
est = MixtureOfExpertsRegressor(n_experts=3, n_init=5, alpha=0.0, random_state=0).fit(X, y)

fitted = np.column_stack([est.expert_coef_, est.expert_intercept_])
true = np.column_stack([truth.expert_coef, truth.expert_intercept])
cost = np.linalg.norm(fitted[:, None, :] - true[None, :, :], axis=2)
_, order = linear_sum_assignment(cost.T)  # order[j]: the fitted expert matching true expert j

# %%
# Experts: true against fitted
# ----------------------------
print("expert  parameter        true    fitted")
for j, k in enumerate(order):
    rows = [(f"w{i}", truth.expert_coef[j, i], est.expert_coef_[k, i]) for i in range(2)]
    rows += [("c", truth.expert_intercept[j], est.expert_intercept_[k]),
             ("sigma", np.sqrt(truth.expert_variance[j]), np.sqrt(est.expert_variance_[k]))]
    for name, t, f in rows:
        print(f"{j + 1:6d}  {name:9s}  {t:9.3f} {f:9.3f}")


# %%
# The gate, centred over the experts
# ----------------------------------
# Only differences between the experts' gate logits matter. The gate of the
# generator is sharp (weights of size about 4), so a few hundred samples per
# boundary pin its direction well and its scale a little less well.
def centred(coef, intercept):
    coef, intercept = np.asarray(coef), np.asarray(intercept)
    return coef - coef.mean(axis=0), intercept - intercept.mean()


true_v, true_b = centred(truth.gate_coef, truth.gate_intercept)
fit_v, fit_b = centred(est.gate_coef_[order], est.gate_intercept_[order])
print("expert      true gate (v0, v1, b)         fitted gate (v0, v1, b)")
for j in range(3):
    print(f"{j + 1:6d}   ({true_v[j, 0]:6.2f}, {true_v[j, 1]:6.2f}, {true_b[j]:6.2f})"
          f"     ({fit_v[j, 0]:6.2f}, {fit_v[j, 1]:6.2f}, {fit_b[j]:6.2f})")

# %%
# Left: every true parameter against its fitted value (on the diagonal when
# recovered). Right: the fitted gate's regions, with the points coloured by
# the expert that truly generated them (after matching): the regions and
# the colours agree away from the boundaries, where the true gate itself is
# uncertain.
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.8), layout="constrained")
pairs = {
    "expert weights": (truth.expert_coef.ravel(), est.expert_coef_[order].ravel()),
    "expert intercepts": (truth.expert_intercept, est.expert_intercept_[order]),
    "gate weights (centred)": (true_v.ravel(), fit_v.ravel()),
    "gate intercepts (centred)": (true_b, fit_b),
}
for (label, (t, f)), marker in zip(pairs.items(), "osD^"):
    left.scatter(t, f, marker=marker, label=label)
limits = np.array([min(left.get_xlim()[0], left.get_ylim()[0]),
                   max(left.get_xlim()[1], left.get_ylim()[1])])
left.plot(limits, limits, color="0.5", lw=1)
left.set_xlabel("true value")
left.set_ylabel("fitted value")
left.legend(fontsize="small")
left.set_title("Parameters")

plot_gate(est, X, ax=right, n_points=150, show_data=False)
colors = plt.cm.tab10(np.arange(3))
right.scatter(X[:, 0], X[:, 1], s=6, c=colors[order[truth.expert]], edgecolors="none")
right.set_title("Fitted gate; points by true expert")
plt.show()

# %%
# How often is the right expert chosen? The fitted gate's most probable
# expert against the expert that drew each sample. The samples' experts
# were drawn at random from the true gate, so even the true gate's most
# probable expert is not always the one that drew the sample: that is the
# ceiling.
from scipy.special import softmax  # noqa: E402

true_gate = softmax(X @ truth.gate_coef.T + truth.gate_intercept, axis=1)
ceiling = np.mean(true_gate.argmax(axis=1) == truth.expert)
agreement = np.mean(est.predict_gate(X).argmax(axis=1) == order[truth.expert])
print(f"fitted gate picks the generating expert for {agreement:.1%} of the samples "
      f"(true gate: {ceiling:.1%})")
