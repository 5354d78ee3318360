"""Student-t experts on the motorcycle data against R meteorits' published TMoE fit.

meteorits (Chamroukhi et al.) is not packaged for Debian and not installed
here; its README reports the TMoE fit of the motorcycle data (K = 4 experts
quadratic in ``times``, a gate linear in ``times``) at a log-likelihood of
-551.41. This script fits the same model shape with mixexp:

* Gaussian experts (``alpha=0``, ``n_init`` starts);
* Student-t experts warm-started from that Gaussian fit (t nests it);
* Student-t experts from the usual starts;

and re-evaluates each fitted model's log-likelihood independently with
scipy.stats (``t.logpdf`` / ``norm.logpdf`` and the softmax gate written out
here), so the figures do not rest on mixexp's own kernels.

    python benchmarks/reference/student_t_motorcycle.py [--n-init 20]
"""

import argparse
import warnings

import numpy as np
from scipy import stats
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning

from mixexp import MixtureOfExpertsRegressor
from mixexp.datasets import load_motorcycle

METEORITS_TMOE = -551.41


def independent_log_likelihood(est, Z, y):
    """sum_i log sum_k g_k(times_i) p_k(accel_i | times_i, times_i^2), from scipy."""
    logits = Z[:, [0]] @ est.gate_coef_.T + est.gate_intercept_
    log_gate = logits - logsumexp(logits, axis=1, keepdims=True)
    mean = Z @ est.expert_coef_.T + est.expert_intercept_
    scale = np.sqrt(est.expert_variance_)
    if est.expert == "student_t":
        log_density = stats.t.logpdf(y[:, None], est.expert_dof_, mean, scale)
    else:
        log_density = stats.norm.logpdf(y[:, None], mean, scale)
    return float(logsumexp(log_gate + log_density, axis=1).sum())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-init", type=int, default=20)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)

    X, y = load_motorcycle(return_X_y=True)
    times = X[:, 0]
    Z = np.column_stack([times, times**2])
    shape = dict(gate_features=[0], expert_features=[0, 1], alpha=0.0, random_state=0)

    gaussian = MixtureOfExpertsRegressor(4, n_init=args.n_init, max_iter=2000, tol=1e-10,
                                         **shape).fit(Z, y)
    rows = [("gaussian", args.n_init, gaussian.log_likelihood_ * len(y),
             independent_log_likelihood(gaussian, Z, y), None)]
    warm = MixtureOfExpertsRegressor(4, warm_start=True, n_init=args.n_init, max_iter=2000,
                                     tol=1e-10, **shape).fit(Z, y)
    warm.set_params(expert="student_t").fit(Z, y)
    rows.append(("t, warm from gaussian", args.n_init, warm.log_likelihood_ * len(y),
                 independent_log_likelihood(warm, Z, y), warm.expert_dof_))
    cold = MixtureOfExpertsRegressor(4, expert="student_t", n_init=args.n_init, max_iter=2000,
                                     tol=1e-8, **shape).fit(Z, y)
    rows.append(("t, usual starts", args.n_init, cold.log_likelihood_ * len(y),
                 independent_log_likelihood(cold, Z, y), cold.expert_dof_))

    print(f"motorcycle data, K=4, experts quadratic in times, gate linear in times "
          f"(meteorits TMoE: {METEORITS_TMOE})")
    print(f"{'fit':>22} {'starts':>6} {'log-lik':>11} {'scipy':>11} {'- meteorits':>11}  dof")
    for name, starts, total, check, dof in rows:
        dof_text = "" if dof is None else np.array2string(np.asarray(dof), precision=3)
        print(f"{name:>22} {starts:>6} {total:>11.3f} {check:>11.3f} "
              f"{total - METEORITS_TMOE:>11.3f}  {dof_text}")


if __name__ == "__main__":
    main()
