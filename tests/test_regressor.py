"""MixtureOfExpertsRegressor: correctness of the EM fit and of every method."""

import warnings

import numpy as np
from _predictive_std import predictive_std
import pytest
from numpy.testing import assert_allclose
from scipy.special import log_softmax, logsumexp
from scipy.stats import norm
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.utils import shuffle

from mixexp import MixtureOfExpertsRegressor
from mixexp.datasets import load_motorcycle, make_moe_regression


def direct_log_joint(X, y, gate_coef, gate_intercept, expert_coef, expert_intercept,
                     expert_variance):
    """log g_k(x_i) + log N(y_i; x_i w_k + c_k, sigma2_k) from public parameters: (n, K)."""
    log_gate = log_softmax(X @ gate_coef.T + gate_intercept, axis=1)
    means = X @ expert_coef.T + expert_intercept
    return log_gate + norm.logpdf(y[:, None], means, np.sqrt(expert_variance))


def fitted_log_joint(est, X, y):
    return direct_log_joint(X, y, est.gate_coef_, est.gate_intercept_, est.expert_coef_,
                            est.expert_intercept_, est.expert_variance_)


@pytest.mark.parametrize(
    "n_features, n_experts, seed",
    [(1, 2, 0), (2, 3, 1), (5, 3, 2), (3, 5, 3)],
)
def test_recovers_data_from_known_mixture(n_features, n_experts, seed):
    X, y, truth = make_moe_regression(n_samples=3000, n_features=n_features,
                                      n_experts=n_experts, noise=0.2, random_state=seed)
    X_train, y_train, X_test, y_test = X[:2000], y[:2000], X[2000:], y[2000:]
    est = MixtureOfExpertsRegressor(n_experts=n_experts, n_init=10, random_state=0)
    est.fit(X_train, y_train)

    true_log_joint = direct_log_joint(
        X_train, y_train, truth.gate_coef, truth.gate_intercept, truth.expert_coef,
        truth.expert_intercept, truth.expert_variance,
    )
    true_ll = logsumexp(true_log_joint, axis=1).mean()
    assert est.log_likelihood_ >= true_ll - 0.01, (est.log_likelihood_, true_ll)

    true_gate = np.exp(log_softmax(X_test @ truth.gate_coef.T + truth.gate_intercept, axis=1))
    true_mean = np.sum(true_gate * (X_test @ truth.expert_coef.T + truth.expert_intercept), 1)
    true_r2 = r2_score(y_test, true_mean)
    assert est.score(X_test, y_test) >= 0.97 * true_r2, (est.score(X_test, y_test), true_r2)


# Best total log-likelihoods of R's flexmix 2.3-18 on the same model,
# flexmix(accel ~ times, k = K, concomitant = FLXPmultinom(~ times)), over 50
# random starts with iter.max = 1000, tolerance = 1e-10, minprior = 0
# (benchmarks/reference/flexmix_motorcycle.R). Maximising the exact
# likelihood from flexmix's best fit reaches -614.536742 (K=2) and
# -580.517101 (K=3): flexmix stops short of both. On times + 2000 flexmix
# stalls at -636.728773 (K=2) while reporting convergence.
FLEXMIX_MOTORCYCLE = {2: -614.565778, 3: -580.525475}
POLISHED_MOTORCYCLE = {2: -614.536742, 3: -580.517101}


@pytest.mark.parametrize("n_experts", [2, 3])
@pytest.mark.parametrize("shift", [0.0, 2000.0])
def test_motorcycle_reaches_at_least_flexmix_optimum(n_experts, shift):
    data = load_motorcycle()
    est = MixtureOfExpertsRegressor(n_experts=n_experts, alpha=0.0, n_init=10, random_state=0)
    est.fit(data.data + shift, data.target)
    total = est.log_likelihood_ * data.data.shape[0]
    assert total >= FLEXMIX_MOTORCYCLE[n_experts], (total, FLEXMIX_MOTORCYCLE[n_experts])
    # and within EM's tolerance of the polished maximum of the same basin
    assert total >= POLISHED_MOTORCYCLE[n_experts] - 1e-3


def test_motorcycle_two_experts_needs_diverse_starts_and_more_starts_never_hurt():
    data = load_motorcycle()
    totals = []
    for n_init in range(1, 8):
        est = MixtureOfExpertsRegressor(n_experts=2, alpha=0.0, n_init=n_init, random_state=0)
        totals.append(est.fit(data.data, data.target).log_likelihood_ * 133)
    # the k-means start alone ends in the poor optimum, the mixed starts find the good one
    assert totals[0] == pytest.approx(-643.39, abs=0.05)
    assert totals[-1] == pytest.approx(-614.54, abs=0.05)
    assert np.all(np.diff(totals) >= 0), totals


def test_fit_on_shifted_inputs_equals_fit_on_original():
    # the gate is standardised internally, so calendar-year-like inputs
    # (where flexmix's gate stalls) give the same fit up to the intercepts
    data = load_motorcycle()
    a = MixtureOfExpertsRegressor(3, alpha=0.0, n_init=5, random_state=0)
    b = MixtureOfExpertsRegressor(3, alpha=0.0, n_init=5, random_state=0)
    a.fit(data.data, data.target)
    b.fit(data.data + 2000.0, data.target)
    assert b.log_likelihood_ == pytest.approx(a.log_likelihood_, abs=1e-6)
    assert_allclose(b.predict(data.data + 2000.0), a.predict(data.data), atol=1e-4)
    assert_allclose(b.gate_coef_, a.gate_coef_, rtol=1e-5)


@pytest.fixture(scope="module")
def fitted():
    X, y, _ = make_moe_regression(n_samples=800, n_features=3, n_experts=3, noise=0.3,
                                  random_state=7)
    est = MixtureOfExpertsRegressor(n_experts=3, n_init=3, random_state=0).fit(X, y)
    return est, X, y


def test_gate_rows_sum_to_one_and_match_parameters(fitted):
    est, X, y = fitted
    gate = est.predict_gate(X)
    assert gate.shape == (X.shape[0], 3)
    assert_allclose(gate.sum(axis=1), 1.0, rtol=1e-12)
    direct = np.exp(log_softmax(X @ est.gate_coef_.T + est.gate_intercept_, axis=1))
    assert_allclose(gate, direct, rtol=1e-9, atol=1e-12)


def test_responsibilities_and_log_likelihood_match_direct_computation(fitted):
    est, X, y = fitted
    log_joint = fitted_log_joint(est, X, y)
    direct_resp = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    resp = est.predict_responsibilities(X, y)
    assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-12)
    assert_allclose(resp, direct_resp, rtol=1e-7, atol=1e-10)
    assert est.log_likelihood(X, y) == pytest.approx(logsumexp(log_joint, axis=1).mean(),
                                                     rel=1e-10)
    # the final E-step: the reported training log-likelihood is the model's
    assert est.log_likelihood_ == pytest.approx(est.log_likelihood(X, y), rel=1e-12)
    assert est.log_likelihood_history_[-1] == est.log_likelihood_


def test_predict_mean_std_and_experts_match_mixture_formulas(fitted):
    est, X, y = fitted
    gate = est.predict_gate(X)
    experts = est.predict_experts(X)
    assert experts.shape == (X.shape[0], 3)
    assert_allclose(experts, X @ est.expert_coef_.T + est.expert_intercept_, rtol=1e-9)
    mean, std = est.predict(X, return_std=True)
    assert_allclose(mean, np.sum(gate * experts, axis=1), rtol=1e-9)
    # each expert's noise widened by its classical prediction interval, sqrt(1 + x' A^-1 x)
    assert_allclose(std, predictive_std(est, X, y, X), rtol=1e-9)
    plug_in = np.sqrt(np.sum(gate * (est.expert_variance_ + experts**2), axis=1) - mean**2)
    assert np.all(std >= plug_in * (1 - 1e-12)) and np.median(std / plug_in) < 1.01
    assert_allclose(est.predict(X), mean)
    # a Gaussian mixture's 2-std band covers about 95% of the training data
    coverage = np.mean(np.abs(y - mean) <= 2 * std)
    assert 0.9 < coverage < 0.99


def test_bic_and_aic_count_parameters(fitted):
    est, X, y = fitted
    n, d, K = X.shape[0], X.shape[1], 3
    n_params = (K - 1) * (d + 1) + K * (d + 1) + K
    total = est.log_likelihood(X, y) * n
    assert est.bic(X, y) == pytest.approx(-2 * total + n_params * np.log(n))
    assert est.aic(X, y) == pytest.approx(-2 * total + 2 * n_params)


def test_bic_prefers_true_number_of_experts():
    X, y, _ = make_moe_regression(n_samples=1500, n_features=2, n_experts=3, noise=0.2,
                                  random_state=11)
    bics = [MixtureOfExpertsRegressor(k, n_init=5, random_state=0).fit(X, y).bic(X, y)
            for k in (1, 2, 3, 4)]
    assert int(np.argmin(bics)) + 1 == 3, bics


def test_one_expert_equals_ridge():
    # alpha follows Ridge's convention: one expert gives Ridge's coefficients
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 4)) * [1.0, 10.0, 0.1, 3.0]
    y = X @ [1.0, -0.2, 5.0, 0.3] + 2.0 + rng.normal(size=200)
    for alpha in (0.0, 1.0, 100.0):
        est = MixtureOfExpertsRegressor(1, alpha=alpha).fit(X, y)
        ridge = Ridge(alpha=alpha).fit(X, y)
        assert_allclose(est.expert_coef_[0], ridge.coef_, rtol=1e-8)
        assert_allclose(est.expert_intercept_[0], ridge.intercept_, rtol=1e-8)
        assert_allclose(est.predict_gate(X), 1.0)


def test_alpha_shrinks_expert_weights():
    X, y, _ = make_moe_regression(n_samples=500, n_features=3, random_state=2)
    norms = [np.linalg.norm(MixtureOfExpertsRegressor(3, alpha=a, random_state=0)
                            .fit(X, y).expert_coef_) for a in (1e-4, 1e2, 1e3)]
    assert norms[0] > norms[1] > norms[2]


def test_multi_output_targets():
    X, y1, _ = make_moe_regression(n_samples=1500, n_features=2, n_experts=2, noise=0.1,
                                   random_state=5)
    rng = np.random.RandomState(0)
    Y = np.column_stack([y1, 3 * y1 + 0.1 * rng.normal(size=y1.size)])
    est = MixtureOfExpertsRegressor(2, n_init=5, random_state=0).fit(X, Y)
    assert est.expert_coef_.shape == (2, 2, 2)
    assert est.expert_intercept_.shape == est.expert_variance_.shape == (2, 2)
    mean, std = est.predict(X, return_std=True)
    assert mean.shape == std.shape == (1500, 2)
    assert est.predict_experts(X).shape == (1500, 2, 2)
    assert est.predict_responsibilities(X, Y).shape == (1500, 2)
    # the second target adds no information on the experts: as good as a one-target fit
    single = MixtureOfExpertsRegressor(2, n_init=5, random_state=0).fit(X, y1)
    assert est.score(X, Y) >= single.score(X, y1) - 0.005
    log_joint = np.log(est.predict_gate(X)) + sum(
        norm.logpdf(Y[:, [t]], X @ est.expert_coef_[:, t].T + est.expert_intercept_[:, t],
                    np.sqrt(est.expert_variance_[:, t]))
        for t in range(2)
    )
    assert est.log_likelihood(X, Y) == pytest.approx(logsumexp(log_joint, axis=1).mean())
    with pytest.raises(ValueError, match="targets"):
        est.log_likelihood(X, y1[:, None].repeat(3, axis=1))


def test_sample_weight_zero_equals_removal_and_integers_equal_repetition():
    X, y, _ = make_moe_regression(n_samples=300, n_features=2, random_state=4)
    weights = np.random.RandomState(0).randint(0, 3, size=300).astype(float)
    weighted = MixtureOfExpertsRegressor(3, n_init=2, random_state=0)
    weighted.fit(X, y, sample_weight=weights)
    X_rep, y_rep = shuffle(X.repeat(weights.astype(int), axis=0),
                           y.repeat(weights.astype(int)), random_state=1)
    repeated = MixtureOfExpertsRegressor(3, n_init=2, random_state=0).fit(X_rep, y_rep)
    assert_allclose(weighted.predict(X), repeated.predict(X), rtol=1e-6, atol=1e-8)
    assert weighted.log_likelihood_ == pytest.approx(repeated.log_likelihood_, rel=1e-9)


def test_row_order_does_not_change_the_fit():
    X, y, _ = make_moe_regression(n_samples=400, random_state=6)
    a = MixtureOfExpertsRegressor(3, n_init=4, random_state=0).fit(X, y)
    Xs, ys = shuffle(X, y, random_state=0)
    b = MixtureOfExpertsRegressor(3, n_init=4, random_state=0).fit(Xs, ys)
    assert_allclose(a.predict(X), b.predict(X), rtol=1e-7, atol=1e-9)


def test_same_random_state_gives_identical_fit_and_inputs_are_untouched():
    X, y, _ = make_moe_regression(n_samples=300, random_state=8)
    X_copy, y_copy = X.copy(), y.copy()
    a = MixtureOfExpertsRegressor(3, n_init=3, init_params="random", random_state=42).fit(X, y)
    b = MixtureOfExpertsRegressor(3, n_init=3, init_params="random", random_state=42).fit(X, y)
    np.testing.assert_array_equal(a.gate_coef_, b.gate_coef_)
    np.testing.assert_array_equal(a.expert_coef_, b.expert_coef_)
    np.testing.assert_array_equal(X, X_copy)
    np.testing.assert_array_equal(y, y_copy)


def test_warm_start_continues_from_previous_solution():
    X, y, _ = make_moe_regression(n_samples=1000, n_features=2, n_experts=3, random_state=9)
    est = MixtureOfExpertsRegressor(3, max_iter=3, warm_start=True, random_state=0)
    with pytest.warns(ConvergenceWarning):
        est.fit(X, y)
    first = est.log_likelihood_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    # the second fit starts where the first stopped and keeps climbing
    assert est.objective_history_[0] >= first - 1e-9
    assert est.log_likelihood_ > first


def test_convergence_warning_when_max_iter_too_small():
    X, y, _ = make_moe_regression(n_samples=500, random_state=3)
    est = MixtureOfExpertsRegressor(3, max_iter=2, random_state=0)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        est.fit(X, y)
    assert not est.converged_ and est.n_iter_ == 2
    assert len(est.log_likelihood_history_) == 2


def test_verbose_reports_starts_and_iterations(capsys):
    X, y, _ = make_moe_regression(n_samples=200, random_state=3)
    MixtureOfExpertsRegressor(2, n_init=2, verbose=2, random_state=0).fit(X, y)
    out = capsys.readouterr().out
    assert "Start 1/2" in out and "Start 2/2" in out
    assert "EM iteration 1: log-likelihood" in out


def test_more_experts_than_distinct_rows_is_fitted_finitely():
    X = np.array([[0.0], [0.0], [1.0], [1.0], [2.0]])
    y = np.array([0.0, 0.0, 1.0, 1.0, 5.0])
    est = MixtureOfExpertsRegressor(6, n_init=3, random_state=0).fit(X, y)
    for name in ("gate_coef_", "gate_intercept_", "expert_coef_", "expert_variance_"):
        assert np.all(np.isfinite(getattr(est, name))), name
    assert np.all(est.expert_variance_ > 0)
    assert np.all(np.isfinite(est.predict(X)))
