"""Standard errors on the motorcycle data: mixexp's ``summary`` next to R flexmix's ``refit()``.

Both fit K=2 linear-regression experts (accel ~ times) behind a softmax gate
on times, by maximum likelihood (mixexp: ``alpha=0``, best of 10 starts;
flexmix: best of 20 random starts, then ``refit()``, which maximises the
likelihood again with ``optim`` and inverts its numerical Hessian). mixexp's
standard errors come from the analytic observed information.

flexmix numbers its components in its own order and codes the gate on its
first component; its estimates and covariance are mapped linearly onto
mixexp's layout (experts matched by their coefficients, gate re-coded on
mixexp's expert 0) before they are compared. flexmix reports log(sigma);
sigma's standard error is sigma * SE(log sigma) on both sides.

Needs R with flexmix (``apt-get install r-cran-flexmix``)::

    python benchmarks/bench_flexmix_se.py [--nrep 20]
"""

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from mixexp import MixtureOfExpertsRegressor
from mixexp.datasets import load_motorcycle

R_SCRIPT = Path(__file__).parent / "reference" / "flexmix_refit_se.R"
K = 2


def run_flexmix(X, y, nrep):
    """(best EM log-likelihood, coef Series, covariance DataFrame) from the R script."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        raise SystemExit("Rscript not found: apt-get install r-cran-flexmix")
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "mcycle.csv"
        pd.DataFrame({"times": X["times"], "accel": y}).to_csv(csv, index=False)
        run = subprocess.run([rscript, str(R_SCRIPT), str(csv), str(nrep)],
                             capture_output=True, text=True, check=True)
    names, values, vcov, loglik = [], [], {}, None
    for line in run.stdout.splitlines():
        fields = line.split(",")
        if fields[0] == "LOGLIK":
            loglik = float(fields[1])
        elif fields[0] == "COEF":
            names.append(fields[1])
            values.append(float(fields[2]))
        elif fields[0] == "VCOV":
            vcov[int(fields[1]) - 1, int(fields[2]) - 1] = float(fields[3])
    P = len(names)
    V = np.array([[vcov[i, j] for j in range(P)] for i in range(P)])
    return loglik, pd.Series(values, index=names), V


def flexmix_in_mixexp_layout(coef, V, est):
    """flexmix's estimates and covariance mapped onto mixexp's parameter order.

    mixexp's order: gate (expert 1 minus expert 0: intercept, times), then per
    expert intercept, times, log sigma.
    """
    names = list(coef.index)
    comp = [[names.index(f"model.1_Comp.{c}_coef.(Intercept)"),
             names.index(f"model.1_Comp.{c}_coef.times"),
             names.index(f"model.1_Comp.{c}_log(sigma)")] for c in range(1, K + 1)]
    # flexmix's gate: component 1 is the reference (zero row)
    gate = [None] + [[names.index(f"concomitant_Comp.{c}.(Intercept)"),
                      names.index(f"concomitant_Comp.{c}.times")] for c in range(2, K + 1)]
    ours = np.c_[est.expert_intercept_, est.expert_coef_[:, 0],
                 0.5 * np.log(est.expert_variance_)]
    theirs = np.array([coef.iloc[c].to_numpy() for c in comp])
    cost = np.abs((ours[:, None, :] - theirs[None, :, :]) / np.abs(ours).max(axis=0)).sum(2)
    match = linear_sum_assignment(cost)[1]  # mixexp expert k is flexmix component match[k]
    rows = []
    for k in range(1, K):  # gate: gamma_match[k] - gamma_match[0]
        for term in range(2):
            row = np.zeros(len(names))
            if gate[match[k]] is not None:
                row[gate[match[k]][term]] += 1.0
            if gate[match[0]] is not None:
                row[gate[match[0]][term]] -= 1.0
            rows.append(row)
    for k in range(K):
        for term in range(3):
            row = np.zeros(len(names))
            row[comp[match[k]][term]] = 1.0
            rows.append(row)
    A = np.array(rows)
    return A @ coef.to_numpy(), A @ V @ A.T


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nrep", type=int, default=20, help="flexmix random starts")
    args = parser.parse_args()

    X, y = load_motorcycle(return_X_y=True, as_frame=True)
    est = MixtureOfExpertsRegressor(K, alpha=0.0, n_init=10, tol=1e-12, max_iter=5000,
                                    random_state=0).fit(X, y)
    table = est.summary(X, y)
    loglik_r, coef_r, V_r = run_flexmix(X, y, args.nrep)
    theta_r, cov_r = flexmix_in_mixexp_layout(coef_r, V_r, est)
    se_r = np.sqrt(np.diag(cov_r))
    sigma = table.index.get_level_values("term") == "sigma"
    theta_r[sigma] = np.exp(theta_r[sigma])
    se_r[sigma] *= theta_r[sigma]

    out = pd.DataFrame({
        "mixexp coef": table["coef"], "flexmix coef": theta_r,
        "mixexp SE": table["std_err"], "flexmix SE": se_r,
    }, index=table.index)
    out["SE ratio"] = out["mixexp SE"] / out["flexmix SE"]
    print(f"log-likelihood: mixexp {est.log_likelihood_ * len(y):.6f}, "
          f"flexmix (best EM start) {loglik_r:.6f}")
    print("Both gates are coded on mixexp's expert 0; flexmix components matched to it.")
    with pd.option_context("display.width", 140, "display.max_columns", None,
                           "display.precision", 5):
        print(out)
    print(f"largest relative SE difference: {np.abs(out['SE ratio'] - 1).max():.2e}; "
          f"largest relative estimate difference: "
          f"{np.abs(out['mixexp coef'] / out['flexmix coef'] - 1).max():.2e}")


if __name__ == "__main__":
    main()
