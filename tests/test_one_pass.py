"""One-pass EM: a pass per iteration, independent of chunking, the same optima."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from numpy.testing import assert_allclose

from mixexp import MixtureOfExpertsRegressor, _logistic
from mixexp._rows import InMemoryRows
from mixexp._solvers import _em
from mixexp.datasets import make_moe_regression


@pytest.fixture
def count_passes(monkeypatch):
    counts = {"passes": 0, "whole": 0}
    map_reduce, whole = InMemoryRows.map_reduce, InMemoryRows.whole

    def counted_map_reduce(self, function):
        counts["passes"] += 1
        return map_reduce(self, function)

    def counted_whole(self):
        counts["whole"] += self._whole is None
        return whole(self)

    monkeypatch.setattr(InMemoryRows, "map_reduce", counted_map_reduce)
    monkeypatch.setattr(InMemoryRows, "whole", counted_whole)
    return counts


def test_em_makes_one_pass_per_iteration_and_no_standardised_copy(count_passes):
    X, y, _ = make_moe_regression(n_samples=3000, n_features=3, n_experts=3, noise=0.3,
                                  random_state=0)
    # (alpha fixed: "auto" adds a pass and a continued run, see test_auto_penalty)
    est = MixtureOfExpertsRegressor(3, n_init=1, alpha=1e-4, random_state=0).fit(X, y)
    assert est.converged_
    # the first E-step, one per iteration (plus a pass per rejected gate
    # step, rare), and the training summary
    assert est.n_iter_ + 2 <= count_passes["passes"] <= 1.2 * est.n_iter_ + 2
    assert count_passes["whole"] == 0


@pytest.mark.parametrize("solver, gating, balance", [
    ("em", "hard", 0.0), ("em", "soft", 0.3), ("lbfgs", "soft", 0.0),
])
def test_other_paths_use_the_whole_standardised_rows(count_passes, solver, gating, balance):
    X, y, _ = make_moe_regression(n_samples=500, random_state=0)
    MixtureOfExpertsRegressor(2, solver=solver, gating=gating, balance=balance, tol=1e-3,
                              random_state=0).fit(X, y)
    assert count_passes["whole"] == 1


def test_fit_does_not_depend_on_the_chunking(monkeypatch):
    X, y, _ = make_moe_regression(n_samples=2000, n_features=2, n_experts=3, random_state=1)
    whole = MixtureOfExpertsRegressor(3, random_state=0).fit(X, y)
    original = InMemoryRows.__init__

    def small_chunks(self, *args, **kwargs):
        original(self, *args, **{**kwargs, "rows_per_chunk": 333})

    monkeypatch.setattr(InMemoryRows, "__init__", small_chunks)
    chunked = MixtureOfExpertsRegressor(3, random_state=0).fit(X, y)
    assert chunked.n_iter_ == whole.n_iter_
    assert chunked.log_likelihood_ == pytest.approx(whole.log_likelihood_, rel=1e-10)
    assert_allclose(chunked.expert_coef_, whole.expert_coef_, rtol=1e-7, atol=1e-9)


def test_subsampled_gate_hessian_reaches_the_same_optimum(monkeypatch):
    X, y, _ = make_moe_regression(n_samples=4000, n_features=3, n_experts=4, noise=0.2,
                                  random_state=2)
    exact = MixtureOfExpertsRegressor(4, random_state=0, tol=1e-8, max_iter=500).fit(X, y)
    monkeypatch.setattr(_em, "HESSIAN_SAMPLE_ROWS", 500)  # every 8th row
    sampled = MixtureOfExpertsRegressor(4, random_state=0, tol=1e-8, max_iter=500).fit(X, y)
    assert sampled.converged_
    assert sampled.log_likelihood_ == pytest.approx(exact.log_likelihood_, abs=1e-6)
    assert sampled.n_iter_ <= 1.3 * exact.n_iter_


def test_bound_gate_steps_reach_the_newton_optimum(monkeypatch):
    X, y, _ = make_moe_regression(n_samples=1500, n_features=2, n_experts=3, noise=0.2,
                                  random_state=3)
    newton = MixtureOfExpertsRegressor(3, random_state=0, tol=1e-9, max_iter=2000).fit(X, y)
    monkeypatch.setattr(_logistic, "NEWTON_MAX_PARAMS", 0)  # Boehning's bound instead
    bound = MixtureOfExpertsRegressor(3, random_state=0, tol=1e-9, max_iter=2000).fit(X, y)
    assert bound.converged_
    assert bound.log_likelihood_ == pytest.approx(newton.log_likelihood_, abs=1e-5)


def test_a_gate_step_that_lowers_the_objective_is_halved_or_dropped(monkeypatch):
    # a gate direction far too long: the pass after it sees the objective
    # fall, halves it, and in the end keeps the experts' step alone; EM stays
    # monotone (conftest checks every fit) and still converges
    from mixexp._gates import SoftmaxGate

    direction = SoftmaxGate.direction

    def overshooting(self, *args, **kwargs):
        step = direction(self, *args, **kwargs)
        return None if step is None else 1e3 * step

    monkeypatch.setattr(SoftmaxGate, "direction", overshooting)
    X, y, _ = make_moe_regression(n_samples=800, random_state=4)
    est = MixtureOfExpertsRegressor(3, random_state=0, max_iter=300).fit(X, y)
    assert np.all(np.diff(est.objective_history_) >= -1e-12)
    assert est.converged_


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_prediction_by_chunks_equals_prediction_in_one_block(monkeypatch, backend):
    # prediction standardises and predicts chunk by chunk (no copy of X):
    # the rows do not depend on each other, so neither do the results
    from mixexp import MixtureOfExpertsClassifier
    from mixexp.datasets import make_moe_classification

    X, y, _ = make_moe_regression(n_samples=1000, n_features=2, random_state=5)
    Xc, yc, _ = make_moe_classification(n_samples=1000, random_state=5)
    reg = MixtureOfExpertsRegressor(3, top_k=2, backend=backend, random_state=0).fit(X, y)
    clf = MixtureOfExpertsClassifier(2, backend=backend, random_state=0).fit(Xc, yc)

    def predictions():
        return [*reg.predict(X, return_std=True), reg.predict_gate(X), reg.predict_experts(X),
                reg.predict_responsibilities(X, y), reg.log_likelihood(X, y),
                clf.predict_proba(Xc), clf.predict_experts(Xc), clf.predict(Xc)]

    whole = predictions()
    original = InMemoryRows.__init__

    def small_chunks(self, *args, **kwargs):
        original(self, *args, **{**kwargs, "rows_per_chunk": 97})

    monkeypatch.setattr(InMemoryRows, "__init__", small_chunks)
    for chunked, desired in zip(predictions(), whole, strict=True):
        assert_allclose(chunked, desired, rtol=1e-13, atol=1e-300)


# ---- multinomial logistic experts (MixtureOfExpertsClassifier) ---------------------


def _classes(n=3000, seed=0):
    from mixexp.datasets import make_moe_classification

    X, y, _ = make_moe_classification(n_samples=n, n_features=4, n_experts=3, n_classes=3,
                                      random_state=seed)
    return X, y


def test_classifier_em_makes_one_pass_per_iteration(count_passes):
    from mixexp import MixtureOfExpertsClassifier

    X, y = _classes()
    est = MixtureOfExpertsClassifier(3, n_init=1, random_state=0).fit(X, y)
    assert est.converged_
    # the first E-step, one per iteration, a pass per halved step (rare) and the summary
    assert est.n_iter_ + 2 <= count_passes["passes"] <= 1.2 * est.n_iter_ + 2
    assert count_passes["whole"] == 0


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("n_experts, seed", [(2, 0), (3, 1), (3, 2)])
def test_classifier_one_pass_em_reaches_the_multi_pass_optimum(monkeypatch, backend, n_experts,
                                                               seed):
    # one Newton step per expert and iteration, checked by the next pass, against
    # the multi-pass M-step's Newton iterations with a line search on each expert
    from mixexp import MixtureOfExpertsClassifier
    from mixexp._model import MixtureModel

    X, y = _classes(n=2000, seed=seed)
    kwargs = dict(n_experts=n_experts, n_init=1, tol=1e-10, max_iter=5000, random_state=0,
                  backend=backend)
    one_pass = MixtureOfExpertsClassifier(**kwargs).fit(X, y)
    monkeypatch.setattr(MixtureModel, "one_pass", property(lambda self: False))
    multi_pass = MixtureOfExpertsClassifier(**kwargs).fit(X, y)
    assert one_pass.converged_ and multi_pass.converged_
    assert one_pass.objective_history_[-1] >= multi_pass.objective_history_[-1] - 1e-7
    assert one_pass.log_likelihood_ == pytest.approx(multi_pass.log_likelihood_, abs=1e-6)


def test_classifier_one_pass_converges_despite_halved_steps(monkeypatch):
    # expert steps three times too long: the next pass sees the objective fall and
    # halves them. The stopping rule sees a halved step's gain per unit step, so the
    # fit does not stop at the first small (halved) gain but reaches the optimum
    from mixexp import MixtureOfExpertsClassifier
    from mixexp._experts import LogisticExperts

    X, y = _classes(n=2000, seed=3)
    kwargs = dict(n_experts=3, n_init=1, random_state=0, max_iter=3000)
    exact = MixtureOfExpertsClassifier(tol=1e-10, **kwargs).fit(X, y)
    solve = LogisticExperts.solve

    def overshooting(self, statistics, experts):
        target = solve(self, statistics, experts)
        return {key: experts[key] + 3.0 * (target[key] - experts[key]) for key in experts}

    monkeypatch.setattr(LogisticExperts, "solve", overshooting)
    halved = MixtureOfExpertsClassifier(**kwargs).fit(X, y)  # the default tol
    assert halved.converged_
    assert np.all(np.diff(halved.objective_history_) >= -1e-12)
    assert halved.log_likelihood_ == pytest.approx(exact.log_likelihood_, abs=1e-4)


def test_wide_logistic_experts_keep_the_multi_pass_m_step(count_passes):
    from mixexp import MixtureOfExpertsClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 60))
    y = rng.integers(4, size=400)  # 4 (60 + 1) > NEWTON_MAX_PARAMS parameters per expert
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # (5 iterations only)
        MixtureOfExpertsClassifier(2, n_init=1, random_state=0, max_iter=5).fit(X, y)
    assert count_passes["whole"] == 1
