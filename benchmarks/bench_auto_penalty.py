"""What alpha="auto" costs: converged fits against the former fixed alpha=1e-4.

For each n, fits ``MixtureOfExpertsRegressor(K)`` (EM, Numba, tol=1e-6,
n_init=1) on ``make_moe_regression`` data with ``alpha=1e-4`` and with
``alpha="auto"`` (a first run, one pass for GCV, the run continued at the
chosen penalties), back to back, and prints the median fit time of
``--repeat`` fits, their ratio, the passes over the rows (counted on
``InMemoryRows.map_reduce``), and the held-out log-likelihood per sample of
both on as many fresh rows.

    python benchmarks/bench_auto_penalty.py [--sizes 1e4 1e5 1e6] [--repeat 3]
"""

import argparse
import time

import numpy as np

from mixexp import MixtureOfExpertsRegressor
from mixexp._rows import InMemoryRows
from mixexp.datasets import make_moe_regression

PASSES = {"count": 0}
_map_reduce = InMemoryRows.map_reduce


def _counted_map_reduce(self, function):
    PASSES["count"] += 1
    return _map_reduce(self, function)


def timed(alpha, X, y, k, repeat):
    times = []
    for _ in range(repeat):
        est = MixtureOfExpertsRegressor(k, alpha=alpha, backend="numba", random_state=0)
        PASSES["count"] = 0
        start = time.perf_counter()
        est.fit(X, y)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), PASSES["count"], est


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e4, 1e5, 1e6])
    parser.add_argument("--d", type=int, default=5)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    InMemoryRows.map_reduce = _counted_map_reduce
    # compile the kernels before timing
    warm_X, warm_y, _ = make_moe_regression(n_samples=500, n_features=args.d,
                                            n_experts=args.k, random_state=0)
    MixtureOfExpertsRegressor(args.k, backend="numba").fit(warm_X, warm_y)
    print(f"EM, Numba, d={args.d}, K={args.k}, tol=1e-6; median of {args.repeat} fits")
    print(f"{'n':>8} {'1e-4 (s)':>9} {'auto (s)':>9} {'ratio':>6} {'passes':>11} "
          f"{'held-out LL: 1e-4':>18} {'auto':>8}  expert_alpha_")
    for n in (int(size) for size in args.sizes):
        X, y, _ = make_moe_regression(n_samples=2 * n, n_features=args.d, n_experts=args.k,
                                      noise=0.5, random_state=1)
        train, test = slice(0, n), slice(n, 2 * n)
        fixed_time, fixed_passes, fixed = timed(1e-4, X[train], y[train], args.k, args.repeat)
        auto_time, auto_passes, auto = timed("auto", X[train], y[train], args.k, args.repeat)
        print(f"{n:8.0e} {fixed_time:9.3f} {auto_time:9.3f} {auto_time / fixed_time:6.2f} "
              f"{fixed_passes:>5} /{auto_passes:>4} "
              f"{fixed.log_likelihood(X[test], y[test]):18.5f} "
              f"{auto.log_likelihood(X[test], y[test]):8.5f}  "
              f"{np.array2string(auto.expert_alpha_, precision=3)}")


if __name__ == "__main__":
    main()
