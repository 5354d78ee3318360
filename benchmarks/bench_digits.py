"""One expert against LogisticRegression on digits: fit time, same penalty.

``MixtureOfExpertsClassifier(n_experts=1)`` is a multinomial logistic
regression with LogisticRegression's penalty at ``alpha = 1 / (2 C)``; on
scikit-learn's ``load_digits`` (1797 rows, 64 features, 10 classes: 650
parameters, above the Newton threshold) this benchmark times both at their
default settings (C=1, alpha=0.5) and prints the ratio, measured in this
run. Both run under the same BLAS thread limit (one thread by default:
mixexp limits BLAS to one thread itself, and an unlimited LogisticRegression
is slowed by oversubscription on a shared machine). Each time is the median
of ``--repeat`` fits after one warm-up fit (Numba loads its compiled kernels
on the first call). The last columns say how far each default fit is from a
LogisticRegression solved to tol=1e-12, in probability.

    python benchmarks/bench_digits.py [--repeat 5] [--threads 1]
"""

import argparse
import statistics
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from mixexp import MixtureOfExpertsClassifier


def median_time(make, X, y, repeat):
    make().fit(X, y)  # warm-up
    times = []
    for _ in range(repeat):
        estimator = make()
        start = time.perf_counter()
        estimator.fit(X, y)
        times.append(time.perf_counter() - start)
    return statistics.median(times), estimator


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads for both")
    parser.add_argument("--backends", nargs="+", default=["auto", "numpy", "numba"])
    args = parser.parse_args()
    X, y = load_digits(return_X_y=True)
    C = 1.0
    with threadpool_limits(args.threads):
        reference = LogisticRegression(C=C, tol=1e-12, max_iter=100_000).fit(X, y)
        exact = reference.predict_proba(X)
        lr_time, lr = median_time(lambda: LogisticRegression(C=C, max_iter=10_000), X, y,
                                  args.repeat)
        rows = []
        for backend in args.backends:
            moe_time, moe = median_time(
                lambda: MixtureOfExpertsClassifier(1, alpha=1 / (2 * C), backend=backend,
                                                   random_state=0), X, y, args.repeat)
            rows.append((backend, moe_time, moe.n_iter_,
                         float(np.abs(moe.predict_proba(X) - exact).max())))
    lr_error = float(np.abs(lr.predict_proba(X) - exact).max())
    print(f"digits: n={X.shape[0]}, d={X.shape[1]}, 10 classes; C={C:g} (alpha={1 / (2 * C):g}); "
          f"BLAS threads={args.threads}; median of {args.repeat}")
    print(f"{'estimator':<34} {'fit (s)':>8} {'ratio':>6} {'iters':>6} {'|p - p*|max':>12}")
    print(f"{'LogisticRegression (lbfgs)':<34} {lr_time:8.3f} {1.0:6.2f} {int(lr.n_iter_[0]):6d} "
          f"{lr_error:12.2e}")
    for backend, moe_time, n_iter, error in rows:
        print(f"{'MoE classifier, K=1, ' + backend:<34} {moe_time:8.3f} {moe_time / lr_time:6.2f} "
              f"{n_iter:6d} {error:12.2e}")


if __name__ == "__main__":
    main()
