"""Gradient solvers (L-BFGS, Adam), partial_fit, and the objective they share with EM."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.exceptions import ConvergenceWarning

from mixexp import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from mixexp._kernels import get_kernels
from mixexp._rows import TrainingData
from mixexp._solvers import SolverOptions
from mixexp._solvers._gradient import GradientObjective
from mixexp._testing import central_differences
from mixexp.datasets import make_moe_classification, make_moe_regression


@pytest.fixture(scope="module")
def regression_data():
    X, y, _ = make_moe_regression(n_samples=2000, n_features=2, n_experts=3, noise=0.2,
                                  random_state=0)
    return X, y


@pytest.fixture(scope="module")
def em_fit(regression_data):
    X, y = regression_data
    return MixtureOfExpertsRegressor(3, n_init=3, random_state=0).fit(X, y)


# measured (n=2000, d=2, K=3, noise 0.2, 3 starts): EM -0.082768, L-BFGS
# -0.082782 (gap 1.4e-5), Adam -0.085280 (gap 0.0025) nats per sample
@pytest.mark.parametrize("solver, gap", [("lbfgs", 0.01), ("adam", 0.03)])
def test_gradient_solvers_reach_the_em_log_likelihood(regression_data, em_fit, solver, gap):
    X, y = regression_data
    est = MixtureOfExpertsRegressor(3, solver=solver, n_init=3, random_state=0).fit(X, y)
    assert est.converged_
    assert est.log_likelihood_ >= em_fit.log_likelihood_ - gap, (
        est.log_likelihood_, em_fit.log_likelihood_)
    # the same objective: the penalised value tracks the log-likelihood alike
    assert est.objective_history_[-1] >= em_fit.objective_history_[-1] - gap


def test_lbfgs_matches_em_on_classification():
    X, y, _ = make_moe_classification(n_samples=1000, n_features=2, n_experts=3, n_classes=3,
                                      random_state=0)
    em = MixtureOfExpertsClassifier(3, n_init=2, random_state=0).fit(X, y)
    lbfgs = MixtureOfExpertsClassifier(3, solver="lbfgs", n_init=2, random_state=0).fit(X, y)
    # measured: objective EM -0.54729, L-BFGS -0.54980; accuracy 0.779, 0.783
    assert lbfgs.objective_history_[-1] >= em.objective_history_[-1] - 0.01
    assert abs(lbfgs.score(X, y) - em.score(X, y)) <= 0.02


def _objective_at(estimator, X, y, sample_weight, options):
    """The gradient solvers' objective on (X, y), and the flat parameters of ``estimator``."""
    Y = estimator._encode_targets(y, fitting=False)
    data = TrainingData((X - estimator._x_mean) / estimator._x_scale, Y, sample_weight)
    model = estimator._fitted_model
    coordinates = model.coordinates(estimator._params,
                                    model.coordinate_reference(Y, sample_weight))
    objective = GradientObjective(model, get_kernels("numpy"), data, options, coordinates)
    return objective, coordinates.pack(estimator._params)


@pytest.mark.parametrize("options", [
    SolverOptions(), SolverOptions(top_k=2), SolverOptions(gating="hard"),
    SolverOptions(balance=0.7),
], ids=["soft", "top2", "hard", "balance"])
@pytest.mark.parametrize("kind", ["regression", "classification"])
def test_analytic_gradient_matches_finite_differences(kind, options):
    rng = np.random.default_rng(0)
    if kind == "regression":
        X, y, _ = make_moe_regression(n_samples=200, n_features=3, n_experts=3, random_state=0)
        y = np.c_[y, 2 * y + rng.standard_normal(200)]  # two targets
        estimator = MixtureOfExpertsRegressor(3, alpha=0.3, max_iter=3, random_state=0)
    else:
        X, y, _ = make_moe_classification(n_samples=200, n_features=3, n_experts=3,
                                          n_classes=3, random_state=0)
        estimator = MixtureOfExpertsClassifier(3, alpha=0.3, max_iter=3, random_state=0)
    sample_weight = rng.uniform(0.5, 2.0, X.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(X, y, sample_weight=sample_weight)
    objective, flat = _objective_at(estimator, X, y, sample_weight, options)
    flat = flat + 0.05 * rng.standard_normal(flat.size)  # away from a stationary point
    for rows in (None, np.arange(40, 120)):  # full batch and a mini-batch
        analytic = objective.evaluate(flat, rows=rows).gradient
        numeric = central_differences(
            lambda x, rows=rows: objective.evaluate(x, rows=rows, gradient=False).objective,
            flat)
        # measured: errors at most 9e-10 (gradient entries up to 0.17)
        assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7 * np.abs(numeric).max())


def test_every_solver_reports_the_same_objective_for_the_same_parameters():
    # one objective (penalties and balance included) for all solvers
    X, y, _ = make_moe_regression(n_samples=500, n_experts=3, random_state=2)
    sample_weight = np.random.default_rng(0).uniform(0.5, 2.0, 500)
    est = MixtureOfExpertsRegressor(3, alpha=2.0, balance=0.2, random_state=0)
    est.fit(X, y, sample_weight=sample_weight)
    objective, flat = _objective_at(est, X, y, sample_weight, SolverOptions(balance=0.2))
    assert objective.evaluate(flat, gradient=False).objective == pytest.approx(
        est.objective_history_[-1], rel=1e-10)


def test_adam_history_is_the_best_so_far_and_stops_without_improvement(regression_data):
    X, y = regression_data
    # (alpha fixed: "auto" continues the fit at its chosen penalties, a second run)
    est = MixtureOfExpertsRegressor(3, solver="adam", n_iter_no_change=3, tol=1e-3,
                                    alpha=1e-4, random_state=0).fit(X, y)
    assert est.converged_ and est.n_iter_ < 300
    # the returned parameters are the best epoch's, whose objective ends the history
    assert est.log_likelihood_history_[-1] == pytest.approx(est.log_likelihood_, rel=1e-12)
    assert np.all(np.diff(est.objective_history_) >= 0)
    # the stop rule: the last n_iter_no_change + 1 epochs gained at most tol
    assert est.objective_history_[-1] - est.objective_history_[-5] <= 1e-3


def test_adam_is_reproducible_and_batches_matter(regression_data):
    X, y = regression_data
    params = {"solver": "adam", "max_iter": 5, "random_state": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = MixtureOfExpertsRegressor(3, **params).fit(X, y)
        b = MixtureOfExpertsRegressor(3, **params).fit(X, y)
        c = MixtureOfExpertsRegressor(3, batch_size=50, **params).fit(X, y)
        d = MixtureOfExpertsRegressor(3, shuffle=False, **params).fit(X, y)
    assert_allclose(a.gate_coef_, b.gate_coef_, rtol=0, atol=0)
    assert not np.allclose(a.gate_coef_, c.gate_coef_)
    assert not np.allclose(a.gate_coef_, d.gate_coef_)


def test_noisy_top_k_gating_trains_the_top_k_model(regression_data):
    X, y = regression_data
    # (alpha fixed: the first epoch's history is the first run's)
    noisy = MixtureOfExpertsRegressor(3, solver="adam", top_k=2, gate_noise=0.3, alpha=1e-4,
                                      random_state=0).fit(X, y)
    # without noise, training fits the dense model and top_k only routes prediction
    dense = MixtureOfExpertsRegressor(3, solver="adam", top_k=2, alpha=1e-4,
                                      random_state=0).fit(X, y)
    # measured, under top-2 routing: trained with noise -0.3025, dense fit
    # -2.681 (experts outside the top 2 matter where gates overlap); the
    # noisy fit after its first epoch -1.547
    assert noisy.log_likelihood_ > dense.log_likelihood_ + 1.0
    assert noisy.log_likelihood_ >= noisy.log_likelihood_history_[0] + 1.0
    # prediction and the reported log-likelihood are noise-free
    assert_allclose(noisy.predict(X[:50]), noisy.predict(X[:50]), rtol=0, atol=0)
    assert noisy.log_likelihood_ == pytest.approx(noisy.log_likelihood(X, y), rel=1e-10)


def test_partial_fit_improves_the_full_data_log_likelihood_epoch_after_epoch():
    X, y, _ = make_moe_regression(n_samples=3000, n_features=2, n_experts=3, noise=0.2,
                                  random_state=4)
    est = MixtureOfExpertsRegressor(3, solver="adam", random_state=0)
    history = []
    for epoch in range(6):
        for batch in np.array_split(np.arange(3000), 10):  # a stream of 10 mini-batches
            est.partial_fit(X[batch], y[batch])
        history.append(est.log_likelihood(X, y))
    # measured: -1.341, -1.262, -1.200, -1.151, -1.105, -1.058
    assert np.all(np.diff(history) > 0), history
    assert est.n_iter_ == 60 and est.log_likelihood_history_.shape == (60,)


def test_partial_fit_continues_a_fit():
    X, y, _ = make_moe_regression(n_samples=1000, random_state=5)
    est = MixtureOfExpertsRegressor(3, solver="adam", max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    before = est.log_likelihood(X, y)
    n_iter = est.n_iter_
    est.partial_fit(X, y)
    assert est.n_iter_ == n_iter + 1
    assert est.log_likelihood(X, y) > before - 0.01  # continues, does not restart


def test_classifier_partial_fit_needs_classes_first():
    X, y, _ = make_moe_classification(n_samples=600, n_classes=3, random_state=0)
    clf = MixtureOfExpertsClassifier(2, solver="adam", random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X[:100], y[:100])
    # the first batch lacks class 2: classes come from `classes`, not from it
    first = y != 2
    clf.partial_fit(X[first][:100], y[first][:100], classes=[0, 1, 2])
    assert list(clf.classes_) == [0, 1, 2]
    for batch in np.array_split(np.arange(600), 6):
        clf.partial_fit(X[batch], y[batch])
    assert clf.predict_proba(X).shape == (600, 3)
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X, y, classes=[0, 1])


@pytest.mark.parametrize("solver", ["em", "lbfgs"])
def test_partial_fit_is_only_offered_by_adam(solver):
    assert not hasattr(MixtureOfExpertsRegressor(solver=solver), "partial_fit")
    assert not hasattr(MixtureOfExpertsClassifier(solver=solver), "partial_fit")
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'") as error:
        _ = MixtureOfExpertsRegressor(solver=solver).partial_fit
    assert "only available with solver='adam'" in str(error.value.__cause__)


@pytest.mark.parametrize("params, message", [
    ({"gate_noise": 0.5}, "gate_noise=0.5 needs solver='adam'"),
    ({"solver": "lbfgs", "gate_noise": 0.5}, "gate_noise=0.5 needs solver='adam'"),
    ({"top_k": 4}, "top_k=4 is larger than n_experts=3"),
    ({"top_k": 2, "gating": "hard"}, "top_k applies to gating='soft'"),
    ({"solver": "adam", "top_k": 1, "gate_noise": 0.1}, "gives the gate no gradient"),
])
def test_incompatible_options_are_refused_up_front(params, message):
    # checked before the data: even invalid X gets the option error
    with pytest.raises(ValueError, match=message):
        MixtureOfExpertsRegressor(3, **params).fit([[np.nan]], [0.0])


@pytest.mark.parametrize("solver, name", [("lbfgs", "L-BFGS"), ("adam", "Adam")])
def test_gradient_solvers_report_progress_and_warn_when_stopped_early(solver, name, capsys):
    X, y, _ = make_moe_regression(n_samples=300, random_state=3)
    est = MixtureOfExpertsRegressor(3, solver=solver, max_iter=2, verbose=2, random_state=0)
    with pytest.warns(ConvergenceWarning, match=f"{name} run"):
        est.fit(X, y)
    assert not est.converged_ and est.n_iter_ == 2
    assert f"{name} {'iteration' if solver == 'lbfgs' else 'epoch'} 1" in capsys.readouterr().out
