"""10 EM iterations of mixexp (Numba and NumPy backends) against R's flexmix, one run.

The same data (n=1e5, d=5, K=3, from make_moe_regression) is written to a
CSV file that ``benchmarks/reference/flexmix_em_timing.R`` fits with
flexmix: linear-regression experts, a multinomial-logit gate
(FLXPmultinom) and exactly 10 EM iterations (tolerance 0). flexmix's own
timing of its ``flexmix()`` call is used (R's start-up and the CSV read are
left out); mixexp's time is a whole ``fit`` with ``max_iter=10, tol=0``,
its initialisation (k-means on a subsample of at most 10,000 rows)
included, Numba's compilation excluded (a warm-up fit first).

Without R or flexmix (``apt-get install r-cran-flexmix``) the mixexp times
are printed alone.

    python benchmarks/bench_vs_flexmix.py [--n 100000] [--repeat 3]
"""

import argparse
import re
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from mixexp import MixtureOfExpertsRegressor
from mixexp.datasets import make_moe_regression

R_SCRIPT = Path(__file__).parent / "reference" / "flexmix_em_timing.R"
N_FEATURES, N_EXPERTS, N_ITER = 5, 3, 10


def time_mixexp(backend, X, y, repeat):
    """Median seconds of a 10-iteration fit, and its total log-likelihood."""

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return MixtureOfExpertsRegressor(N_EXPERTS, max_iter=N_ITER, tol=0.0, alpha=0.0,
                                             backend=backend, random_state=0).fit(X, y)

    fit()  # warm-up: Numba's compilation (cached on disk after the first run)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        est = fit()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), est.log_likelihood_ * X.shape[0]


def time_flexmix(X, y):
    """(seconds, total log-likelihood, iterations, wall seconds) from the R script, or None."""
    rscript = shutil.which("Rscript")
    if rscript is None or not R_SCRIPT.exists():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "data.csv"
        header = ",".join([f"x{j + 1}" for j in range(X.shape[1])] + ["y"])
        np.savetxt(csv, np.column_stack([X, y]), delimiter=",", header=header, comments="",
                   fmt="%.17g")
        start = time.perf_counter()
        run = subprocess.run([rscript, str(R_SCRIPT), str(csv), str(N_EXPERTS), str(N_ITER)],
                             capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
    found = re.search(r"FLEXMIX_SECONDS (\S+) LOGLIK (\S+) ITER (\d+)", run.stdout)
    if run.returncode != 0 or found is None:
        print(f"R not available (flexmix run failed: {run.stderr.strip()[-300:]})")
        return None
    return float(found[1]), float(found[2]), int(found[3]), wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="timed mixexp fits (median)")
    parser.add_argument("--no-numpy", action="store_true", help="skip the NumPy backend")
    args = parser.parse_args()

    X, y, _ = make_moe_regression(n_samples=args.n, n_features=N_FEATURES,
                                  n_experts=N_EXPERTS, noise=0.5, random_state=0)
    print(f"n={args.n}, d={N_FEATURES}, K={N_EXPERTS}, {N_ITER} EM iterations, "
          f"alpha=0 (as flexmix)")
    results = {}
    for backend in ["numba"] + ([] if args.no_numpy else ["numpy"]):
        seconds, log_likelihood = time_mixexp(backend, X, y, args.repeat)
        results[f"mixexp ({backend})"] = seconds
        print(f"mixexp, backend={backend:<6} {seconds:8.3f} s   total log-likelihood "
              f"{log_likelihood:12.2f}   (median of {args.repeat}, initialisation included)")
    flexmix = time_flexmix(X, y)
    if flexmix is None:
        if shutil.which("Rscript") is None or not R_SCRIPT.exists():
            print("R not available: flexmix not timed")
        return
    seconds, log_likelihood, n_iter, wall = flexmix
    print(f"flexmix (R)            {seconds:8.3f} s   total log-likelihood {log_likelihood:12.2f}"
          f"   ({n_iter} iterations; {wall:.1f} s with R's start-up and the CSV read)")
    for name, mine in results.items():
        print(f"flexmix / {name}: {seconds / mine:.0f}x")


if __name__ == "__main__":
    main()
