"""Exploration for issue 17: held-out R^2 on real tables under other penalty rules.

Runs ``bench_defaults.py``'s protocol (5 folds, K by BIC over 1..6, each
fold against Ridge(alpha=1)) with a ``MixtureOfExpertsRegressor`` whose
penalties follow a rule that the estimator does not offer. It is a
prototype, not a feature: it reaches into private methods
(``_make_model``, ``_make_family``, the Gaussian family's ``_weight_penalties``;
``ridge_step`` takes a penalty per expert)
to give the gate and each expert penalties of their own, so it may break
when they change. A calibrated rule fits at the default penalty, chooses
the penalties from that fit, and refits warm-started with them.

    --expert A      every expert's penalty A per standardised weight
    --expert gcv    each expert's own penalty by weighted generalised
                    cross-validation (RidgeCV's criterion) at the fit's
                    responsibilities, from the Gram matrix and moments
    --gate A        the gate's penalty A
    --gate alo      approximate leave-one-out (Newton step) of the gate's
                    soft-target log-loss at the fit's responsibilities
    --gate cv       5-fold CV of that log-loss, responsibilities fixed
    --gate cv-ll    5-fold CV of the whole mixture (warm-started refits),
                    held-out log-likelihood
    --gate cv-mse   the same, held-out squared error

    Rscript benchmarks/reference/export_tables.R /tmp/moe_tables
    python benchmarks/explore_penalty_rules.py /tmp/moe_tables --expert gcv --gate cv
    python benchmarks/explore_penalty_rules.py --demo --expert gcv --gate cv
"""

import argparse
import copy
import math
import pathlib
import sys
import warnings

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax

import mixexp
import mixexp.datasets
from mixexp import _base, _regressor
from mixexp._experts import _gaussian
from mixexp._gates._softmax import SoftmaxGate
from mixexp._model import MixtureModel

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import bench_defaults  # noqa: E402

GATE_GRID = np.logspace(-4, 2, 13)
EXPERT_GRID = np.logspace(-4, 4, 33)
CV_GATE_GRID = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]


# ---- per-expert and gate penalties, patched in -------------------------------------
def _weight_penalties(self, coef):
    penalty = self.weight_penalty
    return np.sum((penalty[:, None, :] if penalty.ndim == 2 else penalty) * coef**2, axis=2)


def _make_model(self, family, weight_exponent=0, columns=(None, None)):
    alpha = getattr(self, "_gate_alpha", None)
    alpha = float(self.alpha) if alpha is None else alpha
    return MixtureModel(SoftmaxGate(math.ldexp(alpha, -weight_exponent)), family, *columns)


_original_make_family = _regressor.MixtureOfExpertsRegressor._make_family


def _make_family(self, x_scale, Y, sample_weight, alpha, x_mean=None):
    family = _original_make_family(self, x_scale, Y, sample_weight, alpha, x_mean)
    if getattr(self, "_expert_penalty", None) is not None:
        family.weight_penalty = self._expert_penalty
    return family


_gaussian.GaussianExperts._weight_penalties = _weight_penalties
_base.BaseMixtureOfExperts._make_model = _make_model
_regressor.MixtureOfExpertsRegressor._make_family = _make_family


# ---- the rules -----------------------------------------------------------------------
def gcv_penalty(Xs, Y, w):
    """The ridge penalty minimising weighted GCV, n RSS / (n - df)^2 (intercept free)."""
    n_eff = w.sum()
    Xc, Yc = Xs - w @ Xs / n_eff, Y - w @ Y / n_eff
    gram, cross = (Xc * w[:, None]).T @ Xc, (Xc * w[:, None]).T @ Yc
    syy = np.sum(w[:, None] * Yc**2, axis=0)
    eigenvalues, vectors = np.linalg.eigh(gram)
    eigenvalues = np.maximum(eigenvalues, 0.0)
    projected = vectors.T @ cross
    best = (np.inf, EXPERT_GRID[-1])
    for lam in EXPERT_GRID:
        shrink = (eigenvalues + 2 * lam) / (eigenvalues + lam) ** 2
        rss = syy - np.sum(projected**2 * shrink[:, None], axis=0)
        df = 1 + np.sum(eigenvalues / (eigenvalues + lam))
        if df < n_eff:
            score = np.sum(n_eff * rss / np.maximum(syy, 1e-300)) / (n_eff - df) ** 2
            best = min(best, (score, lam))
    return best[1]


def fit_soft_gate(Xs, R, alpha, theta):
    """Multinomial logistic regression on soft targets R, penalty alpha ||V||^2."""
    n, d = Xs.shape
    K = R.shape[1]
    Xh = np.hstack([Xs, np.ones((n, 1))])

    def objective(t):
        T = t.reshape(K, d + 1)
        log_p = log_softmax(Xh @ T.T, axis=1)
        grad = (np.exp(log_p) - R).T @ Xh
        grad[:, :d] += 2 * alpha * T[:, :d]
        return -np.sum(R * log_p) + alpha * np.sum(T[:, :d] ** 2), grad.ravel()

    return minimize(objective, theta, jac=True, method="L-BFGS-B",
                    options={"maxiter": 2000, "gtol": 1e-10}).x


def gate_loo_loss(Xs, R, alpha, theta):
    """Approximate leave-one-out log-loss: eta_-i = eta_i + M_i (I - L_i M_i)^-1 g_i."""
    n, d = Xs.shape
    K, D = R.shape[1], d + 1
    Xh = np.hstack([Xs, np.ones((n, 1))])
    eta = Xh @ theta.reshape(K, D).T
    p = softmax(eta, axis=1)
    hessian = np.zeros((K, D, K, D))
    for k in range(K):
        for m in range(K):
            hessian[k, :, m, :] = (Xh * (p[:, k] * ((k == m) - p[:, m]))[:, None]).T @ Xh
    hessian = hessian.reshape(K * D, K * D)
    penalty = np.zeros((K, D))
    penalty[:, :d] = 2 * alpha
    hessian += np.diag(penalty.ravel())
    inverse = np.linalg.pinv(hessian, hermitian=True).reshape(K, D, K, D)
    M = np.einsum("ia,kalb,ib->ikl", Xh, inverse, Xh)
    L = p[:, :, None] * (np.eye(K)[None] - p[:, None, :])
    system = np.eye(K)[None] - np.einsum("ikl,ilm->ikm", L, M)
    step = np.einsum("ikl,il->ik", M, np.linalg.solve(system, (p - R)[:, :, None])[..., 0])
    return -np.sum(R * log_softmax(eta + step, axis=1))


def gate_cv_loss(Xs, R, alpha, thetas, folds):
    """5-fold CV log-loss of the gate on soft targets (warm starts kept in ``thetas``)."""
    K, d = R.shape[1], Xs.shape[1]
    loss = 0.0
    for f in range(5):
        train, test = folds != f, folds == f
        thetas[f] = fit_soft_gate(Xs[train], R[train], alpha, thetas[f])
        T = thetas[f].reshape(K, d + 1)
        loss -= np.sum(R[test] * log_softmax(Xs[test] @ T[:, :d].T + T[:, d], axis=1))
    return loss


class RuledRegressor(mixexp.MixtureOfExpertsRegressor):
    """The regressor with the penalties of ``RULE`` (a class attribute: clones keep it)."""

    RULE = {"expert": None, "gate": None}

    def fit(self, X, y, sample_weight=None):
        self._gate_alpha = self._expert_penalty = None
        super().fit(X, y)
        expert_rule, gate_rule = self.RULE["expert"], self.RULE["gate"]
        if expert_rule is None and gate_rule is None:
            return self
        X, y = np.asarray(X, float), np.asarray(y, float)
        Y = y.reshape(len(y), -1)
        Xs = (X - self._x_mean) / self._x_scale
        R = self.predict_responsibilities(X, y)
        K, d = R.shape[1], Xs.shape[1]
        if expert_rule == "gcv":
            lam = np.array([gcv_penalty(Xs, Y, R[:, k]) for k in range(K)])
            self._expert_penalty = np.repeat(lam[:, None], d, axis=1)
        elif expert_rule is not None:
            self._expert_penalty = np.full((K, d), float(expert_rule))
        folds = np.random.RandomState(0).permutation(len(Xs)) % 5
        if gate_rule in ("alo", "cv") and K > 1:
            theta, thetas, scores = np.zeros(K * (d + 1)), [np.zeros(K * (d + 1))] * 5, []
            for alpha in GATE_GRID[::-1]:
                if gate_rule == "alo":
                    theta = fit_soft_gate(Xs, R, alpha, theta)
                    scores.append((gate_loo_loss(Xs, R, alpha, theta), alpha))
                else:
                    scores.append((gate_cv_loss(Xs, R, alpha, thetas, folds), alpha))
            self._gate_alpha = min(scores)[1]
        elif gate_rule in ("cv-ll", "cv-mse") and K > 1:
            scores = []
            for alpha in CV_GATE_GRID:
                loss = 0.0
                for f in range(5):
                    train, test = folds != f, folds == f
                    refit = copy.deepcopy(self)
                    refit._gate_alpha, refit.warm_start = alpha, True
                    mixexp.MixtureOfExpertsRegressor.fit(refit, X[train], y[train])
                    if gate_rule == "cv-mse":
                        loss += np.sum((refit.predict(X[test]) - y[test]) ** 2)
                    else:
                        loss -= refit.log_likelihood(X[test], y[test]) * test.sum()
                scores.append((loss, alpha))
            self._gate_alpha = min(scores)[1]
        elif gate_rule not in (None, "alo", "cv", "cv-ll", "cv-mse"):
            self._gate_alpha = float(gate_rule)
        warm_start, self.warm_start = self.warm_start, True
        super().fit(X, y)
        self.warm_start = warm_start
        return self


def demo():
    """The CLI demo's selection (n_init=10, seed 0) under the rule."""
    data = mixexp.datasets.load_motorcycle(as_frame=True)
    X, y = data.data, data.target
    est, _ = mixexp.select_n_experts(RuledRegressor(n_init=10, random_state=0), X, y,
                                     n_experts=range(1, 7))
    print(f"motorcycle demo: K={est.n_experts}, log-likelihood "
          f"{est.log_likelihood_ * len(y):.3f}, R^2 {est.score(X, y):.4f}, "
          f"BIC {est.bic(X, y):.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", help="folder of CSV tables (bench_defaults)")
    parser.add_argument("--expert", default=None, help="A penalty, or 'gcv'")
    parser.add_argument("--gate", default=None, help="A penalty, or alo, cv, cv-ll, cv-mse")
    parser.add_argument("--demo", action="store_true", help="run the motorcycle demo instead")
    args = parser.parse_args()
    RuledRegressor.RULE = {"expert": args.expert, "gate": args.gate}
    print(f"rule: experts {args.expert or 'default'}, gate {args.gate or 'default'}")
    warnings.simplefilter("ignore")
    if args.demo:
        demo()
        return
    if args.folder is None:
        parser.error("give a folder of tables, or --demo")
    bench_defaults.MixtureOfExpertsRegressor = RuledRegressor
    sys.argv = [sys.argv[0], args.folder]
    bench_defaults.main()


if __name__ == "__main__":
    main()
