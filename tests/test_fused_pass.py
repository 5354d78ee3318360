"""The fused one-pass kernel (``gaussian_pass``) against the composition it replaces."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from mixexp import MixtureOfExpertsRegressor
from mixexp._experts import GaussianExperts
from mixexp._gates import SoftmaxGate
from mixexp._kernels import get_kernels
from mixexp._model import MixtureModel
from mixexp._rows import Chunk
from mixexp.datasets import make_moe_regression

pytest.importorskip("numba")


def _problem(n, d, n_experts, n_targets, dtype, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    params = {
        "gate": {"coef": rng.normal(size=(n_experts, d)), "intercept": rng.normal(size=n_experts)},
        "experts": {"coef": rng.normal(size=(n_experts, n_targets, d)),
                    "intercept": rng.normal(size=(n_experts, n_targets)),
                    "variance": rng.uniform(0.3, 3.0, size=(n_experts, n_targets))},
    }
    # targets near one expert's mean, so that posteriors are neither uniform nor one-hot
    mean = np.einsum("nd,ktd->nkt", X, params["experts"]["coef"]) + params["experts"]["intercept"]
    Y = mean[np.arange(n), rng.integers(n_experts, size=n)] + rng.normal(size=(n, n_targets))
    sample_weight = rng.uniform(0.5, 2.0, size=n)
    sample_weight[rng.random(n) < 0.1] = 0.0
    model = MixtureModel(SoftmaxGate(0.0), GaussianExperts(np.zeros(d), np.zeros(n_targets)))
    return model, params, X.astype(dtype), Y.astype(dtype), sample_weight


def _statistics(model, params, X, Y, sample_weight, stride, fused, family_options=None):
    kernels = get_kernels("numba")
    resp = np.empty((X.shape[0], model.n_experts(params)), dtype=X.dtype)
    chunk = Chunk(X, Y, sample_weight, slice(0, X.shape[0]))
    return model.pass_statistics(kernels, chunk, params, resp, np.empty_like(resp),
                                 hessian_stride=stride, fused=fused,
                                 family_options=family_options)


def _assert_same(fused, composed, rtol):
    assert fused.keys() == composed.keys()
    for key, value in composed.items():
        if isinstance(value, dict):
            _assert_same(fused[key], value, rtol)
        else:
            scale = np.max(np.abs(value)) if np.size(value) else 1.0
            assert_allclose(fused[key], value, rtol=rtol, atol=rtol * scale, err_msg=key)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize("n, d, n_experts, n_targets, stride", [
    (1, 2, 2, 1, 1),
    (300, 3, 4, 2, 3),  # a partial block; two targets
    (5000, 10, 8, 1, 1),  # several reduction chunks
    (5000, 10, 8, 1, 3),
    (3001, 5, 3, 2, 7),  # sampled rows straddle blocks and chunks
    (700, 1, 1, 1, 2),
])
def test_fused_pass_equals_the_composition(dtype, rtol, n, d, n_experts, n_targets, stride):
    model, params, X, Y, sample_weight = _problem(n, d, n_experts, n_targets, dtype, seed=n + d)
    fused = _statistics(model, params, X, Y, sample_weight, stride, fused=True)
    composed = _statistics(model, params, X, Y, sample_weight, stride, fused=False)
    assert "hessian_weight" in fused["gate"] or stride == 1
    _assert_same(fused, composed, rtol)


def test_a_row_impossible_under_every_expert_gets_no_weight():
    model, params, X, Y, sample_weight = _problem(1000, 4, 3, 1, np.float64, seed=1)
    Y[17] = 1e300  # its squared residual overflows: -inf under every expert
    sample_weight[17] = 1.0
    fused = _statistics(model, params, X, Y, sample_weight, 3, fused=True)
    composed = _statistics(model, params, X, Y, sample_weight, 3, fused=False)
    assert fused["log_likelihood"] == composed["log_likelihood"] == -np.inf
    fused["log_likelihood"] = composed["log_likelihood"] = 0.0
    _assert_same(fused, composed, 1e-10)
    assert np.all(np.isfinite(fused["experts"]["gram"]))


def test_fused_pass_does_not_depend_on_the_thread_count(monkeypatch):
    from mixexp._kernels import _numba

    model, params, X, Y, sample_weight = _problem(20000, 4, 3, 1, np.float64, seed=2)
    threaded = _statistics(model, params, X, Y, sample_weight, 3, fused=True)
    monkeypatch.setattr(_numba, "_n_threads", lambda: 1)
    serial = _statistics(model, params, X, Y, sample_weight, 3, fused=True)
    _assert_same(threaded, serial, 0.0)


@pytest.mark.parametrize("n, d, n_experts, seed", [(3000, 3, 3, 0), (20000, 6, 5, 1),
                                                   (1500, 2, 2, 2)])
def test_numba_fit_with_the_fused_pass_matches_numpy(n, d, n_experts, seed, monkeypatch):
    bundle = get_kernels("numba")
    calls, kernel = [], bundle.gaussian_pass
    monkeypatch.setattr(bundle, "gaussian_pass", lambda *args: calls.append(1) or kernel(*args))
    X, y, _ = make_moe_regression(n_samples=n, n_features=d, n_experts=n_experts, noise=0.3,
                                  random_state=seed)
    fits = {backend: MixtureOfExpertsRegressor(n_experts, n_init=1, random_state=0,
                                               backend=backend).fit(X, y)
            for backend in ("numpy", "numba")}
    assert calls  # the numba fit ran on the fused kernel
    assert fits["numba"].n_iter_ == fits["numpy"].n_iter_
    assert fits["numba"].log_likelihood_ == pytest.approx(fits["numpy"].log_likelihood_,
                                                          rel=1e-9, abs=1e-9)


def _poisson_problem(n, d, n_experts, n_targets, dtype, seed):
    from mixexp._experts import PoissonExperts

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    params = {
        "gate": {"coef": rng.normal(size=(n_experts, d)), "intercept": rng.normal(size=n_experts)},
        "experts": {"coef": 0.4 * rng.normal(size=(n_experts, n_targets, d)),
                    "intercept": rng.normal(1.0, 1.0, size=(n_experts, n_targets))},
    }
    eta = np.einsum("nd,ktd->nkt", X, params["experts"]["coef"]) + params["experts"]["intercept"]
    Y = rng.poisson(np.exp(eta[np.arange(n), rng.integers(n_experts, size=n)]))
    sample_weight = rng.uniform(0.5, 2.0, size=n)
    sample_weight[rng.random(n) < 0.1] = 0.0
    model = MixtureModel(SoftmaxGate(0.0), PoissonExperts(np.zeros(d), np.ones(n_targets)))
    return model, params, X.astype(dtype), Y.astype(dtype), sample_weight


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize("n, d, n_experts, n_targets, stride", [
    (1, 2, 2, 1, 1), (300, 3, 4, 2, 3), (5000, 10, 8, 1, 1), (3001, 5, 3, 2, 7),
    (700, 1, 1, 1, 2),
])
def test_poisson_fused_pass_equals_the_composition(dtype, rtol, n, d, n_experts, n_targets,
                                                   stride):
    model, params, X, Y, sample_weight = _poisson_problem(n, d, n_experts, n_targets, dtype,
                                                          seed=n + d)
    fused = _statistics(model, params, X, Y, sample_weight, stride, fused=True)
    composed = _statistics(model, params, X, Y, sample_weight, stride, fused=False)
    _assert_same(fused, composed, rtol)


def _student_t_problem(n, d, n_experts, n_targets, dtype, seed):
    """The Gaussian problem with t(2) noise and per-expert degrees of freedom."""
    from mixexp._experts import StudentTExperts

    _, params, X, Y, sample_weight = _problem(n, d, n_experts, n_targets, np.float64, seed)
    rng = np.random.default_rng(seed + 1)
    Y = Y + rng.standard_t(2.0, size=Y.shape)
    params["experts"]["dof"] = rng.choice([0.7, 3.0, 40.0, 1e5], size=n_experts)
    model = MixtureModel(SoftmaxGate(0.0), StudentTExperts(np.zeros(d), np.zeros(n_targets)))
    return model, params, X.astype(dtype), Y.astype(dtype), sample_weight


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize("n, d, n_experts, n_targets, stride", [
    (1, 2, 2, 1, 1), (300, 3, 4, 2, 3), (5000, 10, 8, 1, 1), (3001, 5, 3, 2, 7),
    (700, 1, 1, 1, 2),
])
def test_student_t_fused_pass_equals_the_composition(dtype, rtol, n, d, n_experts, n_targets,
                                                     stride):
    model, params, X, Y, sample_weight = _student_t_problem(n, d, n_experts, n_targets, dtype,
                                                            seed=n + d)
    fused = _statistics(model, params, X, Y, sample_weight, stride, fused=True)
    composed = _statistics(model, params, X, Y, sample_weight, stride, fused=False)
    _assert_same(fused, composed, rtol)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_student_t_fused_pass_without_candidates_is_the_rest_of_the_pass(dtype, rtol):
    # (what one-pass EM asks on iterations where the nu step cannot pay)
    model, params, X, Y, sample_weight = _student_t_problem(3001, 5, 3, 2, dtype, seed=3)
    options = {"with_candidates": False}
    fused = _statistics(model, params, X, Y, sample_weight, 7, fused=True, family_options=options)
    composed = _statistics(model, params, X, Y, sample_weight, 7, fused=False,
                           family_options=options)
    full = _statistics(model, params, X, Y, sample_weight, 7, fused=True)
    assert "log1p_sums" not in fused["experts"] and "log1p_sums" in full["experts"]
    _assert_same(fused, composed, rtol)
    del full["experts"]["log1p_sums"]
    _assert_same(fused, full, 0.0)


def _logistic_problem(n, d, n_experts, n_classes, dtype, seed):
    from mixexp._experts import LogisticExperts

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    params = {
        "gate": {"coef": rng.normal(size=(n_experts, d)), "intercept": rng.normal(size=n_experts)},
        "experts": {"coef": rng.normal(size=(n_experts, n_classes, d)),
                    "intercept": rng.normal(size=(n_experts, n_classes))},
    }
    Y = np.eye(n_classes)[rng.integers(n_classes, size=n)]
    sample_weight = rng.uniform(0.5, 2.0, size=n)
    sample_weight[rng.random(n) < 0.1] = 0.0
    model = MixtureModel(SoftmaxGate(0.0), LogisticExperts(np.zeros(d)))
    return model, params, X.astype(dtype), Y.astype(dtype), sample_weight


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize("n, d, n_experts, n_classes, stride", [
    (1, 2, 2, 2, 1), (300, 3, 4, 3, 3), (5000, 10, 4, 3, 1), (5000, 10, 8, 2, 3),
    (3001, 5, 3, 4, 7),  # sampled rows straddle blocks and chunks
    (700, 1, 1, 2, 2),
])
def test_logistic_fused_pass_equals_the_composition(dtype, rtol, n, d, n_experts, n_classes,
                                                    stride):
    model, params, X, Y, sample_weight = _logistic_problem(n, d, n_experts, n_classes, dtype,
                                                           seed=n + d)
    fused = _statistics(model, params, X, Y, sample_weight, stride, fused=True)
    composed = _statistics(model, params, X, Y, sample_weight, stride, fused=False)
    assert ("hessian_weight" in fused["experts"]) == (stride > 1)
    _assert_same(fused, composed, rtol)


def test_logistic_composition_equals_the_numpy_reference():
    # the composition on Numba's kernels against the same on the NumPy reference's
    model, params, X, Y, sample_weight = _logistic_problem(3001, 5, 3, 4, np.float64, seed=5)
    chunk = Chunk(X, Y, sample_weight, slice(0, X.shape[0]))
    results = []
    for backend in ("numpy", "numba"):
        resp = np.empty((X.shape[0], 3))
        results.append(model.pass_statistics(get_kernels(backend), chunk, params, resp,
                                             np.empty_like(resp), hessian_stride=7,
                                             fused=False))
    _assert_same(results[1], results[0], 1e-10)


def test_logistic_fused_pass_does_not_depend_on_the_thread_count(monkeypatch):
    from mixexp._kernels import _numba

    model, params, X, Y, sample_weight = _logistic_problem(20000, 4, 3, 3, np.float64, seed=2)
    threaded = _statistics(model, params, X, Y, sample_weight, 3, fused=True)
    monkeypatch.setattr(_numba, "_n_threads", lambda: 1)
    serial = _statistics(model, params, X, Y, sample_weight, 3, fused=True)
    _assert_same(threaded, serial, 0.0)
