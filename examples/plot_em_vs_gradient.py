"""
===============================================
EM against gradient training: convergence
===============================================

The same model can be trained three ways, set by ``solver``: EM
(Jordan & Jacobs 1994), full-batch L-BFGS on all parameters at once, and
mini-batch Adam (both in the spirit of Jacobs et al. 1991). All three
maximise the same penalised log-likelihood from the same starting point, so
their training histories can be drawn on one plot and their end points
compared.

EM's M-step solves each expert and the gate exactly given the
responsibilities, so it usually needs few iterations, each a full pass
with small linear solves. L-BFGS takes many cheap steps. Adam works on
mini-batches: one epoch is many small steps, which is what makes
``partial_fit`` on a stream possible, but it stops near the optimum rather
than at it.
"""

# %%
# Data and fits
# -------------
# 5000 samples from four linear experts in three dimensions. A tiny fit
# first loads the compiled kernels, so the timings below measure training
# only.
import time

import matplotlib.pyplot as plt
import numpy as np

from mixexp import MixtureOfExpertsRegressor
from mixexp.datasets import make_moe_regression
from mixexp.plotting import plot_log_likelihood

X, y, _ = make_moe_regression(n_samples=5000, n_features=3, n_experts=4, noise=0.3,
                              random_state=0)
MixtureOfExpertsRegressor(n_experts=2).fit(X[:200], y[:200])

fits, seconds = {}, {}
for solver in ("em", "lbfgs", "adam"):
    est = MixtureOfExpertsRegressor(n_experts=4, solver=solver, random_state=0)
    start = time.perf_counter()
    fits[solver] = est.fit(X, y)
    seconds[solver] = time.perf_counter() - start

# %%
# End points
# ----------
# EM and L-BFGS reach the same maximum (within 1e-5 nats per sample);
# Adam stops a little short of it.
best = max(est.objective_history_[-1] for est in fits.values())
print("solver  iterations  converged  log-likelihood  gap to best objective  time (s)")
for solver, est in fits.items():
    gap = best - est.objective_history_[-1]
    print(f"{solver:6s}  {est.n_iter_:10d}  {est.converged_!s:9s}  {est.log_likelihood_:14.5f}"
          f"  {gap:21.2e}  {seconds[solver]:8.2f}")

# %%
# Training histories
# ------------------
# Left: the mean log-likelihood per sample after each iteration (an Adam
# iteration is an epoch). Right: the distance of the objective to the best
# end point, on a log scale: EM closes it in a handful of iterations,
# L-BFGS in many more, cheaper ones.
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
for est in fits.values():
    plot_log_likelihood(est, ax=left)
left.set_xscale("log")
left.set_xlabel("iteration (Adam: epoch)")
left.legend()

names = {"em": "EM", "lbfgs": "L-BFGS", "adam": "Adam"}
for solver, est in fits.items():
    gap = best - est.objective_history_
    # the best run's last point has gap 0, which a log scale cannot show
    right.semilogy(np.arange(1, gap.size + 1), np.where(gap > 0, gap, np.nan),
                   label=names[solver])
right.set_xscale("log")
right.set_xlabel("iteration (Adam: epoch)")
right.set_ylabel("best objective - objective")
right.legend()
plt.show()

# %%
# Which solver to choose
# ----------------------
# EM is the default: monotone, with few iterations and no step size to
# tune. L-BFGS reaches the same point and can be faster when an EM
# iteration is expensive (many features, since each M-step solves a
# (d + 1)-dimensional system per expert). Adam is the choice for data that
# arrive in batches (``partial_fit``) and the only solver that trains noisy
# top-k gates (``gate_noise``).
