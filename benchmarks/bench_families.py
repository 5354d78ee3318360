"""Fit and E-step time of each expert family, NumPy against Numba.

Fits MixtureOfExpertsRegressor (d=5, K=3, exactly 20 EM iterations with
tol=0, one start) with Gaussian experts on make_moe_regression data, with
Student-t experts on the same regimes with t(3) noise, and with Poisson
experts on counts drawn from a gated mixture of log-linear rates,
and times one E-step (the fused kernel where the backend has one) at the
fitted parameters. Prints a table; the speed-ups compare Numba with NumPy
(fit) and each family's E-step with the Gaussian one (same backend).

    python benchmarks/bench_families.py [--sizes 1e5 1e6] [--repeat 3]
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from mixexp import MixtureOfExpertsRegressor
from mixexp._kernels import get_kernels
from mixexp.datasets import make_moe_regression

FAMILIES = ("gaussian", "student_t", "poisson")
BACKENDS = ("numpy", "numba")


def make_data(n):
    """X (n, 5), a Gaussian, a Student-t and a count target, all from 3 gated experts."""
    X, y, _ = make_moe_regression(n_samples=n, n_features=5, n_experts=3, noise=0.5,
                                  random_state=0)
    rng = np.random.default_rng(0)
    # the Gaussian target's regimes with heavy-tailed noise: t(3) in place of N(0, 0.5^2)
    noisy = (make_moe_regression(n_samples=n, n_features=5, n_experts=3, noise=1e-12,
                                 random_state=0)[1]
             + 0.5 * rng.standard_t(3.0, size=n))
    gate = X @ rng.normal(size=(5, 3))
    expert = np.argmax(gate + rng.gumbel(size=gate.shape), axis=1)
    coef, intercept = 0.3 * rng.normal(size=(3, 5)), np.array([0.0, 1.0, 2.0])
    counts = rng.poisson(np.exp(np.sum(X * coef[expert], axis=1) + intercept[expert]))
    return X, {"gaussian": y, "student_t": noisy, "poisson": counts.astype(float)}


def time_fit(X, y, family, backend, repeat):
    times = []
    for _ in range(repeat):
        est = MixtureOfExpertsRegressor(3, alpha=1e-4, expert=family, max_iter=20, tol=0.0,
                                        backend=backend, random_state=0)
        start = time.perf_counter()
        est.fit(X, y)
        times.append(time.perf_counter() - start)
    return est, float(np.median(times))


def time_e_step(est, X, y, backend, repeat):
    """Median time of one E-step over all rows at the fitted parameters."""
    kernels = get_kernels(backend)
    model = est._fitted_model
    Xs = (X - est._x_mean) / est._x_scale
    Y = y.reshape(-1, 1)
    resp = np.empty((X.shape[0], 3))
    model.e_step(kernels, Xs, Y, est._params, resp)  # compiled and warm
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        model.e_step(kernels, Xs, Y, est._params, resp)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e5, 1e6])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (median)")
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)

    print(f"d=5, K=3, 20 EM iterations (tol=0), one start; median of {args.repeat} runs")
    print(f"{'n':>9} {'family':>9} {'backend':>8} {'fit (s)':>9} {'per iter (ms)':>14} "
          f"{'E-step (ms)':>12} {'Numba x':>8} {'E / Gauss':>10}")
    for n in (int(s) for s in args.sizes):
        X, targets = make_data(n)
        # compile the Numba kernels outside the timings
        for family in FAMILIES:
            MixtureOfExpertsRegressor(3, alpha=1e-4, expert=family, max_iter=2, tol=0.0,
                                      backend="numba",
                                      random_state=0).fit(X[:5000], targets[family][:5000])
        fits, e_steps = {}, {}
        for family in FAMILIES:
            for backend in BACKENDS:
                est, seconds = time_fit(X, targets[family], family, backend, args.repeat)
                fits[family, backend] = (seconds, est.n_iter_)
                e_steps[family, backend] = time_e_step(est, X, targets[family], backend,
                                                       args.repeat)
        for family in FAMILIES:
            for backend in BACKENDS:
                seconds, n_iter = fits[family, backend]
                speedup = fits[family, "numpy"][0] / seconds
                relative = e_steps[family, backend] / e_steps["gaussian", backend]
                print(f"{n:>9} {family:>9} {backend:>8} {seconds:>9.3f} "
                      f"{1000 * seconds / n_iter:>14.2f} {1000 * e_steps[family, backend]:>12.2f} "
                      f"{speedup:>8.1f} {relative:>10.2f}")


if __name__ == "__main__":
    main()
