"""Fuzz both estimators with thousands of random, messy data sets.

Each case draws a shape, per-feature scales from 1e-12 to 1e12 (and
offsets), duplicated rows, constant or collinear columns, a target
(continuous, constant, huge, tiny, integer classes), sample weights with
zeros (or whose total overflows), float32 or float64, n_experts from 1 to
more than n_samples, a solver (EM, L-BFGS, Adam) and, for Adam, sometimes a
stream of partial_fit batches (single rows included). A case is handled
when the fit either raises a clear ValueError or passes
mixexp._testing.check_fit / check_stream (finite parameters and
predictions, normalised gate and responsibilities, monotone EM, no warning
but ConvergenceWarning) and, with one expert, matches the reference
(mixexp._testing.check_one_expert: Ridge / LogisticRegression solved in
standardised units). Each case runs on the NumPy or the Numba backend at
random. Prints how many cases were tried and how many were mishandled.

    python benchmarks/fuzz_fit.py [--cases 2000] [--seed 0] [--only CASE ...]
"""

import argparse
import re
import time
from collections import Counter

import numpy as np

from mixexp import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from mixexp._testing import InvariantViolation, check_fit, check_one_expert, check_stream


def random_case(rng):
    """One random (estimator, X, y, sample_weight, description)."""
    n = int(rng.choice([1, 2, 3, 5, 10, 30, 100, 300]))
    d = int(rng.integers(1, 6))
    X = rng.standard_normal((n, d)) * 10.0 ** rng.uniform(-12, 12, size=d)
    X += rng.choice([0.0, 1e3, -1e6]) * rng.integers(0, 2, size=d)  # offsets
    if n > 2 and rng.random() < 0.3:  # few distinct rows, repeated
        X = X[rng.integers(0, max(1, n // 5), size=n)]
    if d > 1 and rng.random() < 0.2:
        X[:, -1] = 2.0 * X[:, 0]  # collinear
    if rng.random() < 0.1:
        X[:, 0] = 3.0  # constant column
    classify = rng.random() < 0.4
    if classify:
        n_classes = int(rng.integers(2, 5))
        y = rng.integers(0, n_classes, size=n)
        if rng.random() < 0.3:
            y = (X[:, 0] > np.median(X[:, 0])).astype(int)  # separable
    else:
        kind = rng.choice(["linear", "constant", "huge", "tiny", "integer"])
        y = {
            "linear": X @ rng.standard_normal(d) + rng.standard_normal(n),
            "constant": np.full(n, 7.0),
            "huge": rng.standard_normal(n) * 1e100,
            "tiny": rng.standard_normal(n) * 1e-100,
            "integer": rng.integers(0, 3, size=n).astype(float),
        }[kind]
    sample_weight = None
    if rng.random() < 0.3:
        sample_weight = rng.integers(0, 4, size=n).astype(float)
        if rng.random() < 0.2:
            sample_weight *= rng.choice([1e-300, 1e307])  # totals that vanish or overflow
    if rng.random() < 0.3:
        X = X.astype(np.float32)
    n_experts = 1 if rng.random() < 0.3 else int(rng.integers(1, n + 4))
    solver = str(rng.choice(["em", "lbfgs", "adam"]))
    stream = solver == "adam" and rng.random() < 0.4
    params = dict(n_experts=n_experts, n_init=int(rng.integers(1, 3)), max_iter=50,
                  solver=solver, random_state=int(rng.integers(1000)),
                  backend=str(rng.choice(["numpy", "numba"])))
    if n_experts == 1 and not stream:  # compared with the reference: fitted to convergence
        params.update(tol=1e-10, max_iter=1000)
    if rng.random() < 0.3:
        params["alpha"] = float(rng.choice([0.0, 1e-8, 10.0]))
    estimator = (MixtureOfExpertsClassifier if classify else MixtureOfExpertsRegressor)(**params)
    batches = None
    if stream:  # partial_fit on consecutive batches, single rows among them
        cuts = np.sort(rng.choice(np.arange(1, n), size=min(n - 1, int(rng.integers(0, 6))),
                                  replace=False)) if n > 1 else np.array([], int)
        if n > 1 and rng.random() < 0.3:
            cuts = np.arange(1, min(n, 40))  # a stream of single rows
        bounds = [0, *cuts.tolist(), n]
        batches = [(X[a:b], y[a:b], None if sample_weight is None else sample_weight[a:b])
                   for a, b in zip(bounds[:-1], bounds[1:])]
    description = (f"{type(estimator).__name__}(n_experts={n_experts}, solver={solver!r}, "
                   f"backend={params['backend']!r}, alpha={params.get('alpha', 'default')}) "
                   f"{'stream of ' + str(len(batches)) + ' batches ' if stream else ''}"
                   f"n={n} d={d} dtype={X.dtype} weighted={sample_weight is not None}")
    return estimator, X, y, sample_weight, batches, description


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--refusals", action="store_true", help="list the refusal messages")
    parser.add_argument("--only", type=int, nargs="+", metavar="CASE",
                        help="run only these case numbers of the seed's sequence "
                             "(to replay a mishandled case)")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    outcomes, failures, refusals = Counter(), [], Counter()
    start = time.perf_counter()
    for case in range(args.cases):
        estimator, X, y, sample_weight, batches, description = random_case(rng)
        if args.only is not None and case not in args.only:
            continue  # drawn all the same: later cases keep their numbers
        X_before, y_before = X.copy(), np.copy(y)
        try:
            if batches is None:
                outcome, detail = check_fit(estimator, X, y, sample_weight)
                if outcome == "fitted" and check_one_expert(estimator, X, y, sample_weight):
                    outcomes["checked against the reference"] += 1
            else:
                classes = np.unique(y) if hasattr(estimator, "predict_proba") else None
                outcome, detail = check_stream(estimator, batches, classes=classes)
                outcomes["partial_fit streams"] += 1
            if not (np.array_equal(X, X_before) and np.array_equal(y, y_before)):
                raise InvariantViolation("the input arrays were modified")
        except InvariantViolation as error:
            outcome, detail = "mishandled", str(error)
            failures.append((case, description, detail))
        outcomes[outcome] += 1
        if outcome == "refused":  # grouped by message, numbers left out
            refusals[re.sub(r"[-+]?\d[\w.+-]*", "#", detail)[:100]] += 1
    seconds = time.perf_counter() - start
    tried = args.cases if args.only is None else len(set(args.only) & set(range(args.cases)))
    print(f"cases tried: {tried} (seed {args.seed}, {seconds:.0f} s)")
    print(f"  fitted:     {outcomes['fitted']}")
    print(f"  refused with a ValueError: {outcomes['refused']}")
    print(f"  mishandled: {outcomes['mishandled']}")
    print(f"  (partial_fit streams: {outcomes['partial_fit streams']}; one expert checked "
          f"against Ridge / LogisticRegression: {outcomes['checked against the reference']})")
    if args.refusals:
        for message, count in refusals.most_common():
            print(f"    refused {count}x: {message}")
    for case, description, detail in failures[:20]:
        print(f"    case {case}: {description}: {detail[:200]}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
