"""E-step and whole-fit speed of the Numba kernels against the NumPy reference.

For n in {1e4, 1e5, 1e6}, K in {2, 8, 32}, d = 10 and float64/float32, prints:

* the fused E-step (gate, expert log-densities, log-normaliser,
  responsibilities) with the NumPy reference and with Numba, and the ratio;
* the bytes the E-step must stream (read X and y, write the
  responsibilities and the log-likelihood once) per second achieved by
  Numba, against the machine's memory bandwidth measured in the same run
  (a large parallel array copy), and how far Numba is from that streaming
  floor and from the floor set by its 2K exponentials per row;
* a whole fit (one start, exactly 20 EM iterations) with each backend, and
  the Numba fit's peak memory (tracemalloc) as a multiple of the size of X.

The NumPy fit is skipped where it would take minutes (n * K^2 above
``--numpy-fit-work``). E-step times are medians of ``--repeat`` runs after a
warm-up; each fit in the table runs once (they take seconds to minutes),
after a small fit that compiled every kernel. BLAS is limited to one
thread, as in fit. A last line times the issue's whole-fit target
(n=2e5, K=8, float64; median of ``--fit-repeat`` fits per backend).
The ratios are what to compare: both backends are timed in the same run.

    python benchmarks/bench_kernels.py [--quick] [--sizes 1e4 1e5 1e6] [--experts 2 8 32]
"""

import argparse
import time
import tracemalloc
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from mixexp import MixtureOfExpertsRegressor
from mixexp._kernels import get_kernels
from mixexp.datasets import make_moe_regression

D = 10


def median_time(function, repeat):
    function()  # warm-up: compilation, first touch of the buffers
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def memory_bandwidth(n_threads, size=2**26, repeat=5):
    """Bytes per second of a large copy (read + write), split over ``n_threads``."""
    source = np.ones(size)
    target = np.empty_like(source)
    parts = np.array_split(np.arange(size), n_threads)
    bounds = [(p[0], p[-1] + 1) for p in parts]

    def copy(bound):
        np.copyto(target[bound[0]:bound[1]], source[bound[0]:bound[1]])

    with ThreadPoolExecutor(n_threads) as pool:
        seconds = median_time(lambda: list(pool.map(copy, bounds)), repeat)
    return 2 * source.nbytes / seconds


def exp_seconds_per_call():
    """Seconds per exponential of the Numba kernels' vectorised exp (one thread)."""
    from numba import njit

    from mixexp._kernels import _numba

    @njit
    def exp_rows(z, zero, out):
        for row in range(z.shape[0]):
            _numba._exp_shifted(z[row], zero, z.shape[1], out[row])

    z = -np.random.default_rng(0).uniform(0, 20, (512, _numba._BLOCK))
    args = z, np.zeros(_numba._BLOCK), np.empty_like(z)
    return median_time(lambda: exp_rows(*args), 5) / z.size


def e_step_problem(n, n_experts, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, D)).astype(dtype)
    Y = rng.normal(size=(n, 1)).astype(dtype)
    params = (
        rng.normal(size=(n_experts, D)), rng.normal(size=n_experts),
        rng.normal(size=(n_experts, 1, D)), rng.normal(size=(n_experts, 1)),
        rng.uniform(0.5, 2.0, size=(n_experts, 1)),
    )
    return X, Y, params, np.empty((n, n_experts), dtype=dtype)


def e_step_seconds(kernels, problem, repeat):
    X, Y, params, resp = problem
    return median_time(lambda: kernels.gaussian_e_step(X, Y, *params, resp), repeat)


def fit_seconds(backend, X, y, n_experts, measure_memory=False):
    """Seconds of one fit (20 EM iterations), and its peak memory / X.nbytes if asked.

    Compilation is done beforehand (see ``warm_up``); tracemalloc's overhead
    on a fit's few thousand allocations is a few milliseconds.
    """

    def fit():
        # tol=0 forces exactly max_iter iterations, so every backend does the same work
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            MixtureOfExpertsRegressor(n_experts, alpha=1e-4, max_iter=20, tol=0.0, backend=backend,
                                      random_state=0).fit(X, y)

    start = time.perf_counter()
    if measure_memory:
        peak = peak_memory(fit) / X.nbytes
    else:
        fit()
        peak = float("nan")
    return time.perf_counter() - start, peak


def warm_up(dtype, experts):
    """Compile every kernel a fit uses, for this dtype (once per process and dtype)."""
    for n_experts in experts:
        X, y, _ = make_moe_regression(n_samples=3000, n_features=D, n_experts=n_experts,
                                      random_state=0)
        fit_seconds("numba", X.astype(dtype), y.astype(dtype), n_experts)


def peak_memory(function):
    """Peak bytes allocated (tracemalloc) while ``function`` runs, above the level before.

    tracemalloc sees NumPy's allocations; the Numba kernels allocate their
    outputs and partial sums through NumPy, only their per-block scratch
    (a few hundred kB) is not seen. At n=1e6 the resident set's high-water
    mark agrees within 1%.
    """
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e4, 1e5, 1e6])
    parser.add_argument("--experts", type=int, nargs="+", default=[2, 8, 32])
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per cell (median)")
    parser.add_argument("--fit-repeat", type=int, default=3,
                        help="timed fits (median) for the n=2e5, K=8 whole-fit line")
    parser.add_argument("--numpy-fit-work", type=float, default=1.1e7,
                        help="largest n * K^2 for which the NumPy fit is timed")
    parser.add_argument("--no-fit", action="store_true", help="E-steps only")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: n in {1e4, 1e5}, K in {2, 8}, float64")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.experts, args.dtypes = [1e4, 1e5], [2, 8], ["float64"]

    numpy_kernels, numba_kernels = get_kernels("numpy"), get_kernels("numba")
    from mixexp._kernels import _numba

    n_threads = _numba._n_threads()
    bandwidth = max(memory_bandwidth(1), memory_bandwidth(n_threads))
    exp_seconds = exp_seconds_per_call()
    print(f"d={D}, one target, {n_threads} Numba threads, BLAS on one thread; E-steps: medians "
          f"of {args.repeat}; fits: one start, 20 EM iterations, compilation excluded")
    print(f"measured memory bandwidth (parallel copy, read+write): {bandwidth / 1e9:.1f} GB/s; "
          f"vectorised exp: {exp_seconds * 1e9:.2f} ns per call on one thread")
    print("floor: streaming X, y in and resp, log p out once at that bandwidth; "
          "exp floor: 2K exponentials per row on all threads")
    header = (f"{'dtype':>7} {'n':>8} {'K':>3} | {'E numpy ms':>10} {'E numba ms':>10} "
              f"{'ratio':>6} | {'GB/s':>5} {'% bw':>5} {'x floor':>7} {'x exp':>6} | "
              f"{'fit numpy s':>11} {'fit numba s':>11} {'ratio':>6} {'peak/X':>6}")
    print(header)
    print("-" * len(header))

    with threadpool_limits(limits=1, user_api="blas"):
        for dtype_name in args.dtypes:
            dtype = np.dtype(dtype_name)
            if not args.no_fit:
                warm_up(dtype, args.experts)
            for n in (int(s) for s in args.sizes):
                for n_experts in args.experts:
                    problem = e_step_problem(n, n_experts, dtype)
                    t_numpy = e_step_seconds(numpy_kernels, problem, args.repeat)
                    t_numba = e_step_seconds(numba_kernels, problem, args.repeat)
                    streamed = sum(a.nbytes for a in problem[:2]) + problem[3].nbytes + 8 * n
                    floor = streamed / bandwidth
                    exp_floor = 2 * n_experts * n * exp_seconds / n_threads
                    row = (f"{dtype_name:>7} {n:>8} {n_experts:>3} | {t_numpy * 1e3:>10.2f} "
                           f"{t_numba * 1e3:>10.2f} {t_numpy / t_numba:>6.1f} | "
                           f"{streamed / t_numba / 1e9:>5.1f} "
                           f"{100 * streamed / t_numba / bandwidth:>5.1f} "
                           f"{t_numba / floor:>7.1f} {t_numba / exp_floor:>6.1f} |")
                    del problem
                    if not args.no_fit:
                        Xf, yf, _ = make_moe_regression(n_samples=n, n_features=D,
                                                        n_experts=n_experts, noise=0.5,
                                                        random_state=0)
                        Xf, yf = Xf.astype(dtype), yf.astype(dtype)
                        fit_numba, peak = fit_seconds("numba", Xf, yf, n_experts, True)
                        if n * n_experts**2 <= args.numpy_fit_work:
                            fit_numpy, _ = fit_seconds("numpy", Xf, yf, n_experts)
                            fit_cells = (f"{fit_numpy:>11.2f} {fit_numba:>11.2f} "
                                         f"{fit_numpy / fit_numba:>6.1f}")
                        else:
                            fit_cells = f"{'-':>11} {fit_numba:>11.2f} {'-':>6}"
                        row += f" {fit_cells} {peak:>6.2f}"
                        del Xf, yf
                    print(row, flush=True)

        if not args.quick and not args.no_fit:
            # the whole-fit target, outside the table's grid
            n, n_experts = 200_000, 8
            X, y, _ = make_moe_regression(n_samples=n, n_features=D, n_experts=n_experts,
                                          noise=0.5, random_state=0)
            fit_numba = np.median([fit_seconds("numba", X, y, n_experts)[0]
                                   for _ in range(args.fit_repeat)])
            fit_numpy = np.median([fit_seconds("numpy", X, y, n_experts)[0]
                                   for _ in range(args.fit_repeat)])
            print(f"\nwhole fit, n={n}, K={n_experts}, d={D}, float64, 20 EM iterations: "
                  f"numpy {fit_numpy:.2f} s, numba {fit_numba:.2f} s, "
                  f"ratio {fit_numpy / fit_numba:.1f}")
    print("\n(a noisy shared machine: compare the ratios, taken in the same run)")


if __name__ == "__main__":
    main()
