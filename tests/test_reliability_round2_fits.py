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
