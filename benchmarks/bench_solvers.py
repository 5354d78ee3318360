"""Solvers compared: time to reach within 0.1% of the best log-likelihood.

Fits MixtureOfExpertsRegressor with each solver from the same start (one
k-means initialisation, the same random_state) on make_moe_regression data,
n=1e5, d=10, K=8 by default. Each iteration's (or Adam epoch's) training
log-likelihood is timestamped as the solver reports it (verbose=2, read from
stdout, so no solver is changed for the benchmark); the target is the best
final log-likelihood of all runs, minus 0.1% of its magnitude. Times include
the shared initialisation.

    python benchmarks/bench_solvers.py [--n 1e5] [--features 10] [--experts 8]
"""

import argparse
import contextlib
import re
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from mixexp import MixtureOfExpertsRegressor
from mixexp.datasets import make_moe_regression

_LOG_LIKELIHOOD = re.compile(r"(?:iteration|epoch) \d+: log-likelihood (-?[\d.]+(?:e[-+]?\d+)?)")

SOLVERS = {
    "em": {"solver": "em", "max_iter": 1000},
    "lbfgs": {"solver": "lbfgs", "max_iter": 3000},
    "adam (batch 200)": {"solver": "adam", "max_iter": 300},
    "adam (batch 2000)": {"solver": "adam", "batch_size": 2000, "max_iter": 300},
}


class _Timestamps:
    """A stdout stand-in that timestamps every reported log-likelihood."""

    def __init__(self, start):
        self.start = start
        self.points = []  # (seconds since start, log-likelihood)

    def write(self, text):
        for match in _LOG_LIKELIHOOD.finditer(text):
            self.points.append((time.perf_counter() - self.start, float(match.group(1))))

    def flush(self):
        pass


def run(X, y, n_experts, params):
    est = MixtureOfExpertsRegressor(n_experts, alpha=1e-4, random_state=0, verbose=2, **params)
    start = time.perf_counter()
    stamps = _Timestamps(start)
    with contextlib.redirect_stdout(stamps), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    total = time.perf_counter() - start
    times, values = map(np.asarray, zip(*stamps.points))
    return est, total, times, values


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, default=1e5)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--noise", type=float, default=0.5)
    args = parser.parse_args()

    X, y, _ = make_moe_regression(n_samples=int(args.n), n_features=args.features,
                                  n_experts=args.experts, noise=args.noise, random_state=0)
    runs = {name: run(X, y, args.experts, params) for name, params in SOLVERS.items()}
    best = max(est.log_likelihood_ for est, *_ in runs.values())
    target = best - 1e-3 * abs(best)

    print(f"n={int(args.n)}, d={args.features}, K={args.experts}, noise={args.noise}, "
          f"backend=auto; best log-likelihood {best:.5f}, target {target:.5f} (0.1%)")
    print(f"{'solver':<18} {'to target (s)':>13} {'iters':>6} {'fit (s)':>8} {'iters':>6} "
          f"{'final log-lik':>14} {'converged':>9}")
    for name, (est, total, times, values) in runs.items():
        reached = np.flatnonzero(values >= target)
        if reached.size:
            to_target, iters = f"{times[reached[0]]:.2f}", str(reached[0] + 1)
        else:
            to_target, iters = "not reached", "-"
        print(f"{name:<18} {to_target:>13} {iters:>6} {total:>8.2f} {est.n_iter_:>6} "
              f"{est.log_likelihood_:>14.5f} {est.converged_!s:>9}")
    print("iters: EM/L-BFGS iterations or Adam epochs; times include the shared start")


if __name__ == "__main__":
    main()
