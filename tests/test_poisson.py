"""Poisson experts (``expert="poisson"``): counts, log link, the gate on other columns."""

import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from mixexp import MixtureOfExpertsRegressor
from mixexp._experts import PoissonExperts

DATA = Path(__file__).parent / "data"
NOT_CONVERGED = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _counts(n=3000, seed=0, n_targets=1):
    """Gate on z (column 2); log-rates linear in x (columns 0, 1); known truth."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    z = rng.normal(size=n)
    coef = np.array([[0.5, 0.0], [0.0, -0.8]])
    intercept = np.array([1.0, -0.5])
    second = rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-3.0 * z))
    eta = np.sum(x * coef[second.astype(int)], axis=1) + intercept[second.astype(int)]
    y = rng.poisson(np.exp(eta[:, None] + 0.2 * np.arange(n_targets)))
    return np.column_stack([x, z]), (y[:, 0] if n_targets == 1 else y), (coef, intercept)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_gate_on_z_and_poisson_experts_on_x_recover_the_truth(backend):
    X, y, (coef, intercept) = _counts()
    est = MixtureOfExpertsRegressor(2, expert="poisson", gate_features=[2],
                                    expert_features=[0, 1], n_init=3, backend=backend,
                                    random_state=0).fit(X, y)
    order = np.argsort(est.expert_intercept_)[::-1]  # truth: intercepts 1 and -0.5
    assert_allclose(est.expert_coef_[order], coef, atol=0.08)
    assert_allclose(est.expert_intercept_[order], intercept, atol=0.1)
    slope = est.gate_coef_[order[1], 0] - est.gate_coef_[order[0], 0]
    assert_allclose(slope, 3.0, rtol=0.25)
    assert not hasattr(est, "expert_variance_")  # a Poisson count's variance is its rate


def test_numba_and_numpy_fit_the_same_model():
    X, y, _ = _counts(n=1500)
    fits = [MixtureOfExpertsRegressor(2, expert="poisson", backend=backend, random_state=0)
            .fit(X, y) for backend in ("numpy", "numba")]
    assert fits[0].n_iter_ == fits[1].n_iter_
    for name in ("gate_coef_", "expert_coef_", "expert_intercept_", "objective_history_"):
        assert_allclose(getattr(fits[1], name), getattr(fits[0], name), rtol=1e-7, atol=1e-9)


def test_predictive_mean_and_variance_of_the_mixture():
    X, y, _ = _counts(n=800)
    est = MixtureOfExpertsRegressor(2, expert="poisson", random_state=0).fit(X, y)
    g = est.predict_gate(X)
    rates = np.exp(X @ est.expert_coef_.T + est.expert_intercept_)
    assert_allclose(est.predict_experts(X), rates, rtol=1e-10)
    mean, std = est.predict(X, return_std=True)
    assert_allclose(mean, np.sum(g * rates, axis=1), rtol=1e-10)
    # Var y = E[Var y | k] + Var E[y | k] = sum_k g_k mu_k + sum_k g_k (mu_k - mean)^2
    variance = np.sum(g * rates, axis=1) + np.sum(g * (rates - mean[:, None]) ** 2, axis=1)
    assert_allclose(std**2, variance, rtol=1e-9)


def test_log_likelihood_is_the_poisson_mixture_density():
    X, y, _ = _counts(n=500)
    est = MixtureOfExpertsRegressor(2, expert="poisson", random_state=0).fit(X, y)
    from scipy.stats import poisson

    density = np.sum(est.predict_gate(X) * poisson.pmf(y[:, None], est.predict_experts(X)),
                     axis=1)
    assert_allclose(est.log_likelihood(X, y), np.mean(np.log(density)), rtol=1e-10)
    assert_allclose(est.log_likelihood_, est.log_likelihood(X, y), rtol=1e-10)


@NOT_CONVERGED
@pytest.mark.parametrize("solver", ["lbfgs", "adam"])
def test_gradient_solvers_reach_the_em_objective(solver):
    X, y, _ = _counts(n=1000)
    em = MixtureOfExpertsRegressor(2, expert="poisson", random_state=0).fit(X, y)
    other = MixtureOfExpertsRegressor(2, expert="poisson", solver=solver, max_iter=300,
                                      random_state=0).fit(X, y)
    assert other.objective_history_[-1] > em.objective_history_[-1] - 5e-3


def test_sample_weight_acts_as_repeated_rows():
    X, y, _ = _counts(n=400)
    weight = np.random.default_rng(1).integers(0, 3, size=y.size)
    weighted = MixtureOfExpertsRegressor(2, expert="poisson", random_state=0, tol=1e-10,
                                         max_iter=2000).fit(X, y, sample_weight=weight)
    repeated = MixtureOfExpertsRegressor(2, expert="poisson", random_state=0, tol=1e-10,
                                         max_iter=2000).fit(np.repeat(X, weight, axis=0),
                                                            np.repeat(y, weight))
    assert_allclose(weighted.log_likelihood_, repeated.log_likelihood_, rtol=1e-6)
    assert_allclose(weighted.expert_coef_, repeated.expert_coef_, rtol=1e-3, atol=1e-4)


@NOT_CONVERGED
def test_every_option_runs_with_poisson_experts():
    X, y, _ = _counts(n=600)
    for options in [dict(gating="hard"), dict(top_k=1, n_experts=3), dict(balance=0.1),
                    dict(n_init=3), dict(solver="adam", max_iter=5)]:
        est = MixtureOfExpertsRegressor(**{"n_experts": 2, "expert": "poisson",
                                           "random_state": 0, **options}).fit(X, y)
        K, d = est.gate_coef_.shape
        assert est.expert_coef_.shape == (K, d)
        mean, std = est.predict(X, return_std=True)
        assert np.all(mean > 0) and np.all(std > 0)
        # parameters: the gate's (K - 1)(d + 1), each expert's log-rate d + 1
        assert_allclose(est.bic(X, y), -2 * est.log_likelihood(X, y) * len(y)
                        + ((K - 1) * (d + 1) + K * (d + 1)) * np.log(len(y)))


def test_warm_start_grows_from_the_previous_fit_and_partial_fit_streams():
    X, y, _ = _counts(n=800)
    est = MixtureOfExpertsRegressor(2, expert="poisson", warm_start=True,
                                    random_state=0).fit(X, y)
    previous = est.objective_history_[-1]
    est.set_params(n_experts=3).fit(X, y)
    assert est.expert_coef_.shape[0] == 3
    assert est.objective_history_[0] >= previous - 1e-3
    stream = MixtureOfExpertsRegressor(2, expert="poisson", solver="adam", random_state=0)
    for rows in np.array_split(np.arange(800), 4):
        stream.partial_fit(X[rows], y[rows])
    assert np.all(np.isfinite(stream.predict(X)))


def test_fit_is_idempotent_float32_stays_float32_and_multi_output():
    X, y, _ = _counts(n=500)
    est = MixtureOfExpertsRegressor(2, expert="poisson", random_state=0)
    first = est.fit(X, y).predict(X)
    assert_array_equal(est.fit(X, y).predict(X), first)
    single = MixtureOfExpertsRegressor(2, expert="poisson", random_state=0).fit(
        X.astype(np.float32), y)
    assert single.predict(X.astype(np.float32)).dtype == np.float32
    assert_allclose(single.predict(X.astype(np.float32)), first, rtol=2e-3)
    X2, Y2, _ = _counts(n=500, n_targets=2)
    multi = MixtureOfExpertsRegressor(2, expert="poisson", random_state=0).fit(X2, Y2)
    assert multi.expert_coef_.shape == (2, 2, 3) and multi.predict(X2).shape == (500, 2)
    # lists and DataFrames, and the fitted model survives pickling
    frame = MixtureOfExpertsRegressor(2, expert="poisson", random_state=0).fit(
        pd.DataFrame(X, columns=list("abc")), y.tolist())
    assert frame.n_features_in_ == 3 and list(frame.feature_names_in_) == list("abc")
    assert_array_equal(pickle.loads(pickle.dumps(est)).predict(X), first)


@pytest.mark.parametrize("y, message", [
    (np.array([0, 1, -2] * 10), r"non-negative counts .* negative values \(as low as -2\)"),
    (np.array([0, 1, 2.5] * 10), r"integer counts .* non-integer values such as \[2.5"),
])
def test_targets_that_are_not_counts_are_refused(y, message):
    X = np.random.default_rng(0).normal(size=(30, 2))
    y_copy = y.copy()
    with pytest.raises(ValueError, match=message):
        MixtureOfExpertsRegressor(2, expert="poisson").fit(X, y)
    assert_array_equal(y, y_copy)
    fitted = MixtureOfExpertsRegressor(2, expert="poisson", random_state=0).fit(
        X, np.abs(np.round(y)))
    with pytest.raises(ValueError, match=message):
        fitted.log_likelihood(X, y)


def test_backends_without_poisson_kernels_are_refused_clearly():
    family = PoissonExperts(weight_penalty=np.ones(2), target_mean=np.ones(1))
    kernels = SimpleNamespace(name="new")  # a backend added without Poisson kernels
    experts = {"coef": np.zeros((2, 1, 2)), "intercept": np.zeros((2, 1))}
    with pytest.raises(ValueError, match="expert='poisson' is not available with "
                                         "backend='new': it has no poisson_log_density"):
        family.log_density(kernels, np.zeros((3, 2)), np.zeros((3, 1)), experts)


def test_inference_covers_poisson_experts():
    X, y, _ = _counts(n=300)
    est = MixtureOfExpertsRegressor(2, expert="poisson", random_state=0).fit(X, y)
    table = est.summary(X, y)
    assert ("expert", 1, "intercept") in table.index
    assert not any("sigma" in t for _, _, t in table.index)  # a count's variance is its rate
    assert np.all(np.isfinite(table["std_err"]))
    assert np.isfinite(est.icl(X, y))


# R flexmix 2.3 on its own patent data (Wang, Cockburn & Puterman 1998):
# stepFlexmix(Patents ~ lgRD, k = 3, model = FLXMRglm(family = "poisson"),
# concomitant = FLXPmultinom(~ RDS), nrep = 200, iter.max = 1000,
# tolerance = 1e-8, minprior = 0) (benchmarks/reference/flexmix_patent_poisson.R;
# 40 starts gave -197.6750235963). Its best total log-likelihood, its experts
# (intercept, lgRD) and gate (intercept, RDS: log-odds against its first
# component).
FLEXMIX_PATENT = -197.6750224783
FLEXMIX_PATENT_EXPERTS = np.array([[0.5064708828, 0.8800660484], [1.961978922, 0.6719250042],
                                   [-2.646349903, 1.588532949]])
FLEXMIX_PATENT_GATE = np.array([[0.0, 0.0], [-3.107595392, 41.00443779],
                                [-2.898522662, 40.26259262]])


def test_patent_data_reaches_at_least_flexmix_optimum():
    data = pd.read_csv(DATA / "patent.csv")  # exported by the R script above
    est = MixtureOfExpertsRegressor(3, expert="poisson", gate_features=["RDS"],
                                    expert_features=["lgRD"], alpha=0.0, n_init=10,
                                    tol=1e-10, max_iter=5000, random_state=0)
    est.fit(data[["lgRD", "RDS"]], data["Patents"])
    total = est.log_likelihood_ * len(data)
    assert total >= FLEXMIX_PATENT, (total, FLEXMIX_PATENT)
    # the same optimum: flexmix's components in mixexp's order (by intercept)
    order = [int(np.argmin(np.abs(est.expert_intercept_ - c))) for c in
             FLEXMIX_PATENT_EXPERTS[:, 0]]
    experts = np.column_stack([est.expert_intercept_, est.expert_coef_[:, 0]])[order]
    assert_allclose(experts, FLEXMIX_PATENT_EXPERTS, atol=2e-3)
    gate = np.column_stack([est.gate_intercept_, est.gate_coef_[:, 0]])[order]
    assert_allclose(gate - gate[0], FLEXMIX_PATENT_GATE, rtol=2e-3, atol=2e-3)


def test_another_family_is_not_warm_started_nor_continued():
    X, y, _ = _counts(n=400)
    est = MixtureOfExpertsRegressor(2, warm_start=True, random_state=0).fit(X, y)
    assert hasattr(est, "expert_variance_")
    est.set_params(expert="poisson").fit(X, y)  # a fresh fit: nothing to start from
    assert not hasattr(est, "expert_variance_")  # nor is the Gaussian's variance left
    assert_allclose(est.expert_coef_, MixtureOfExpertsRegressor(
        2, expert="poisson", random_state=0).fit(X, y).expert_coef_)
    stream = MixtureOfExpertsRegressor(2, solver="adam", random_state=0).partial_fit(X, y)
    stream.set_params(expert="poisson")
    with pytest.raises(ValueError, match="expert changed since the model was fitted"):
        stream.partial_fit(X, y)


def test_one_pass_em_reaches_the_multi_pass_optimum(monkeypatch):
    # one-pass EM takes the Newton step from the E-step's pass and checks it with the
    # next; the multi-pass form halves it against the expert's own objective
    X, y, _ = _counts(n=1500)
    kwargs = dict(n_experts=2, expert="poisson", alpha=0.0, tol=1e-10, max_iter=3000,
                  random_state=0)
    one_pass = MixtureOfExpertsRegressor(**kwargs).fit(X, y)
    from mixexp._model import MixtureModel

    monkeypatch.setattr(MixtureModel, "one_pass", property(lambda self: False))
    multi_pass = MixtureOfExpertsRegressor(**kwargs).fit(X, y)
    assert one_pass.log_likelihood_ == pytest.approx(multi_pass.log_likelihood_, abs=1e-8)
    assert_allclose(one_pass.expert_coef_, multi_pass.expert_coef_, atol=1e-4)
