"""Checks of the Wald tables for Student-t experts: coverage, bootstrap, speed.

1. Coverage: ``--reps`` data sets of ``--n`` rows drawn from a known mixture
   (K=2, one feature, gate 2 x, lines 1 + 2x and -1 - x, scales 0.4 and 0.6,
   nu = 4 and 8, multivariate-t noise), each fitted with alpha=0 warm-started
   from the truth (so the experts keep the true order: the study measures
   the standard errors, not EM's starts). The share of 95% intervals that
   cover the true parameter, per kind of row (the intervals of sigma and
   nu are on the log scale), and the ratio of the mean standard error to
   the standard deviation of the estimates across draws.
2. Bootstrap (``--n-boot`` warm-started refits, tol=1e-7) against the
   Hessian standard errors on one data set.
3. Time of ``summary`` at n=1e5, d=5, K=3.

    python benchmarks/bench_inference_student_t.py [--reps 100] [--n 1000] [--n-boot 100]
"""

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from mixexp import MixtureOfExpertsRegressor

GATE = np.array([[0.0, 0.0], [0.0, 2.0]])  # (K, 1 + d): intercept, weight
COEF = np.array([[2.0], [-1.0]])
INTERCEPT = np.array([1.0, -1.0])
SCALE = np.array([0.4, 0.6])
DOF = np.array([4.0, 8.0])


def draw(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 1))
    logits = GATE[:, 0] + X @ GATE[:, 1:].T
    gate = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    k = (rng.random(n) > gate[:, 0]).astype(int)
    noise = rng.standard_t(DOF[k])
    return X, INTERCEPT[k] + X[:, 0] * COEF[k, 0] + SCALE[k] * noise


def truth_vector():
    gate = (GATE[1] - GATE[0]).tolist()
    experts = [[INTERCEPT[k], COEF[k, 0], SCALE[k], DOF[k]] for k in range(2)]
    return np.array(gate + [v for row in experts for v in row])


def coverage(reps, n):
    true = truth_vector()
    covered, estimates, errors = [], [], []
    failed = 0
    for rep in range(reps):
        X, y = draw(n, 1000 + rep)
        est = MixtureOfExpertsRegressor(2, expert="student_t", alpha=0.0, max_iter=3000,
                                        tol=1e-9, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X, y)
            est.gate_intercept_, est.gate_coef_ = GATE[:, 0].copy(), GATE[:, 1:].copy()
            est.expert_intercept_, est.expert_coef_ = INTERCEPT.copy(), COEF.copy()
            est.expert_variance_, est.expert_dof_ = SCALE**2, DOF.copy()
            est.set_params(warm_start=True).fit(X, y)
            table = est.summary(X, y)
        se = table["std_err"].to_numpy()
        if not np.isfinite(se).all():  # (a nu on a bound, or a singular information)
            failed += 1
            continue
        covered.append((table["ci_lower"].to_numpy() < true)
                       & (true < table["ci_upper"].to_numpy()))
        estimates.append(table["coef"].to_numpy())
        errors.append(se)
    covered = np.array(covered)
    term = table.index.get_level_values("term")
    part = table.index.get_level_values("part")
    kinds = {"gate": part == "gate",
             "expert coefs": (part == "expert") & ~term.isin(["sigma", "dof"]),
             "expert sigma": term == "sigma", "expert dof": term == "dof"}
    rows = [{"rows": name, "intervals": int(covered[:, mask].size),
             "coverage 95%": covered[:, mask].mean()} for name, mask in kinds.items()]
    ratio = np.mean(errors, axis=0) / np.std(estimates, axis=0, ddof=1)
    per_row = pd.DataFrame({"true": true, "mean estimate": np.mean(estimates, axis=0),
                            "coverage": covered.mean(axis=0), "mean SE / SD": ratio},
                           index=table.index)
    return pd.DataFrame(rows), per_row, failed


def bootstrap_vs_hessian(n, n_boot):
    X, y = draw(n, 7)
    est = MixtureOfExpertsRegressor(2, expert="student_t", alpha=0.0, n_init=3, tol=1e-10,
                                    max_iter=3000, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
        hessian = est.summary(X, y)
        # refits from the fit need less: nu crawls at a tight tol
        est.set_params(tol=1e-7)
        start = time.perf_counter()
        boot = est.summary(X, y, method="bootstrap", n_boot=n_boot, random_state=0)
    seconds = time.perf_counter() - start
    out = pd.DataFrame({"coef": hessian["coef"], "SE hessian": hessian["std_err"],
                        "SE bootstrap": boot["std_err"], "boot 2.5%": boot["ci_lower"],
                        "boot 97.5%": boot["ci_upper"]})
    out["ratio"] = out["SE bootstrap"] / out["SE hessian"]
    return out, seconds


def timing():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100_000, 5))
    y = X @ rng.normal(size=5) + np.where(X[:, 0] > 0, 1.0, -1.0) + rng.standard_t(4, 100_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MixtureOfExpertsRegressor(3, expert="student_t", max_iter=50,
                                        random_state=0).fit(X, y)
        start = time.perf_counter()
        table = est.summary(X, y)
    return time.perf_counter() - start, len(table)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--n-boot", type=int, default=100)
    args = parser.parse_args()
    pd.set_option("display.width", 120)
    summary, per_row, failed = coverage(args.reps, args.n)
    print(f"Coverage of 95% Wald intervals, {args.reps} draws of n={args.n} "
          f"({failed} left out: a nu on a bound or a singular information)")
    print(summary.to_string(index=False, float_format="{:.3f}".format))
    print(per_row.to_string(float_format="{:.3f}".format))
    out, seconds = bootstrap_vs_hessian(args.n, args.n_boot)
    print(f"\nBootstrap ({args.n_boot} refits, {seconds:.1f} s) against the Hessian, n={args.n}")
    print(out.to_string(float_format="{:.4g}".format))
    seconds, size = timing()
    print(f"\nsummary at n=1e5, d=5, K=3 ({size} parameters): {seconds:.2f} s")


if __name__ == "__main__":
    main()
