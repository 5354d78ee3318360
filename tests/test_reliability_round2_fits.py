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


# ---- 3. sample weights whose total overflows -------------------------------------------
def regression_data(n=120, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 2))
    y = np.where(X[:, 0] > 0, 2.0 * X[:, 1], -X[:, 1]) + 0.1 * rng.normal(size=n)
    return X, y


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("estimator_class", [MixtureOfExpertsRegressor, MixtureOfExpertsClassifier])
def test_weights_whose_total_overflows_fit_as_rescaled_weights(solver, estimator_class):
    # "Probabilities do not sum to 1" with overflow warnings: weights act as repeated rows,
    # so 2^1020 on every row is unit weights with the penalty 2^1020 times smaller
    X, y = regression_data()
    if estimator_class is MixtureOfExpertsClassifier:
        y = (y > 0).astype(int)
    params = dict(n_experts=2, solver=solver, random_state=0, max_iter=50, alpha=3.0)
    huge = estimator_class(**params).fit(X, y, sample_weight=np.full(len(y), 2.0**1020))
    unit = estimator_class(**{**params, "alpha": 3.0 * 2.0**-1020}).fit(X, y)
    assert_allclose(huge.expert_coef_, unit.expert_coef_, rtol=1e-12)
    assert_allclose(huge.gate_coef_, unit.gate_coef_, rtol=1e-12)
    assert huge.log_likelihood_ == pytest.approx(unit.log_likelihood_, rel=1e-12)
    weights = np.random.RandomState(0).uniform(0, 1e308, len(y))
    est = estimator_class(**params).fit(X, y, sample_weight=weights)
    assert np.isfinite(est.log_likelihood_)
    assert est.log_likelihood(X, y, sample_weight=weights) == pytest.approx(
        est.log_likelihood(X, y, sample_weight=weights / 1e300), rel=1e-12)


def test_ordinary_weights_are_not_rescaled():
    from mixexp._validation import rescaled_sample_weight

    for weights in (np.ones(5), np.array([0.0, 1e-15, 3.0]), np.full(4, 1e17)):
        scaled, exponent = rescaled_sample_weight(weights)
        assert exponent == 0 and scaled is weights
    scaled, exponent = rescaled_sample_weight(np.array([1e308, 1e308, 0.0]))
    assert exponent == 1023 and np.array_equal(scaled, np.ldexp([1e308, 1e308, 0.0], -1023))
    assert rescaled_sample_weight(np.full(3, 2.0**-700))[0].tolist() == [1.0, 1.0, 1.0]


def test_partial_fit_keeps_the_first_batchs_weight_scale():
    X, y = regression_data()
    est = MixtureOfExpertsRegressor(2, solver="adam", random_state=0)
    est.partial_fit(X, y, sample_weight=np.full(len(y), 1e307))
    est.partial_fit(X, y, sample_weight=np.full(len(y), 3e306))
    assert np.isfinite(est.log_likelihood_)
    est = MixtureOfExpertsRegressor(2, solver="adam", random_state=0).partial_fit(X, y)
    with pytest.raises(ValueError, match="sample_weight of this partial_fit batch is too large"):
        est.partial_fit(X, y, sample_weight=np.full(len(y), 1e307))
