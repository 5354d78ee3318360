"""EM iterations of default Student-t fits: Gaussian, motorcycle, outlier and t(3) data.

Fits ``MixtureOfExpertsRegressor(expert="student_t")`` with its defaults
(max_iter=300, tol=1e-6) on

* ``gaussian``: make_moe_regression (n=2000, d=2, K=3, noise 0.5), seeds 0-2;
* ``motorcycle``: the CLI's default fit of the motorcycle data (K=3,
  n_init=10, random_state=0);
* ``outliers``: two linear regimes with Gaussian noise, 5% of the targets
  replaced by uniform draws on [-30, 30] (K=2, n_init=3), and its largest
  coefficient error;
* ``t3``: the same regimes with t(3) noise (K=2), seeds 0-2;

and prints, per fit, the best start's iterations, the iterations of all
starts together, whether it converged (no ConvergenceWarning), the mean
log-likelihood, the fitted degrees of freedom and the fit time.

    python benchmarks/bench_student_t_convergence.py
"""

import contextlib
import io
import re
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from mixexp import MixtureOfExpertsRegressor
from mixexp.datasets import load_motorcycle, make_moe_regression

COEF = np.array([[2.0, -1.0], [-1.5, 0.5]])
INTERCEPT = np.array([1.0, -1.0])
SCALE = np.array([0.5, 0.3])


def two_regimes(n, seed=0, dof=None, outliers=0.0):
    """Two linear regimes split by the sign of x_0 (as tests/test_student_t.py)."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, size=(n, 2))
    k = (X[:, 0] > 0).astype(int)
    noise = rng.normal(size=n) if dof is None else rng.standard_t(dof, size=n)
    y = np.sum(X * COEF[k], axis=1) + INTERCEPT[k] + SCALE[k] * noise
    mask = rng.random(n) < outliers
    y[mask] = rng.uniform(-30, 30, size=mask.sum())
    return X, y


def cases():
    for seed in range(3):
        X, y, _ = make_moe_regression(n_samples=2000, n_features=2, n_experts=3, noise=0.5,
                                      random_state=seed)
        yield f"gaussian s{seed}", X, y, dict(n_experts=3, random_state=seed)
    X, y = load_motorcycle(return_X_y=True)
    yield "motorcycle", X, y, dict(n_experts=3, n_init=10, random_state=0)
    for seed in (1, 2):
        X, y = two_regimes(2000, seed=seed, outliers=0.05)
        yield f"outliers s{seed}", X, y, dict(n_experts=2, n_init=3, random_state=0)
    for seed in range(3):
        X, y = two_regimes(2000, seed=seed, dof=3.0)
        yield f"t3 s{seed}", X, y, dict(n_experts=2, random_state=seed)


def main():
    print("expert='student_t', max_iter=300, tol=1e-6 (defaults)")
    print(f"{'data':>14} {'iter':>5} {'all':>6} {'conv':>5} {'log-lik':>10} {'time (s)':>9} "
          f"{'coef err':>9}  dof")
    for name, X, y, kwargs in cases():
        est = MixtureOfExpertsRegressor(alpha=1e-4, expert="student_t", verbose=1, **kwargs)
        out = io.StringIO()
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out):
            warnings.simplefilter("always", ConvergenceWarning)
            start = time.perf_counter()
            est.fit(X, y)
            seconds = time.perf_counter() - start
        warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
        total = sum(int(m) for m in re.findall(r"(\d+) iterations", out.getvalue()))
        error = ""
        if name.startswith("outliers"):
            order = np.argsort(est.expert_intercept_)[::-1]
            error = f"{max(np.abs(est.expert_coef_[order] - COEF).max(), np.abs(est.expert_intercept_[order] - INTERCEPT).max()):.3f}"
        dof = np.array2string(np.sort(est.expert_dof_), precision=3, max_line_width=200)
        print(f"{name:>14} {est.n_iter_:>5} {total:>6} {str(not warned):>5} "
              f"{est.log_likelihood_:>10.5f} {seconds:>9.2f} {error:>9}  {dof}")


if __name__ == "__main__":
    main()
