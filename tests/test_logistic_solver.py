"""The weighted multinomial logistic solver shared by the gate and the classifier experts."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.datasets import load_digits, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from mixexp import MixtureOfExpertsClassifier, _logistic
from mixexp._kernels import get_kernels


def objective(kernels, X, targets, coef, intercept, penalty):
    log_p = kernels.log_gate(X, coef, intercept)
    return float(np.sum(targets * log_p) - np.sum(penalty * coef**2))


# bound steps converge linearly (minorise-maximise), Newton quadratically
@pytest.mark.parametrize("newton_max_params, n_calls", [(10_000, 30), (0, 3000)],
                         ids=["newton", "bound"])
def test_steps_never_decrease_and_reach_logistic_regression(monkeypatch, newton_max_params,
                                                            n_calls):
    monkeypatch.setattr(_logistic, "NEWTON_MAX_PARAMS", newton_max_params)
    kernels = get_kernels("numpy")
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    targets = np.eye(3)[y]
    alpha = 0.5
    penalty = np.full(X.shape[1], alpha)
    coef, intercept = np.zeros((3, X.shape[1])), np.zeros(3)
    values = [objective(kernels, X, targets, coef, intercept, penalty)]
    for _ in range(n_calls):
        coef, intercept = _logistic.fit_multinomial_logistic(
            kernels, X, targets, coef, intercept, penalty, max_iter=1
        )
        values.append(objective(kernels, X, targets, coef, intercept, penalty))
    assert np.diff(values).min() >= -1e-12 * abs(values[-1])
    reference = LogisticRegression(C=1 / (2 * alpha), tol=1e-12, max_iter=10_000).fit(X, y)
    proba = np.exp(kernels.log_gate(X, coef, intercept))
    assert_allclose(proba, reference.predict_proba(X), atol=1e-6)


def test_bound_steps_on_singular_design_stay_finite(monkeypatch):
    monkeypatch.setattr(_logistic, "NEWTON_MAX_PARAMS", 0)
    kernels = get_kernels("numpy")
    X = np.column_stack([np.linspace(-1, 1, 20)] * 3)  # collinear columns
    targets = np.eye(2)[(X[:, 0] > 0).astype(int)]  # separable
    coef, intercept = _logistic.fit_multinomial_logistic(
        kernels, X, targets, np.zeros((2, 3)), np.zeros(2), np.zeros(3), max_iter=50
    )
    assert np.all(np.isfinite(coef)) and np.all(np.isfinite(intercept))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_float32_gains_below_rounding_are_not_line_searched(backend):
    # float32 log-probabilities round the objective at ~6e-8 relative: near
    # the optimum a Newton step's gain is invisible, and a line search would
    # halve the step to nothing at a pass over the data each time
    kernels = get_kernels(backend)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200_000, 4)).astype(np.float32)
    targets = np.eye(3, dtype=np.float32)[rng.integers(3, size=X.shape[0])]
    penalty = np.full(4, 0.5)
    coef, intercept = np.zeros((3, 4)), np.zeros(3)
    for _ in range(3):  # converge
        coef, intercept = _logistic.fit_multinomial_logistic(
            kernels, X, targets, coef, intercept, penalty, max_iter=3)
    passes = []
    counting = type("Counting", (), {
        "xp": np, "to_host": staticmethod(np.asarray),
        "gate_gradient_hessian": staticmethod(kernels.gate_gradient_hessian),
        "log_gate": staticmethod(lambda *a, **k: passes.append(1) or kernels.log_gate(*a, **k)),
    })
    _logistic.fit_multinomial_logistic(counting, X, targets, coef, intercept, penalty,
                                       max_iter=3)
    assert len(passes) <= 2  # the start, and at most one trial step


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_wide_expert_m_step_is_solved_by_lbfgs_and_never_decreases(backend):
    # above NEWTON_MAX_PARAMS an expert's M-step took bound steps, linear in
    # convergence: one expert on digits ran 1000 EM iterations without converging
    kernels = get_kernels(backend)
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X[:400])
    targets = np.eye(10)[y[:400]]
    assert 10 * (X.shape[1] + 1) > _logistic.NEWTON_MAX_PARAMS
    penalty = np.full(X.shape[1], 0.5)
    coef, intercept = np.zeros((10, X.shape[1])), np.zeros(10)
    values = [objective(kernels, X, targets, coef, intercept, penalty)]
    for _ in range(3):
        coef, intercept = _logistic.fit_multinomial_logistic(
            kernels, X, targets, coef, intercept, penalty, many="lbfgs")
        values.append(objective(kernels, X, targets, coef, intercept, penalty))
    assert np.diff(values).min() >= -1e-12 * abs(values[-1])
    assert values[2] - values[1] < 1e-6 * 400  # solved by the first call
    reference = LogisticRegression(C=1.0, tol=1e-12, max_iter=10_000).fit(X, y[:400])
    assert_allclose(np.exp(kernels.log_gate(X, coef, intercept)),
                    reference.predict_proba(X), atol=1e-5)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_one_wide_expert_converges_in_a_few_em_iterations(backend):
    X, y = load_digits(return_X_y=True)
    X, y = StandardScaler().fit_transform(X[:400]), y[:400]  # (LogisticRegression is slow raw)
    est = MixtureOfExpertsClassifier(1, backend=backend, tol=1e-10, max_iter=1000,
                                     random_state=0).fit(X, y)
    assert est.converged_ and est.n_iter_ <= 5
    reference = LogisticRegression(C=1.0, tol=1e-12, max_iter=10_000).fit(X, y)
    assert_allclose(est.predict_proba(X), reference.predict_proba(X), atol=1e-5)
