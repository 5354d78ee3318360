"""
=========================================================
Choosing the number of experts: BIC, AIC and grid search
=========================================================

More experts always fit the training data at least as well, so the number
of experts is chosen by a criterion that pays for complexity. Two routes
are shown on the motorcycle crash data:

- information criteria computed from one fit per candidate:
  :meth:`~mixexp.MixtureOfExpertsRegressor.bic` and
  :meth:`~mixexp.MixtureOfExpertsRegressor.aic` (lower is better);
- cross-validation with :class:`~sklearn.model_selection.GridSearchCV`,
  scoring either the mean prediction (R^2, the estimator's ``score``) or
  the whole predictive distribution (held-out log-likelihood).
"""

# %%
# Information criteria
# --------------------
# BIC = -2 log L + p log n and AIC = -2 log L + 2 p, with p the number of
# free parameters: (K - 1)(d + 1) for the gate and K (d + 2) for K Gaussian
# experts (weights, intercept, variance). Each candidate is fitted with a
# few restarts, since EM finds local maxima.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.model_selection import GridSearchCV, KFold

from mixexp import MixtureOfExpertsRegressor
from mixexp.datasets import load_motorcycle

X, y = load_motorcycle(return_X_y=True)
candidates = np.arange(1, 7)

rows = []
for n_experts in candidates:
    est = MixtureOfExpertsRegressor(n_experts=n_experts, n_init=5, random_state=0).fit(X, y)
    rows.append({"n_experts": n_experts, "log-likelihood": est.log_likelihood_ * len(y),
                 "BIC": est.bic(X, y), "AIC": est.aic(X, y)})
criteria = pd.DataFrame(rows).set_index("n_experts")
print(criteria.round(1))
print(f"BIC chooses {criteria['BIC'].idxmin()} experts, AIC {criteria['AIC'].idxmin()}")

# %%
# Cross-validation
# ----------------
# The estimators are ordinary scikit-learn estimators, so ``n_experts`` is
# a hyper-parameter like any other. Two scorers are computed on every
# held-out fold: R^2 of the mean, and the mean log-likelihood of the held-out
# targets, which also rewards a good noise model. The search refits on the
# whole data with the number of experts that has the best held-out
# log-likelihood.


def held_out_log_likelihood(estimator, X, y):
    return estimator.log_likelihood(X, y)


search = GridSearchCV(
    MixtureOfExpertsRegressor(n_init=3, random_state=0),
    {"n_experts": candidates},
    scoring={"r2": "r2", "log_likelihood": held_out_log_likelihood},
    refit="log_likelihood",
    cv=KFold(n_splits=5, shuffle=True, random_state=0),
)
search.fit(X, y)
results = pd.DataFrame(search.cv_results_)
print(results[["param_n_experts", "mean_test_r2", "mean_test_log_likelihood"]].round(3))
print(f"cross-validation chooses {search.best_params_['n_experts']} experts")

# %%
# Left: the criteria, each minimum starred. Right: the held-out scores, with
# one standard deviation over the folds. R^2 judges the mean curve only, and
# extra experts keep refining it a little; the held-out log-likelihood also
# judges the noise levels, and drops once extra experts start fitting noise.
# BIC, which charges log(n) per parameter, agrees with it; AIC charges 2 and
# keeps adding experts on data this small.
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
for name, marker in (("BIC", "o"), ("AIC", "s")):
    left.plot(candidates, criteria[name], marker=marker, label=name)
    best = criteria[name].idxmin()
    left.plot(best, criteria.loc[best, name], "k*", markersize=14)
left.set_xlabel("n_experts")
left.set_ylabel("criterion (lower is better)")
left.legend()

for scorer, axis, color in (("log_likelihood", right, "C2"), ("r2", right.twinx(), "C3")):
    mean, std = results[f"mean_test_{scorer}"], results[f"std_test_{scorer}"]
    axis.errorbar(candidates, mean, yerr=std, marker="o", capsize=3, color=color)
    axis.set_ylabel(f"held-out {scorer.replace('_', '-')}", color=color)
right.set_xlabel("n_experts")
plt.show()
