"""Reliability, round 2 (issue 17), part two: penalties, extreme scales and weights, streams."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.linear_model import LogisticRegression

from mixexp import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor

SOLVERS = ["em", "lbfgs", "adam"]
# Adam stops on a noisy criterion: its fits are compared more loosely
SOLVER_KWARGS = {
    "em": dict(tol=1e-12, max_iter=3000),
    "lbfgs": dict(tol=1e-12, max_iter=3000),
    "adam": dict(tol=1e-9, max_iter=3000, n_iter_no_change=50, learning_rate_init=0.01),
}
PROBA_ATOL = {"em": 1e-5, "lbfgs": 1e-5, "adam": 2e-2}


def classification_data(n_classes, n=300, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 3)) * [1.0, 3.0, 0.2] + [0.0, 5.0, -1.0]
    standardised = (X - X.mean(axis=0)) / X.std(axis=0)
    logits = standardised @ rng.normal(size=(3, n_classes)) + rng.gumbel(size=(n, n_classes))
    return X, logits.argmax(axis=1)


# ---- 1. the classifier's penalty is LogisticRegression's, for 2 and 3+ classes ---------
@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("n_classes", [2, 3, 4])
@pytest.mark.parametrize("alpha", [0.5, 5.0])
def test_one_expert_is_logistic_regression_with_c_one_over_two_alpha(solver, n_classes, alpha):
    # two classes were fitted with half LogisticRegression's penalty (C = 1 / alpha):
    # the centred weights w_1 = -w_0 = w / 2 give alpha (|w_0|^2 + |w_1|^2) = alpha |w|^2 / 2
    X, y = classification_data(n_classes)
    est = MixtureOfExpertsClassifier(1, solver=solver, alpha=alpha, random_state=0,
                                     **SOLVER_KWARGS[solver]).fit(X, y)
    reference = LogisticRegression(C=1 / (2 * alpha), tol=1e-12, max_iter=100_000).fit(X, y)
    assert_allclose(est.predict_proba(X), reference.predict_proba(X), atol=PROBA_ATOL[solver])
    if n_classes == 2:  # the binary logit's weights
        logit = est.expert_coef_[0, 1] - est.expert_coef_[0, 0]
        assert_allclose(logit, reference.coef_[0], rtol=1e-4 if solver != "adam" else 2e-2)


# ---- 2. constant targets, every solver ------------------------------------------------
@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("value", [0.0, 7.0, -3e5, 1e-8])
@pytest.mark.parametrize("n_experts", [1, 2])
def test_constant_target_fits_with_every_solver(solver, value, n_experts):
    # lbfgs raised "An upper bound is less than the corresponding lower bound": the
    # variance's upper bound was measured from the target's spread (rounding noise)
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 2))
    y = np.full(60, value)
    est = MixtureOfExpertsRegressor(n_experts, solver=solver, random_state=0).fit(X, y)
    assert_allclose(est.predict(X), value, rtol=1e-9, atol=1e-300)
    floor = est._family_state["variance_floor"]
    assert np.all(est.expert_variance_ >= floor * (1 - 1e-12))


@pytest.mark.parametrize("solver", SOLVERS)
def test_a_constant_target_column_beside_a_varying_one(solver):
    rng = np.random.RandomState(1)
    X = rng.normal(size=(80, 2))
    Y = np.column_stack([X @ [1.0, -2.0] + 0.1 * rng.normal(size=80), np.full(80, 4.0)])
    est = MixtureOfExpertsRegressor(1, solver=solver, random_state=0).fit(X, Y)
    assert_allclose(est.predict(X)[:, 1], 4.0, rtol=1e-9)
    residual = est.predict(X)[:, 0] - Y[:, 0]
    assert residual.var() < 0.02 * Y[:, 0].var()
