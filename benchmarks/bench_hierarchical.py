"""Fit time of hierarchical mixtures of experts against flat ones with as many experts.

Prints one table: for each model, the median seconds of ``--repeat`` fits of
``--max-iter`` EM iterations (tol=0, so every fit runs them all) on
``make_moe_regression`` data of ``--n`` rows and 5 features, with the Numba
backend, and the ratio to the flat mixture with the same number of experts
(measured in the same run). A tree's E-step is the composition of its node
gates (the leaves' log priors in one ``tree_log_gate`` pass) and the
experts' densities; its M-step fits one gate per node, where the flat model
runs one fused pass (``gaussian_pass``).

    python benchmarks/bench_hierarchical.py [--n 200000] [--max-iter 20] [--repeat 3]
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from mixexp import HierarchicalMixtureOfExpertsRegressor, MixtureOfExpertsRegressor
from mixexp.datasets import make_moe_regression


def seconds(estimator, X, y, repeat):
    estimator.fit(X[:2000], y[:2000])  # compile
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        estimator.fit(X, y)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, default=2e5)
    parser.add_argument("--max-iter", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    n = int(args.n)
    X, y, _ = make_moe_regression(n_samples=n, n_features=5, n_experts=4, noise=0.3,
                                  random_state=0)
    settings = dict(alpha=1e-4, max_iter=args.max_iter, tol=0.0, backend="numba", random_state=0)
    print(f"n={n:.0e}, d=5, {args.max_iter} EM iterations, numba; median of {args.repeat}")
    print(f"{'model':>28} {'seconds':>9} {'vs flat':>8}")
    for n_experts, trees in [(4, [(4,), (2, 2)]), (8, [(2, 4), (2, 2, 2)])]:
        flat = seconds(MixtureOfExpertsRegressor(n_experts, **settings), X, y, args.repeat)
        print(f"{f'flat, n_experts={n_experts}':>28} {flat:>9.2f} {1.0:>8.2f}")
        for branching in trees:
            tree = seconds(HierarchicalMixtureOfExpertsRegressor(branching, **settings), X, y,
                           args.repeat)
            print(f"{f'tree, branching={branching}':>28} {tree:>9.2f} {tree / flat:>8.2f}")


if __name__ == "__main__":
    main()
