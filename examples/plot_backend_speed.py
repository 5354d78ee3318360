"""
==============================
Backends: how fast is each one
==============================

The per-sample work of a fit (gate log-softmax, expert log-densities,
responsibilities and the M-step's weighted sums) runs in a *kernel
backend*, chosen by the ``backend`` parameter. ``"numpy"`` is the reference
implementation; ``"numba"`` compiles fused, multi-threaded kernels;
``"auto"`` (the default) takes Numba when it can be imported. The fitted
model does not depend on the backend beyond rounding.

This example times ten EM iterations and one prediction with each
available backend, in float64 and float32, on 20 000 samples with 10
features and 8 experts. The numbers depend on the machine (the
documentation is built on a small one); the ratios are what to look at. A
GPU row is added only when a CuPy backend and a GPU are available.
"""

# %%
# Timing ten EM iterations
# ------------------------
# The first fit of each configuration initialises the model and runs one
# iteration (it also compiles or loads Numba's kernels). A warm-started fit
# then runs exactly ten more EM iterations (``tol=0`` never stops early, so
# the expected ConvergenceWarning is silenced), so the timing holds no
# initialisation.
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning

from mixexp import MixtureOfExpertsRegressor
from mixexp.datasets import make_moe_regression

X, y, _ = make_moe_regression(n_samples=20_000, n_features=10, n_experts=8, random_state=0)


def time_backend(backend, dtype):
    Xd, yd = X.astype(dtype), y.astype(dtype)
    est = MixtureOfExpertsRegressor(n_experts=8, backend=backend, max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(Xd, yd)
        est.set_params(max_iter=10, tol=0.0, warm_start=True)
        start = time.perf_counter()
        est.fit(Xd, yd)
        fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    est.predict(Xd, return_std=True)
    predict_seconds = time.perf_counter() - start
    return {"backend": backend, "dtype": np.dtype(dtype).name,
            "10 EM iterations (s)": fit_seconds, "predict (ms)": 1e3 * predict_seconds,
            "log-likelihood": est.log_likelihood_}


rows = []
for backend in ("numpy", "numba"):
    for dtype in (np.float64, np.float32):
        try:
            rows.append(time_backend(backend, dtype))
        except ImportError as exc:  # an explicit backend that is not installed
            print(f"backend={backend!r} skipped: {exc}")

# %%
# The GPU backend
# ---------------
# CuPy runs the fit on an NVIDIA GPU (``pip install "mixexp[gpu]"``). It is
# timed only where the installed mixexp accepts ``backend="cupy"`` and CuPy
# finds a device; otherwise the row is skipped with the reason.
try:
    import cupy

    if cupy.cuda.runtime.getDeviceCount() == 0:
        raise RuntimeError("no GPU found")
    rows.append(time_backend("cupy", np.float64))
    rows.append(time_backend("cupy", np.float32))
except Exception as exc:  # noqa: BLE001 - any reason at all means: no GPU row
    print(f"GPU timing skipped: {type(exc).__name__}: {exc}")

# %%
# Results
# -------
# Speed-up is relative to the NumPy backend in float64. In float64 the
# backends give the same fit to rounding; float32 rounds every per-sample
# quantity, so its EM path, and its log-likelihood, differ slightly.
table = pd.DataFrame(rows).set_index(["backend", "dtype"])
reference = table.loc[("numpy", "float64"), "10 EM iterations (s)"]
table["speed-up"] = reference / table["10 EM iterations (s)"]
print(table.round({"10 EM iterations (s)": 3, "predict (ms)": 1, "log-likelihood": 6,
                   "speed-up": 1}).to_string())
