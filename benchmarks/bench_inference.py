"""Checks of mixexp's standard errors: finite differences, coverage, bootstrap, speed.

1. The analytic observed information against central finite differences of
   the score (itself checked against differences of the log-likelihood),
   K=2..4, d=1..5, regressor and classifier: the largest error relative to
   the largest entry.
2. Coverage: ``--reps`` data sets drawn from a known mixture (K=2, d=2;
   regressor, and a 3-class classifier), each fitted (alpha=0 for the
   regressor; the classifier keeps a tiny alpha=1e-3) warm-started from the
   truth, so that its experts are in the true order; the
   share of 95% Wald intervals that cover the true parameter, per part, and
   the ratio of the mean standard error to the standard deviation of the
   estimates across draws.
3. Bootstrap (``--n-boot`` warm-started refits) against the Hessian standard
   errors on one well-conditioned data set.
4. Time of ``summary`` at n=1e5, d=10, K=4.

    python benchmarks/bench_inference.py [--reps 200] [--reps-classifier 200] [--n-boot 300]
"""

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning

from mixexp import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from mixexp._inference import _validated
from mixexp.datasets import make_moe_classification, make_moe_regression


def fd_agreement():
    rows = []
    for kind in ("regressor", "classifier"):
        for K in (2, 3, 4):
            for d in (1, 3, 5):
                if kind == "regressor":
                    X, y, _ = make_moe_regression(300, d, K, noise=0.3, random_state=K + d)
                    est = MixtureOfExpertsRegressor(K, alpha=0.0, max_iter=50, random_state=0)
                else:
                    X, y, _ = make_moe_classification(300, d, K, n_classes=3,
                                                      random_state=K + d)
                    est = MixtureOfExpertsClassifier(K, max_iter=50, random_state=0)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    est.fit(X, y)
                model, Xv, Y, w = _validated(est, X, y, None)
                # a little away from the fit, where the score is not ~0
                theta = model.theta(est)
                theta = theta + 0.05 * np.random.default_rng(0).standard_normal(theta.size)
                score, info = model.score_and_information(theta, Xv, Y, w)
                step = 1e-6
                E = np.eye(theta.size) * step

                def loglik(t):
                    return model.log_likelihood(t, Xv, Y, w)

                def grad(t):
                    return model.score_and_information(t, Xv, Y, w)[0]

                fd_score = np.array([(loglik(theta + e) - loglik(theta - e)) / (2 * step)
                                     for e in E])
                fd_info = -np.array([(grad(theta + e) - grad(theta - e)) / (2 * step)
                                     for e in E])
                fd_info = (fd_info + fd_info.T) / 2
                rows.append({
                    "model": kind, "K": K, "d": d, "P": theta.size,
                    "score rel. err": np.abs(score - fd_score).max() / np.abs(fd_score).max(),
                    "information rel. err": np.abs(info - fd_info).max()
                    / np.abs(fd_info).max(),
                })
    return pd.DataFrame(rows)


def _truth_vector(kind, truth, order):
    """True parameters in the table's layout, experts relabelled by ``order``."""
    gate = np.c_[truth.gate_intercept, truth.gate_coef][order]
    gate = (gate[1:] - gate[:1]).ravel()
    if kind == "regressor":
        experts = np.c_[truth.expert_intercept, truth.expert_coef,
                        np.sqrt(truth.expert_variance)][order]
    else:
        full = np.concatenate([truth.expert_intercept[..., None], truth.expert_coef],
                              axis=2)[order]
        experts = (full[:, 1:] - full[:, :1]).reshape(len(order), -1)
    return np.r_[gate, experts.ravel()]


def coverage(kind, reps, n):
    """Coverage of the Wald intervals over ``reps`` draws from a known mixture.

    Each fit is warm-started from the true parameters (set as the public
    attributes of a first fit), so it converges to the optimum near the
    truth with the experts in the true order: the study measures the
    standard errors, not EM's luck with starts or label switching.
    """
    z_gate, z_expert, z_sigma, estimates, errors = [], [], [], [], []
    failed = 0
    for rep in range(reps):
        if kind == "regressor":
            X, y, truth = make_moe_regression(n, 2, 2, noise=0.5, gate_strength=2.0,
                                              random_state=1000 + rep)
            est = MixtureOfExpertsRegressor(2, alpha=0.0, max_iter=2000, random_state=0)
        else:
            X, y, truth = make_moe_classification(n, 2, 2, n_classes=3, gate_strength=2.0,
                                                  class_strength=3.0, random_state=1000 + rep)
            est = MixtureOfExpertsClassifier(2, alpha=1e-3, max_iter=2000, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X, y)
            est.gate_coef_ = truth.gate_coef.copy()
            est.gate_intercept_ = truth.gate_intercept.copy()
            est.expert_coef_ = truth.expert_coef.copy()
            est.expert_intercept_ = truth.expert_intercept.copy()
            if kind == "regressor":
                est.expert_variance_ = truth.expert_variance.copy()
            est.set_params(warm_start=True).fit(X, y)
            table = est.summary(X, y)
        true = _truth_vector(kind, truth, np.arange(2))
        se = table["std_err"].to_numpy()
        if not np.isfinite(se).all():
            failed += 1
            continue
        z = (table["coef"].to_numpy() - true) / se
        part = table.index.get_level_values("part")
        term = table.index.get_level_values("term")
        z_gate.append(z[part == "gate"])
        z_expert.append(z[(part == "expert") & (term != "sigma")])
        z_sigma.append(z[term == "sigma"])
        estimates.append(table["coef"].to_numpy() - true)
        errors.append(se)
    rows = []
    for name, zs in (("gate", z_gate), ("expert coefs", z_expert), ("expert sigma", z_sigma)):
        zs = np.concatenate(zs) if zs else np.array([])
        if zs.size:
            rows.append({"model": kind, "part": name, "intervals": zs.size,
                         "coverage 95%": np.mean(np.abs(zs) < 1.959964)})
    ratio = np.mean(errors, axis=0) / np.std(estimates, axis=0, ddof=1)
    return pd.DataFrame(rows), table.index, ratio, failed


def bootstrap_vs_hessian(n, n_boot):
    X, y, _ = make_moe_regression(n, 2, 2, noise=0.5, gate_strength=2.0, random_state=7)
    est = MixtureOfExpertsRegressor(2, alpha=0.0, n_init=3, random_state=0).fit(X, y)
    hessian = est.summary(X, y)
    start = time.perf_counter()
    boot = est.summary(X, y, method="bootstrap", n_boot=n_boot, n_jobs=2, random_state=0)
    seconds = time.perf_counter() - start
    out = pd.DataFrame({"coef": hessian["coef"], "SE hessian": hessian["std_err"],
                        "SE bootstrap": boot["std_err"]})
    out["ratio"] = out["SE bootstrap"] / out["SE hessian"]
    return out, seconds


def timing():
    X, y, _ = make_moe_regression(100_000, 10, 4, noise=0.3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = MixtureOfExpertsRegressor(4, max_iter=100, random_state=0).fit(X, y)
    start = time.perf_counter()
    table = est.summary(X, y)
    return time.perf_counter() - start, len(table)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200, help="coverage draws per model")
    parser.add_argument("--n", type=int, default=1000, help="samples per regression draw")
    parser.add_argument("--n-classifier", type=int, default=2000,
                        help="samples per classification draw")
    parser.add_argument("--reps-classifier", type=int, default=200)
    parser.add_argument("--n-boot", type=int, default=300)
    args = parser.parse_args()
    pd.set_option("display.width", 140)
    pd.set_option("display.max_columns", None)

    print("== 1. analytic information vs finite differences ==")
    print(fd_agreement().to_string(index=False, float_format="%.1e"))

    print("\n== 2. coverage of 95% Wald intervals ==")
    for kind, reps, n in (("regressor", args.reps, args.n),
                          ("classifier", args.reps_classifier, args.n_classifier)):
        print(f"{kind}: {reps} draws, n={n}")
        start = time.perf_counter()
        table, index, ratio, failed = coverage(kind, reps, n)
        print(table.to_string(index=False, float_format="%.3f"))
        print(f"  draws with a singular information (left out): {failed}; "
              f"{time.perf_counter() - start:.0f} s")
        print("  mean SE / SD of the estimates across draws, per parameter:")
        print("  " + pd.Series(ratio, index=index).round(3).to_string().replace("\n", "\n  "))

    print(f"\n== 3. bootstrap ({args.n_boot} refits) vs Hessian standard errors, n={args.n} ==")
    out, seconds = bootstrap_vs_hessian(args.n, args.n_boot)
    print(out.to_string(float_format="%.4f"))
    print(f"  median ratio {out['ratio'].median():.3f}; bootstrap took {seconds:.1f} s")

    print("\n== 4. summary at n=1e5, d=10, K=4 ==")
    seconds, n_params = timing()
    print(f"  {n_params} parameters: {seconds:.2f} s")


if __name__ == "__main__":
    main()
