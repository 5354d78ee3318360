"""EM fit time of the NumPy and Numba backends on wide and narrow data.

For each (n, d, K), fits MixtureOfExpertsRegressor(K, backend=...) on
make_moe_regression data (noise 0.5, one start) until EM's stopping rule
holds (``--tol``; capped at ``--max-iter`` iterations, or at the cap given
with the shape) and prints, per backend, the median fit time of
``--repeat`` fits, the numba/numpy time ratio, the iterations and the final
log-likelihood (the backends must agree). Timings include the estimator's
own single-threaded BLAS limit, as in any fit.

With ``--python`` (one or more interpreters, e.g. a second virtual
environment holding an older mixexp), every fit runs in a fresh process of
each interpreter, interleaved shape by shape, so that versions are compared
in one run on a noisy machine:

    python benchmarks/bench_wide.py
    python benchmarks/bench_wide.py --python /tmp/venv-base/bin/python .venv/bin/python \\
        --shapes 3000,500,3 100000,10,3,20 1000000,10,8,20

At the default tol=1e-6 the d = 500 fit does not converge in 300 iterations
(1500 expert weights for 3000 rows keep improving the likelihood), hence the
default tol=1e-3 here; a fourth number in a shape caps that shape's
iterations (a fixed amount of work for the large narrow fits).
"""

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np

DEFAULT_SHAPES = ["3000,50,3", "3000,100,3", "3000,200,3", "3000,500,3"]
BACKENDS = ("numpy", "numba")


def parse_shape(text):
    values = [int(float(v)) for v in text.split(",")]
    if len(values) not in (3, 4):
        raise argparse.ArgumentTypeError(f"expected n,d,K[,max_iter], got {text!r}")
    return values


def time_fits(n, d, n_experts, backend, tol, max_iter, repeat):
    """Median fit time and the last fit's iterations and log-likelihood (in this process)."""
    from sklearn.exceptions import ConvergenceWarning

    import mixexp
    from mixexp import MixtureOfExpertsRegressor
    from mixexp.datasets import make_moe_regression

    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y, _ = make_moe_regression(n_samples=n, n_features=d, n_experts=n_experts, noise=0.5,
                                  random_state=0)

    def make():
        return MixtureOfExpertsRegressor(n_experts, alpha=1e-4, backend=backend, tol=tol,
                                         max_iter=max_iter,
                                         random_state=0)

    make().set_params(max_iter=1).fit(X[:200], y[:200])  # compile / load the kernels first
    times = []
    for _ in range(repeat):
        est = make()
        start = time.perf_counter()
        est.fit(X, y)
        times.append(time.perf_counter() - start)
    return {"time": float(np.median(times)), "n_iter": int(est.n_iter_),
            "log_likelihood": float(est.log_likelihood_),
            "version": getattr(mixexp, "__version__", "?"), "where": os.path.dirname(mixexp.__file__)}


def run_worker(python, shape, backend, args):
    """time_fits in a fresh process of ``python``, away from this checkout's sources."""
    n, d, n_experts, max_iter = shape
    code = (f"import sys, json; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r});"
            "import bench_wide as b;"
            f"print(json.dumps(b.time_fits({n}, {d}, {n_experts}, {backend!r}, {args.tol!r}, "
            f"{max_iter}, {args.repeat})))")
    # run from the file system root so that "import mixexp" finds the interpreter's own copy
    result = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True,
                            cwd=os.path.abspath(os.sep))
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", type=parse_shape, nargs="+",
                        default=[parse_shape(s) for s in DEFAULT_SHAPES],
                        help="n,d,K[,max_iter] per fit (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="timed fits per cell (median)")
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--max-iter", type=int, default=300)
    parser.add_argument("--python", nargs="+", default=None,
                        help="interpreters to compare (each fit in a fresh process)")
    args = parser.parse_args()
    shapes = [s if len(s) == 4 else s + [args.max_iter] for s in args.shapes]

    # workers run from the root directory: a path relative to here must be made absolute
    pythons = [os.path.abspath(p) if os.sep in p else p for p in args.python or []] or [None]
    print(f"EM fit, MixtureOfExpertsRegressor(K), tol={args.tol}, median of {args.repeat} fits; "
          f"{os.cpu_count()} CPUs")
    header = (f"{'python':>24} {'n':>8} {'d':>4} {'K':>3} {'iter':>5} {'numpy (s)':>10} "
              f"{'numba (s)':>10} {'numba/numpy':>12} {'loglik numpy':>14} {'loglik numba':>14}")
    print(header)
    sources = {}
    for shape in shapes:
        n, d, n_experts, max_iter = shape
        for python in pythons:
            cells = {}
            for backend in BACKENDS:
                if python is None:
                    cells[backend] = time_fits(n, d, n_experts, backend, args.tol, max_iter,
                                               args.repeat)
                else:
                    cells[backend] = run_worker(python, shape, backend, args)
            a, b = cells["numpy"], cells["numba"]
            sources[python or sys.executable] = a["where"]
            iters = str(a["n_iter"]) if a["n_iter"] == b["n_iter"] else f"{a['n_iter']}/{b['n_iter']}"
            label = (python or sys.executable)[-24:]
            print(f"{label:>24} {n:>8} {d:>4} {n_experts:>3} {iters:>5} {a['time']:>10.3f} "
                  f"{b['time']:>10.3f} {b['time'] / a['time']:>12.2f} "
                  f"{a['log_likelihood']:>14.8f} {b['log_likelihood']:>14.8f}", flush=True)
    for python, where in sources.items():
        print(f"{python}: mixexp from {where}")


if __name__ == "__main__":
    main()
