"""
=========================================================
Standard errors, confidence intervals and choosing K
=========================================================

A fitted mixture of experts reports a coefficient table like a regression
package does: :meth:`~mixexp.MixtureOfExpertsRegressor.summary` gives each
gate and expert parameter with its standard error, z statistic, p-value and
confidence interval, from the analytic observed information (or from a
bootstrap). :func:`~mixexp.select_n_experts` chooses the number of experts
by BIC, AIC, ICL or cross-validation.
"""

# %%
# Data with a known answer
# ------------------------
# Two linear experts in three features, behind a gate on the first feature.
# Expert 0 ignores ``x2``; expert 1 ignores ``x1``: their intervals should
# cover zero there.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mixexp import MixtureOfExpertsRegressor, select_n_experts

rng = np.random.default_rng(0)
n = 600
X = pd.DataFrame(rng.standard_normal((n, 3)), columns=["x0", "x1", "x2"])
gate = 1 / (1 + np.exp(-3.0 * X["x0"]))  # P(expert 1 | x)
expert = rng.uniform(size=n) < gate
y = np.where(expert, -1.0 + 1.5 * X["x2"], 1.0 + 2.0 * X["x1"])
y = y + 0.4 * rng.standard_normal(n)

est = MixtureOfExpertsRegressor(n_experts=2, alpha=0, n_init=5, random_state=0).fit(X, y)
table = est.summary(X, y)
print(table.round(3))

# %%
# The gate is coded relative to expert 0 (rows for expert 1 only), so its
# ``x0`` coefficient is the log-odds of expert 1 against expert 0 per unit of
# ``x0``. Which expert is "0" depends on the fit; here the gate's sign tells.
# ``sigma`` rows have no z or p-value: a noise level is positive.
#
# Intervals as a plot
# -------------------
# The 95% intervals of every coefficient except the noise levels; the ones
# that cross zero are the terms an expert does not use.
coefs = table.drop(index="sigma", level="term")
labels = [f"{part} {k}: {term}" for part, k, term in coefs.index]
position = np.arange(len(coefs))[::-1]
fig, ax = plt.subplots(figsize=(6, 4.5))
ax.errorbar(coefs["coef"], position,
            xerr=[coefs["coef"] - coefs["ci_lower"], coefs["ci_upper"] - coefs["coef"]],
            fmt="o", capsize=3)
ax.axvline(0.0, color="grey", lw=0.8, ls="--")
ax.set_yticks(position, labels)
ax.set_xlabel("coefficient (95% Wald interval)")
fig.tight_layout()

# %%
# Bootstrap standard errors
# -------------------------
# ``method="bootstrap"`` refits the model on resampled rows, each refit
# warm-started from this fit and its experts matched to the original ones.
# On well-conditioned data like these it agrees with the Hessian.
boot = est.summary(X, y, method="bootstrap", n_boot=50, random_state=0)
print(pd.DataFrame({"hessian": table["std_err"], "bootstrap": boot["std_err"]}).round(3))

# %%
# Choosing the number of experts
# ------------------------------
# BIC = -2 log L + p log n; ICL adds twice the entropy of the
# responsibilities, so it also charges for experts that overlap.
# :func:`~mixexp.select_n_experts` fits one model per candidate and returns
# the best with the table of scores.
template = MixtureOfExpertsRegressor(n_init=3, max_iter=1000, random_state=0)
best, scores = select_n_experts(template, X, y, n_experts=range(1, 6), criterion="bic")
print(scores.round(1))
print(f"BIC chooses {best.n_experts} experts")

fig, ax = plt.subplots(figsize=(5, 3.5))
ax.plot(scores.index, scores["bic"], "o-", label="BIC")
ax.plot(scores.index, scores["icl"], "s--", label="ICL")
ax.set_xlabel("number of experts")
ax.set_ylabel("criterion (lower is better)")
ax.set_xticks(scores.index)
ax.legend()
fig.tight_layout()
plt.show()
