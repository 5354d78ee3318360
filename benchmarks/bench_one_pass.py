"""Converged EM fit at scale: time, passes over X per iteration, peak memory.

The benchmark of the "one pass per EM iteration" design: a converged EM fit
of MixtureOfExpertsRegressor (default tol, one start) on make_moe_regression
data, n=1e6, d=10, K=8, Numba backend by default. Each timed fit runs in a
fresh subprocess (after a small warm-up fit, so Numba's compilation is not
timed). With ``--baseline PYTHON`` the same fits also run under another
interpreter (a venv with an earlier mixexp installed), alternating the two,
and the table gives the ratios measured in this one run:

    python -m venv /tmp/venv-base && /tmp/venv-base/bin/pip install <earlier checkout>
    python benchmarks/bench_one_pass.py --baseline /tmp/venv-base/bin/python

``--classes C`` runs the same for MixtureOfExpertsClassifier on
make_moe_classification data with C classes (multinomial logistic experts),
e.g. ``--n 3e5 --k 4 --classes 3``. Its passes count both the rows object's
passes and the kernel calls on all n rows (the multi-pass M-step calls the
kernels on the whole standardised copy; one-pass EM calls them on chunks).

Passes over X: where mixexp has a rows object (``mixexp._rows.InMemoryRows``)
its pass counter, plus one for a whole standardised copy if one is made;
otherwise the number of kernel calls that read all n rows (each such call
is a pass over X). Peak memory: tracemalloc's peak during a separate fit,
as a multiple of X's size.
"""

import argparse
import json
import statistics
import subprocess
import sys

WORKER = r"""
import json, sys, time, tracemalloc, warnings
import numpy as np
from mixexp import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from mixexp.datasets import make_moe_classification, make_moe_regression

n, d, k = (int(v) for v in sys.argv[1:4])
backend, measure, n_classes = sys.argv[4], sys.argv[5], int(sys.argv[6])
if n_classes:
    X, y, _ = make_moe_classification(n_samples=n, n_features=d, n_experts=k,
                                      n_classes=n_classes, random_state=0)
    estimator = MixtureOfExpertsClassifier
else:
    X, y, _ = make_moe_regression(n_samples=n, n_features=d, n_experts=k, noise=0.5,
                                  random_state=0)
    estimator = MixtureOfExpertsRegressor

def make():
    return estimator(k, n_init=1, backend=backend, random_state=0, max_iter=500)

warnings.simplefilter("ignore")
make().fit(X[:20000], y[:20000])  # compile the kernels first

passes = {"rows": 0, "full_calls": 0}
try:
    from mixexp import _rows
    rows_class = _rows.InMemoryRows
    original_map_reduce, original_whole = rows_class.map_reduce, rows_class.whole
    def map_reduce(self, function):
        passes["rows"] += 1
        return original_map_reduce(self, function)
    def whole(self):
        if self._whole is None:
            passes["rows"] += 1
        return original_whole(self)
    rows_class.map_reduce, rows_class.whole = map_reduce, whole
    has_rows = True
except (ImportError, AttributeError):
    has_rows = False
from mixexp._kernels import get_kernels
bundle = get_kernels(backend if backend != "auto" else "numba")
for name in list(vars(bundle)):
    function = getattr(bundle, name)
    if callable(function) and name not in ("to_host",) and not isinstance(function, type):
        def counted(*args, _function=function, **kwargs):
            if args and getattr(args[0], "shape", (0,))[0] == n:
                passes["full_calls"] += 1
            return _function(*args, **kwargs)
        setattr(bundle, name, counted)

result = {}
if measure == "time":
    est = make()
    start = time.perf_counter()
    est.fit(X, y)
    result["time"] = time.perf_counter() - start
    result["n_iter"] = int(est.n_iter_)
    result["log_likelihood"] = float(est.log_likelihood_)
    if n_classes:
        result["passes"] = passes["rows"] + passes["full_calls"]
        result["passes_kind"] = "rows + full-n kernel calls"
    else:
        result["passes"] = passes["rows"] if has_rows else passes["full_calls"]
        result["passes_kind"] = "rows" if has_rows else "full-n kernel calls"
else:
    tracemalloc.start()
    make().fit(X, y)
    result["peak_over_X"] = tracemalloc.get_traced_memory()[1] / X.nbytes
    tracemalloc.stop()
print("RESULT " + json.dumps(result))
"""


def run_worker(python, args, measure):
    output = subprocess.run(
        [python, "-c", WORKER, str(int(args.n)), str(args.d), str(args.k), args.backend, measure,
         str(args.classes)],
        check=True, capture_output=True, text=True, cwd="/",  # not a checkout: the installed mixexp
    ).stdout
    line = [row for row in output.splitlines() if row.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, default=1e6)
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--backend", default="numba")
    parser.add_argument("--classes", type=int, default=0,
                        help="fit the classifier on this many classes (0: the regressor)")
    parser.add_argument("--repeat", type=int, default=3, help="timed fits per interpreter")
    parser.add_argument("--baseline", help="python of a venv with an earlier mixexp")
    args = parser.parse_args()

    pythons = {"this": sys.executable}
    if args.baseline:
        pythons = {"baseline": args.baseline, **pythons}
    runs = {name: [] for name in pythons}
    for _ in range(args.repeat):  # alternate, so machine noise hits both alike
        for name, python in pythons.items():
            runs[name].append(run_worker(python, args, "time"))
    memory = {name: run_worker(python, args, "memory") for name, python in pythons.items()}

    kind = f"classifier, {args.classes} classes" if args.classes else "regressor"
    print(f"Converged EM fit ({kind}), n={int(args.n)}, d={args.d}, K={args.k}, "
          f"backend={args.backend}, median of {args.repeat} fits")
    print(f"{'code':>9} {'fit (s)':>9} {'iters':>6} {'s/iter':>8} {'passes/iter':>12} "
          f"{'peak/X':>7} {'log-lik/sample':>15}")
    summary = {}
    for name in pythons:
        times = [r["time"] for r in runs[name]]
        last = runs[name][-1]
        fit_time = statistics.median(times)
        per_iter = fit_time / last["n_iter"]
        passes = last["passes"] / last["n_iter"]
        summary[name] = (fit_time, per_iter, last["log_likelihood"])
        print(f"{name:>9} {fit_time:>9.2f} {last['n_iter']:>6} {per_iter:>8.3f} {passes:>12.2f} "
              f"{memory[name]['peak_over_X']:>7.2f} {last['log_likelihood']:>15.6f}"
              f"   (passes: {last['passes_kind']})")
    if args.baseline:
        old, new = summary["baseline"], summary["this"]
        print(f"speed-up: fit {old[0] / new[0]:.2f}x, per iteration {old[1] / new[1]:.2f}x; "
              f"log-likelihood difference {new[2] - old[2]:+.2e} per sample")


if __name__ == "__main__":
    main()
