"""alpha="auto": the gate's fixed prior and each expert's penalty by GCV."""

import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from mixexp import (
    HierarchicalMixtureOfExpertsRegressor,
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
)
from mixexp._experts._gaussian import GCV_PENALTY_GRID, gcv_penalties
from mixexp.datasets import load_motorcycle, make_moe_regression

DATA = "tests/data/"


def _table(name):
    table = pd.read_csv(DATA + name)
    return table.iloc[:, :-1].to_numpy(float), table.iloc[:, -1].to_numpy(float)


def _standardised(X, weight=None):
    weight = np.ones(len(X)) if weight is None else np.asarray(weight, float)
    mean = weight @ X / weight.sum()
    scale = np.sqrt(weight @ (X - mean) ** 2 / weight.sum())
    return (X - mean) / scale, scale


# ---- against R ------------------------------------------------------------------
# Rscript benchmarks/reference/gcv_ridge.R tests/data/longley.csv (MASS 7.3, lm.ridge)
LONGLEY_R = {"lambda": 0.00316227766016838,
             "coef": [-2.90108453158408e+03, -1.43940927632722e-03, -1.67544150735587e-02,
                      -1.73892538782626e-02, -9.54013805996791e-03, -1.23117774496070e-01,
                      1.53263764781615e+00]}
# Rscript benchmarks/reference/gcv_ridge.R tests/data/stackloss.csv
STACKLOSS_R = {"lambda": 1.0,
               "coef": [-41.073202272822911, 0.665105418290840, 1.318558377267019,
                        -0.109052367114285]}


@pytest.mark.parametrize("name, reference", [("longley.csv", LONGLEY_R),
                                             ("stackloss.csv", STACKLOSS_R)])
def test_one_expert_is_lm_ridge_at_the_lambda_gcv_chooses(name, reference):
    # longley: six nearly collinear columns (condition number ~1e4 standardised)
    X, y = _table(name)
    est = MixtureOfExpertsRegressor(1, tol=1e-12).fit(X, y)
    assert est.expert_alpha_.shape == (1,)
    assert est.expert_alpha_[0] == pytest.approx(reference["lambda"], rel=1e-12)
    assert_allclose(est.expert_intercept_, reference["coef"][0], rtol=1e-9)
    assert_allclose(est.expert_coef_[0], reference["coef"][1:], rtol=1e-8)


# ---- the criterion ------------------------------------------------------------------
def _direct_gcv(Xs, Y, weight, variance, grid):
    """GCV of each penalty by weighted ridge fits solved one by one (intercept free)."""
    n, d = Xs.shape
    design = np.column_stack([Xs, np.ones(n)])
    root = np.sqrt(weight)
    scores = []
    for lam in grid:
        system = (design * weight[:, None]).T @ design + np.diag([lam] * d + [0.0])
        hat = (design * root[:, None]) @ np.linalg.solve(system, (design * root[:, None]).T)
        coef = np.linalg.solve(system, (design * weight[:, None]).T @ Y)
        rss = weight @ (Y - design @ coef) ** 2  # (t,)
        df = np.trace(hat) - 1.0  # the centred hat matrix: the intercept's 1 left out
        scores.append(np.sum(rss / variance) / (weight.sum() - df) ** 2)
    return np.asarray(scores)


@pytest.mark.parametrize("n_targets", [1, 2])
def test_gcv_from_the_statistics_equals_ridge_fits_solved_one_by_one(n_targets):
    rng = np.random.default_rng(0)
    n, d, K = 60, 4, 2
    Xs = rng.standard_normal((n, d)) @ np.diag([1.0, 0.5, 2.0, 0.01])
    Y = Xs @ rng.standard_normal((d, n_targets)) + rng.standard_normal((n, n_targets))
    W = rng.uniform(0.05, 1.0, size=(n, K))  # soft responsibilities times weights
    # statistics at arbitrary current parameters (GCV must not depend on them)
    experts = {"coef": rng.standard_normal((K, n_targets, d)),
               "intercept": rng.standard_normal((K, n_targets)),
               "variance": rng.uniform(0.5, 2.0, size=(K, n_targets))}
    residual = Y[:, None, :] - np.einsum("nd,ktd->nkt", Xs, experts["coef"]) - experts["intercept"]
    statistics = {"gram": np.einsum("nk,ni,nj->kij", W, Xs, Xs), "x_sum": W.T @ Xs,
                  "w_sum": W.sum(axis=0), "xr": np.einsum("nk,nkt,nd->ktd", W, residual, Xs),
                  "r_sum": np.einsum("nk,nkt->kt", W, residual),
                  "rss": np.einsum("nk,nkt->kt", W, residual**2)}
    chosen = gcv_penalties(statistics, experts)
    for k in range(K):
        scores = _direct_gcv(Xs, Y, W[:, k], experts["variance"][k], GCV_PENALTY_GRID)
        assert chosen[k] == GCV_PENALTY_GRID[np.argmin(scores)]
        assert 0 < np.argmin(scores) < len(GCV_PENALTY_GRID) - 1  # an interior choice


def test_the_fitted_objective_is_the_likelihood_minus_both_penalties():
    X, y, _ = make_moe_regression(n_samples=400, n_features=3, n_experts=2, noise=0.3,
                                  random_state=0)
    est = MixtureOfExpertsRegressor(2, random_state=0).fit(X, y)
    _, scale = _standardised(X)
    gate = 0.01 * np.sum((est.gate_coef_ * scale) ** 2)
    experts = np.sum(est.expert_alpha_[:, None] * (est.expert_coef_ * scale) ** 2, axis=1)
    penalty = gate + np.sum(experts / (2.0 * est.expert_variance_))
    assert est.objective_history_[-1] == pytest.approx(
        est.log_likelihood_ - penalty / len(y), rel=1e-10)
    assert np.all(np.isin(est.expert_alpha_, GCV_PENALTY_GRID))


# ---- what "auto" promises ----------------------------------------------------------
@pytest.mark.parametrize("factor", [1e-9, 1e9])
def test_auto_does_not_depend_on_a_feature_scale(factor):
    X, y, _ = make_moe_regression(n_samples=300, n_features=3, n_experts=2, noise=0.3,
                                  random_state=1)
    est = MixtureOfExpertsRegressor(2, random_state=0).fit(X, y)
    scaled = X * np.array([factor, 1.0, 1.0])
    other = MixtureOfExpertsRegressor(2, random_state=0).fit(scaled, y)
    assert_allclose(other.expert_alpha_, est.expert_alpha_)
    assert_allclose(other.predict(scaled), est.predict(X), rtol=1e-7, atol=1e-9)
    assert other.log_likelihood_ == pytest.approx(est.log_likelihood_, rel=1e-9)


def test_a_flat_region_gets_a_flat_expert_and_a_steep_one_its_slope():
    # two regimes in x: y = 5 x (x < 0) and pure noise (x > 0)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(400, 1))
    y = np.where(x[:, 0] < 0, 5.0 * x[:, 0], 0.0) + 0.2 * rng.standard_normal(400)
    est = MixtureOfExpertsRegressor(2, n_init=3, random_state=0).fit(x, y)
    steep = int(np.argmax(np.abs(est.expert_coef_)))
    assert est.expert_coef_[steep] == pytest.approx(5.0, rel=0.05)
    # the flat region's expert is shrunk more than the steep one's
    assert est.expert_alpha_[1 - steep] > est.expert_alpha_[steep]
    assert abs(est.expert_coef_[1 - steep]) < 0.1


def test_student_t_experts_choose_penalties_and_keep_the_objective_monotone():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((300, 5))
    y = X[:, 0] + 0.3 * rng.standard_t(2.0, size=300)
    est = MixtureOfExpertsRegressor(2, expert="student_t", random_state=0).fit(X, y)
    assert est.expert_alpha_.shape == (2,)
    assert np.all(np.isin(est.expert_alpha_, GCV_PENALTY_GRID))
    table = est.summary(X, y)
    assert table.attrs["alpha"] == "auto"
    assert np.all(np.isfinite(table["std_err"].to_numpy(float)[:-2]))


def test_poisson_experts_keep_a_fixed_standardised_penalty():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 2))
    y = rng.poisson(np.exp(0.5 + 0.4 * X[:, 0]))
    est = MixtureOfExpertsRegressor(1, expert="poisson").fit(X, y)
    assert not hasattr(est, "expert_alpha_")
    scaled = MixtureOfExpertsRegressor(1, expert="poisson").fit(X * [1e-6, 1e6], y)
    assert_allclose(scaled.predict(X * [1e-6, 1e6]), est.predict(X), rtol=1e-7)


def test_summary_uses_the_chosen_penalties():
    X, y = _table("longley.csv")
    est = MixtureOfExpertsRegressor(1, tol=1e-12).fit(X, y)
    # one expert at lambda per standardised weight is Ridge(lambda scale^2) per weight:
    # the penalised information's inverse, sigma^2 (X'X + P)^-1 (the penalty is in
    # units of the noise), gives the weights' standard errors
    _, scale = _standardised(X)
    design = np.column_stack([np.ones(len(X)), X])
    penalty = np.diag(np.concatenate([[0.0], est.expert_alpha_[0] * scale**2]))
    information = np.linalg.inv(design.T @ design + penalty) * est.expert_variance_[0]
    table = est.summary(X, y)
    # the information also has sigma's row: the weights' block of its inverse differs
    # from the fixed-sigma one only through the penalty's dependence on sigma, which is
    # second order here (lambda 0.003)
    assert_allclose(table["std_err"].to_numpy(float)[1:7], np.sqrt(np.diag(information))[1:],
                    rtol=1e-3)


def test_warm_start_continues_at_the_chosen_penalties():
    X, y = load_motorcycle(return_X_y=True)
    est = MixtureOfExpertsRegressor(3, random_state=0, tol=1e-9).fit(X, y)
    before, chosen = est.objective_history_[-1], est.expert_alpha_.copy()
    est.set_params(warm_start=True).fit(X, y)
    assert_allclose(est.expert_alpha_, chosen)
    # the same objective, continued: no lower (and hardly higher: it had converged)
    assert before - 1e-12 <= est.objective_history_[0] <= est.objective_history_[-1]
    assert est.objective_history_[-1] == pytest.approx(before, abs=1e-7)


def test_predictive_std_still_widens_outside_the_training_range():
    X, y = load_motorcycle(return_X_y=True)
    est = MixtureOfExpertsRegressor(3, random_state=0).fit(X, y)
    low, high = X.min(), X.max()
    width = high - low
    far = est.predict(np.array([[high + width], [high + 10 * width], [high + 100 * width]]),
                      return_std=True)[1]
    assert np.all(np.diff(far) > 0)


def test_partial_fit_uses_the_fixed_penalties():
    X, y, _ = make_moe_regression(n_samples=200, n_features=2, n_experts=2, random_state=0)
    est = MixtureOfExpertsRegressor(2, solver="adam", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.partial_fit(X[:100], y[:100]).partial_fit(X[100:], y[100:])
    assert not hasattr(est, "expert_alpha_")
    assert est._fitted_model.gate.alpha == 0.01
    assert_allclose(est._fitted_model.family.weight_penalty, 1e-4)


def test_a_later_fixed_alpha_drops_the_chosen_penalties():
    X, y, _ = make_moe_regression(n_samples=200, n_features=2, n_experts=2, random_state=0)
    est = MixtureOfExpertsRegressor(2, random_state=0).fit(X, y)
    assert hasattr(est, "expert_alpha_")
    est.set_params(alpha=0.5).fit(X, y)
    assert not hasattr(est, "expert_alpha_")


def test_hierarchical_regressor_chooses_per_leaf():
    X, y, _ = make_moe_regression(n_samples=300, n_features=2, n_experts=4, random_state=0)
    est = HierarchicalMixtureOfExpertsRegressor((2, 2), random_state=0).fit(X, y)
    assert est.expert_alpha_.shape == (4,)
    assert est._fitted_model.gate.alpha == 0.01


@pytest.mark.parametrize("value", ["Auto", "gcv", -1.0, None])
def test_bad_alpha_is_refused_naming_it(value):
    X, y, _ = make_moe_regression(n_samples=50, n_features=2, n_experts=2, random_state=0)
    with pytest.raises(ValueError, match="'alpha' parameter"):
        MixtureOfExpertsRegressor(2, alpha=value).fit(X, y)


def test_the_classifier_takes_a_number():
    X = np.random.default_rng(0).standard_normal((40, 2))
    with pytest.raises(ValueError, match="'alpha' parameter"):
        MixtureOfExpertsClassifier(2, alpha="auto").fit(X, X[:, 0] > 0)


def test_clone_keeps_auto():
    assert clone(MixtureOfExpertsRegressor()).get_params()["alpha"] == "auto"
