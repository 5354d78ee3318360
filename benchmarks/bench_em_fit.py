"""EM fit time, final log-likelihood and peak memory against n.

Fits MixtureOfExpertsRegressor (5 features, 3 experts, exactly 20 EM
iterations, one start) on make_moe_regression data for growing n and prints
a table. Peak memory is measured with tracemalloc in a separate fit (so it
does not slow the timed one) and reported as a multiple of the size of X.

    python benchmarks/bench_em_fit.py [--sizes 1e3 1e4 1e5 1e6] [--repeat 3] [--backend auto]
"""

import argparse
import time
import tracemalloc
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from mixexp import MixtureOfExpertsRegressor
from mixexp.datasets import make_moe_regression


def make_estimator(backend):
    # tol=0 forces exactly max_iter iterations, so every n does the same work
    return MixtureOfExpertsRegressor(3, alpha=1e-4, max_iter=20, tol=0.0, backend=backend,
                                     random_state=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e3, 1e4, 1e5, 1e6])
    parser.add_argument("--repeat", type=int, default=3, help="timed fits per size (median)")
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)

    print(f"backend={args.backend}, d=5, K=3, 20 EM iterations, median of {args.repeat} fits")
    print(f"{'n':>9} {'fit (s)':>9} {'per iter (ms)':>14} {'log-lik/sample':>15} "
          f"{'peak mem (MB)':>14} {'peak / X':>9}")
    for n in (int(s) for s in args.sizes):
        X, y, _ = make_moe_regression(n_samples=n, n_features=5, n_experts=3, noise=0.5,
                                      random_state=0)
        times = []
        for _ in range(args.repeat):
            est = make_estimator(args.backend)
            start = time.perf_counter()
            est.fit(X, y)
            times.append(time.perf_counter() - start)
        tracemalloc.start()
        make_estimator(args.backend).fit(X, y)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        fit_time = float(np.median(times))
        print(f"{n:>9} {fit_time:>9.3f} {1000 * fit_time / est.n_iter_:>14.2f} "
              f"{est.log_likelihood_:>15.5f} {peak / 1e6:>14.1f} {peak / X.nbytes:>9.2f}")


if __name__ == "__main__":
    main()
