"""Hard and top-k gating, load balancing, expert usage, adding and removing experts."""

from copy import deepcopy

import numpy as np
from _predictive_std import predictive_std
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import log_softmax, logsumexp
from scipy.stats import norm
from sklearn.base import clone

from mixexp import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from mixexp._kernels import get_kernels
from mixexp._resize import resize_experts
from mixexp._rows import TrainingData
from mixexp.datasets import make_moe_classification, make_moe_regression

NUMPY = get_kernels("numpy")


@pytest.fixture(scope="module")
def regression():
    X, y, _ = make_moe_regression(n_samples=600, n_features=2, n_experts=3, noise=0.3,
                                  random_state=0)
    return X, y, MixtureOfExpertsRegressor(3, n_init=2, random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def classification():
    X, y, _ = make_moe_classification(n_samples=600, n_features=2, n_experts=3, n_classes=3,
                                      random_state=0)
    return X, y, MixtureOfExpertsClassifier(3, n_init=2, random_state=0).fit(X, y)


def top_k_gate(gate, k):
    """The k largest gate entries of each row, renormalised; zeros elsewhere."""
    kept = np.zeros_like(gate)
    order = np.argsort(-gate, axis=1, kind="stable")[:, :k]
    np.put_along_axis(kept, order, np.take_along_axis(gate, order, axis=1), axis=1)
    return kept / kept.sum(axis=1, keepdims=True)


# ---- kernels (the NumPy reference against an independent oracle, and every
# ---- other backend against the same oracle)
BACKENDS = ["numpy", "numba"]
# above the Numba kernels' serial/parallel threshold too
SIZES = [50, 30_000]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_top_k_kernel_keeps_the_k_largest_renormalised_with_ties_to_the_lower_index(backend, n):
    kernels = get_kernels(backend)
    rng = np.random.default_rng(0)
    log_g = log_softmax(rng.standard_normal((n, 5)), axis=1)
    log_g[0] = np.log([0.3, 0.3, 0.3, 0.05, 0.05])  # a three-way tie for two places
    for k in (1, 2, 4, 5):
        routed = kernels.top_k_log_gate(log_g, k)
        assert_allclose(np.exp(routed), top_k_gate(np.exp(log_g), k), rtol=1e-12, atol=0)
        assert np.all(np.isfinite(routed).sum(axis=1) == k)
    assert_array_equal(np.isfinite(kernels.top_k_log_gate(log_g, 2)[0]),
                       [True, True, False, False, False])
    assert_array_equal(kernels.top_k_log_gate(log_g, 1)[0], [0.0] + [-np.inf] * 4)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_classify_kernel_is_the_argmax_of_the_joint(backend, n):
    rng = np.random.default_rng(1)
    log_joint = rng.standard_normal((n, 4))
    log_joint[3] = [-np.inf] * 4  # impossible under every expert
    log_joint[4] = [0.5, 1.0, 1.0, -2.0]  # tie: the lower index wins
    best, resp = get_kernels(backend).classify_log_joint(log_joint)
    assert_array_equal(best, log_joint.max(axis=1))
    expected = np.eye(4)[np.argmax(log_joint, axis=1)]
    expected[3] = 0.0
    assert_array_equal(resp, expected)
    assert resp[4, 1] == 1.0


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_kernels_match_a_direct_computation(backend, n):
    kernels = get_kernels(backend)
    rng = np.random.default_rng(2)
    X, W = rng.standard_normal((n, 4)), rng.uniform(size=(n, 3))
    Y = rng.standard_normal((n, 2))
    coef, intercept = rng.standard_normal((3, 2, 4)), rng.standard_normal((3, 2))
    resid = Y[:, None, :] - (np.einsum("nd,ktd->nkt", X, coef) + intercept)  # (n, K, t)
    xr, r_sum, rss = kernels.gaussian_residual_moments(X, Y, W, coef, intercept)
    assert_allclose(xr, np.einsum("nk,nkt,nd->ktd", W, resid, X), rtol=1e-10)
    assert_allclose(r_sum, np.einsum("nk,nkt->kt", W, resid), rtol=1e-10)
    assert_allclose(rss, np.einsum("nk,nkt->kt", W, resid**2), rtol=1e-10)

    classes = np.eye(3)[rng.integers(3, size=n)]
    coef, intercept = rng.standard_normal((3, 3, 4)), rng.standard_normal((3, 3))
    proba = np.exp(log_softmax(np.einsum("nd,kcd->nkc", X, coef) + intercept, axis=2))
    residual = W[:, :, None] * (classes[:, None, :] - proba)  # (n, K, C)
    grad_coef, grad_intercept = kernels.logistic_gradient(X, classes, W, coef, intercept)
    assert_allclose(grad_coef, np.einsum("nkc,nd->kcd", residual, X), rtol=1e-9, atol=1e-9)
    assert_allclose(grad_intercept, residual.sum(axis=0), rtol=1e-9, atol=1e-9)


# ---- hard gating -----------------------------------------------------------
def test_hard_gating_predicts_with_the_argmax_expert(regression):
    X, y, soft = regression
    hard = clone(soft).set_params(gating="hard").fit(X, y)
    winner = np.argmax(hard.predict_gate(X), axis=1)
    rows = np.arange(X.shape[0])
    mean, std = hard.predict(X, return_std=True)
    assert_array_equal(mean, hard.predict_experts(X)[rows, winner])
    # the winner's prediction interval: its noise and its line's uncertainty, fitted
    # on the rows classification EM gave it (one-hot responsibilities)
    assert_allclose(std, predictive_std(hard, X, y, X, gate=np.eye(3)[winner]), rtol=1e-9)
    # the routed density is the winner's alone; responsibilities are one-hot on it
    density = norm.logpdf(y, mean, np.sqrt(hard.expert_variance_[winner]))
    assert hard.log_likelihood(X, y) == pytest.approx(density.mean(), rel=1e-12)
    assert hard.log_likelihood_ == pytest.approx(density.mean(), rel=1e-12)
    assert_array_equal(hard.predict_responsibilities(X, y), np.eye(3)[winner])
    # predict_gate stays the dense softmax
    assert np.all(hard.predict_gate(X) > 0) and np.all(hard.predict_gate(X) < 1)


def test_hard_gating_trains_by_classification_em(regression):
    X, y, soft = regression
    hard = clone(soft).set_params(gating="hard", alpha=0.0).fit(X, y)
    # the history is the classification log-likelihood sum_i max_k log g_k p_k
    log_joint = log_softmax(X @ hard.gate_coef_.T + hard.gate_intercept_, axis=1) + norm.logpdf(
        y[:, None], X @ hard.expert_coef_.T + hard.expert_intercept_,
        np.sqrt(hard.expert_variance_))
    assert hard.log_likelihood_history_[-1] == pytest.approx(log_joint.max(axis=1).mean(),
                                                             rel=1e-10)
    assert_allclose(hard.log_likelihood_history_, hard.objective_history_, rtol=0, atol=0)
    # and it is a different fit from the soft one
    assert not np.allclose(hard.gate_coef_, soft.gate_coef_, rtol=1e-3)


# winner-take-all training may leave an expert without samples (reported by a
# ConvergenceWarning); the routing tested here does not depend on it
@pytest.mark.filterwarnings("ignore:.*receive no share of the training data"
                            ":sklearn.exceptions.ConvergenceWarning")
def test_hard_classifier_gives_the_argmax_experts_probabilities(classification):
    X, y, soft = classification
    for solver in ("em", "lbfgs"):
        hard = clone(soft).set_params(gating="hard", solver=solver).fit(X, y)
        winner = np.argmax(hard.predict_gate(X), axis=1)
        expert_proba = hard.predict_experts(X)[np.arange(X.shape[0]), winner]
        assert_allclose(hard.predict_proba(X), expert_proba, rtol=1e-12)
        assert_array_equal(hard.predict(X), hard.classes_[np.argmax(expert_proba, axis=1)])


# ---- top-k gating ----------------------------------------------------------
def test_top_2_is_the_renormalised_top_2_mixture(regression):
    X, y, soft = regression
    top2 = clone(soft).set_params(top_k=2).fit(X, y)
    # EM trains the dense model: top_k only changes prediction
    assert_array_equal(top2.gate_coef_, soft.gate_coef_)
    gate = top_k_gate(top2.predict_gate(X), 2)
    means = top2.predict_experts(X)
    mean = np.sum(gate * means, axis=1)
    second = np.sum(gate * (means**2 + top2.expert_variance_), axis=1)
    predicted_mean, predicted_std = top2.predict(X, return_std=True)
    assert_allclose(predicted_mean, mean, rtol=1e-12, atol=1e-12)
    assert_allclose(predicted_std, predictive_std(top2, X, y, X, gate=gate), rtol=1e-9)
    assert np.all(predicted_std >= np.sqrt(second - mean**2) * (1 - 1e-9))
    with np.errstate(divide="ignore"):
        log_joint = np.log(gate) + norm.logpdf(y[:, None], means, np.sqrt(top2.expert_variance_))
    assert top2.log_likelihood(X, y) == pytest.approx(logsumexp(log_joint, axis=1).mean(),
                                                      rel=1e-12)
    assert np.all(top2.predict_gate(X) > 0)  # still dense


def test_top_2_classifier_probabilities(classification):
    X, _, soft = classification
    top2 = deepcopy(soft).set_params(top_k=2)  # EM's training ignores top_k
    gate = top_k_gate(top2.predict_gate(X), 2)
    proba = np.einsum("nk,nkc->nc", gate, top2.predict_experts(X))
    assert_allclose(top2.predict_proba(X), proba, rtol=1e-10)
    assert_allclose(np.exp(top2.predict_log_proba(X)), proba, rtol=1e-10)


@pytest.mark.parametrize("fixture", ["regression", "classification"])
def test_top_k_equal_to_n_experts_is_soft_gating(fixture, request):
    X, y, soft = request.getfixturevalue(fixture)
    full = deepcopy(soft).set_params(top_k=3)  # EM's training ignores top_k
    if fixture == "regression":
        assert_array_equal(full.predict(X, return_std=True)[1],
                           soft.predict(X, return_std=True)[1])
    else:
        assert_array_equal(full.predict_proba(X), soft.predict_proba(X))
    assert full.log_likelihood(X, y) == soft.log_likelihood(X, y)


def test_without_gate_noise_top_k_only_routes_prediction(regression):
    X, y, soft = regression
    lbfgs = clone(soft).set_params(solver="lbfgs").fit(X, y)
    top2 = clone(lbfgs).set_params(top_k=2).fit(X, y)
    assert_array_equal(top2.gate_coef_, lbfgs.gate_coef_)
    assert_array_equal(top2.expert_coef_, lbfgs.expert_coef_)


# ---- usage and load balancing ------------------------------------------------
def test_expert_usage_is_the_mean_routed_gate(regression):
    X, y, soft = regression
    assert_allclose(soft.expert_usage_, soft.predict_gate(X).mean(axis=0), rtol=1e-12)
    hard = clone(soft).set_params(gating="hard").fit(X, y)
    winner = np.argmax(hard.predict_gate(X), axis=1)
    assert_allclose(hard.expert_usage_, np.bincount(winner, minlength=3) / X.shape[0],
                    rtol=1e-12)


# measured at alpha=1e-4 (min usage, CV^2 of usage, mean log-likelihood), free ->
# balance=0.3:
# EM (0.0187, 0.283, 0.783) -> (0.136, 0.035, 0.767); L-BFGS (0.0000, 1.081,
# 0.754) -> (0.135, 0.035, 0.770); Adam (0.0002, 1.078, 0.750) -> (0.134, 0.034,
# 0.757). The gradient solvers leave three of six experts unused without it.
@pytest.mark.parametrize("solver", ["em", "lbfgs", "adam"])
def test_balance_evens_out_a_collapsed_gate(solver):
    # 3 true regimes, 6 experts: without balancing some experts starve
    X, y, _ = make_moe_regression(n_samples=800, n_features=2, n_experts=3, noise=0.1,
                                  gate_strength=8.0, random_state=1)
    free = MixtureOfExpertsRegressor(6, solver=solver, alpha=1e-4, max_iter=2000,
                                     random_state=0).fit(X, y)
    balanced = clone(free).set_params(balance=0.3).fit(X, y)

    def squared_cv(usage):
        return 6 * np.sum(usage**2) - 1

    assert free.expert_usage_.min() < 0.02
    assert balanced.expert_usage_.min() > 0.12
    assert squared_cv(balanced.expert_usage_) < squared_cv(free.expert_usage_) / 3
    assert balanced.log_likelihood_ > free.log_likelihood_ - 0.03  # a small price, if any


def test_balance_works_for_the_classifier(classification):
    X, y, soft = classification
    free = clone(soft).set_params(n_experts=5, solver="lbfgs").fit(X, y)
    balanced = clone(free).set_params(balance=0.5).fit(X, y)
    # measured: usage min 1.2e-5 (two experts unused) -> 0.189, mean
    # log-likelihood -0.4265 -> -0.4477
    assert balanced.expert_usage_.min() > 0.15, balanced.expert_usage_


# ---- adding and removing experts ---------------------------------------------
@pytest.mark.parametrize("solver", ["em", "lbfgs"])
def test_a_warm_started_larger_model_starts_from_the_smaller_fit_and_improves(solver):
    X, y, _ = make_moe_regression(n_samples=1500, n_features=2, n_experts=3, noise=0.2,
                                  random_state=0)
    est = MixtureOfExpertsRegressor(2, solver=solver, n_init=3, warm_start=True,
                                    random_state=0).fit(X, y)
    small = est.log_likelihood_
    # the split itself keeps the fit: the grown start is within 1e-4 nats
    data = TrainingData((X - est._x_mean) / est._x_scale, y[:, None], np.ones(1500))
    model = est._fitted_model
    grown = resize_experts(model, NUMPY, data, est._params, 3, np.random.default_rng(0))
    resp = np.empty((1500, 3))
    start = model.e_step(NUMPY, data.X, data.Y, grown, resp).mean()
    assert abs(start - small) < 1e-4, (start, small)

    est.set_params(n_experts=3).fit(X, y)
    # measured: K=2 -0.7719 -> K=3 -0.0923 (EM and L-BFGS), as a cold 3-expert fit
    assert est.objective_history_[0] >= small - 1e-4
    assert est.log_likelihood_ > small + 0.5
    assert est.gate_coef_.shape == (3, 2) and est.expert_usage_.shape == (3,)


def test_removing_experts_drops_the_least_used(regression):
    X, y, soft = regression
    est = clone(soft).set_params(n_experts=4, warm_start=True).fit(X, y)
    kept = np.delete(np.arange(4), np.argmin(est.expert_usage_))
    # the removal itself: the other experts unchanged, the gate conditioned on them
    data = TrainingData((X - est._x_mean) / est._x_scale, y[:, None], np.ones(600))
    model = est._fitted_model
    pruned = resize_experts(model, NUMPY, data, est._params, 3, None)
    for part in ("gate", "experts"):
        for key, value in est._params[part].items():
            assert_array_equal(pruned[part][key], value[kept])
    gate = est.predict_gate(X)[:, kept]
    log_g = model.log_prior(NUMPY, data.X, pruned)
    assert_allclose(np.exp(log_g), gate / gate.sum(axis=1, keepdims=True), rtol=1e-12)
    # and the warm-started fit goes on from there
    est.set_params(n_experts=3).fit(X, y)
    assert est.gate_coef_.shape == (3, 2) and est.expert_coef_.shape == (3, 2)
    assert est.converged_ and est.objective_history_[0] > -np.inf
