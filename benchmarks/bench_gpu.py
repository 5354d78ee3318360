"""E-step and whole-fit speed of the CuPy GPU kernels, against the device's bandwidth.

Prints two tables:

* the fused Gaussian E-step (gate, expert log-densities, log-normaliser,
  responsibilities) of the CuPy backend at n = ``--n`` (1e7), K = 8,
  d = 10, one target, float32 and float64: the median of ``--repeat`` runs
  timed with CUDA events after a warm-up (which compiles the kernel), the
  bytes the E-step must move (read X and y, write the responsibilities and
  the float64 log-likelihood once) per second, and that as a fraction of
  the device's memory bandwidth, measured in the same run by a large
  device-to-device copy (2 x bytes / time);
* a whole fit, ``MixtureOfExpertsRegressor(n_experts=8, alpha=1e-4,
  max_iter=50, tol=0)`` on ``make_moe_regression`` data of ``--fit-n`` rows, with
  backend="cupy" (CuPy arrays in) and backend="numba" (NumPy arrays in),
  and their ratio. Each fit runs once after a small warm-up fit per
  backend (compilation). The issue's target fit is ``--fit-n 1e7``.

Exits with a message (status 1) where CuPy or a CUDA device is missing.

    python benchmarks/bench_gpu.py [--n 1e7] [--repeat 10] [--fit-n 1e6] [--no-fit]
"""

import argparse
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from mixexp import MixtureOfExpertsRegressor
from mixexp.datasets import make_moe_regression

K = 8
D = 10


def require_gpu():
    """The cupy module and the device's name, or exit with the reason."""
    try:
        import cupy
    except ImportError as exc:
        sys.exit(f"bench_gpu: CuPy is not installed ({exc}); pip install 'mixexp[gpu]'.")
    try:
        n_devices = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError: no driver, or a driver too old
        sys.exit(f"bench_gpu: CuPy sees no usable CUDA device ({exc}).")
    if n_devices == 0:
        sys.exit("bench_gpu: CuPy sees no CUDA device.")
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    return cupy, name.decode() if isinstance(name, bytes) else name


def device_seconds(cupy, function, repeat):
    """Median seconds of ``function()`` on the device (CUDA events), after a warm-up."""
    function()
    cupy.cuda.Device().synchronize()
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    times = []
    for _ in range(repeat):
        start.record()
        function()
        end.record()
        end.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, end) / 1000.0)
    return float(np.median(times))


def device_bandwidth(cupy, repeat, n_bytes=2**30):
    """Bytes per second of a device-to-device copy of ``n_bytes`` (read + write)."""
    source = cupy.ones(n_bytes // 4, dtype=cupy.float32)
    target = cupy.empty_like(source)
    return 2 * n_bytes / device_seconds(cupy, lambda: cupy.copyto(target, source), repeat)


def e_step_table(cupy, n, repeat, bandwidth):
    from mixexp._kernels import _cupy

    rng = np.random.default_rng(0)
    params = dict(
        gate_coef=rng.normal(size=(K, D)), gate_intercept=rng.normal(size=K),
        coef=rng.normal(size=(K, 1, D)), intercept=rng.normal(size=(K, 1)),
        variance=rng.uniform(0.5, 2.0, size=(K, 1)),
    )
    print(f"fused Gaussian E-step, n={n:.0e}, K={K}, d={D}, t=1; "
          f"median of {repeat} runs (CUDA events)")
    print(f"{'dtype':>8} {'time (ms)':>10} {'GB/s':>8} {'of bandwidth':>13}")
    for dtype in (np.float32, np.float64):
        # random data drawn on the device: no host copy of 1e7 rows
        X = cupy.random.standard_normal((n, D), dtype=dtype)
        Y = cupy.random.standard_normal((n, 1), dtype=dtype)
        resp = cupy.empty((n, K), dtype=dtype)

        def e_step(X=X, Y=Y, resp=resp):
            _cupy.gaussian_e_step(X, Y, params["gate_coef"], params["gate_intercept"],
                                  params["coef"], params["intercept"], params["variance"], resp)

        seconds = device_seconds(cupy, e_step, repeat)
        n_bytes = X.nbytes + Y.nbytes + resp.nbytes + 8 * n  # the log-likelihood is float64
        rate = n_bytes / seconds
        print(f"{np.dtype(dtype).name:>8} {1000 * seconds:>10.3f} {rate / 1e9:>8.1f} "
              f"{rate / bandwidth:>12.0%}")


def timed_fit(cupy, backend, X, y):
    estimator = MixtureOfExpertsRegressor(n_experts=K, alpha=1e-4, max_iter=50, tol=0,
                                          backend=backend,
                                          random_state=0)
    start = time.perf_counter()
    estimator.fit(X, y)
    cupy.cuda.Device().synchronize()
    return time.perf_counter() - start


def fit_table(cupy, fit_n):
    X, y, _ = make_moe_regression(n_samples=fit_n, n_features=D, n_experts=K, noise=0.5,
                                  random_state=0)
    print(f"\nwhole fit: MixtureOfExpertsRegressor(n_experts={K}, alpha=1e-4, max_iter=50, "
          "tol=0), "
          f"n={fit_n:.0e}, d={D}; one fit each after a warm-up")
    print(f"{'dtype':>8} {'numba (s)':>10} {'cupy (s)':>10} {'numba / cupy':>13}")
    for dtype in (np.float32, np.float64):
        X_host, y_host = X.astype(dtype), y.astype(dtype)
        X_device, y_device = cupy.asarray(X_host), cupy.asarray(y_host)
        try:
            timed_fit(cupy, "cupy", X_device[:2000], y_device[:2000])  # compile the kernels
        except (ValueError, TypeError, ImportError) as exc:
            print(f"{np.dtype(dtype).name:>8}  backend='cupy' fit failed: {exc}")
            return
        timed_fit(cupy, "numba", X_host[:2000], y_host[:2000])
        cupy_seconds = timed_fit(cupy, "cupy", X_device, y_device)
        numba_seconds = timed_fit(cupy, "numba", X_host, y_host)
        print(f"{np.dtype(dtype).name:>8} {numba_seconds:>10.2f} {cupy_seconds:>10.2f} "
              f"{numba_seconds / cupy_seconds:>13.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, default=1e7, help="rows of the E-step table")
    parser.add_argument("--repeat", type=int, default=10, help="timed E-steps (median)")
    parser.add_argument("--fit-n", type=float, default=1e6, help="rows of the fit table")
    parser.add_argument("--no-fit", action="store_true", help="only the E-step table")
    args = parser.parse_args()
    cupy, device = require_gpu()
    warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0: every fit runs max_iter

    bandwidth = device_bandwidth(cupy, args.repeat)
    print(f"device: {device}; measured bandwidth (device-to-device copy): "
          f"{bandwidth / 1e9:.0f} GB/s\n")
    e_step_table(cupy, int(args.n), args.repeat, bandwidth)
    if not args.no_fit:
        fit_table(cupy, int(args.fit_n))


if __name__ == "__main__":
    main()
