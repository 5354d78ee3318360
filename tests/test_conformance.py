"""Conformance suite: what every expert family and every gate must satisfy.

A new family or gate is added to ``FAMILIES`` / ``GATES`` below and must pass
every test here: its gradient against finite differences, its M-step never
lowering its penalised objective, sums over rows independent of how the
rows are chunked, coordinates and user-scale conversions that round-trip,
a split that keeps the mixture, and a fused E-step equal to the composition.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from mixexp._experts import GaussianExperts, LogisticExperts, PoissonExperts, StudentTExperts
from mixexp._balance import balance_terms
from mixexp._gates import SoftmaxGate, TreeGate
from mixexp._kernels import get_kernels
from mixexp._model import MixtureModel
from mixexp._rows import TrainingData
from mixexp._testing import central_differences

NUMPY = get_kernels("numpy")
N, D, K = 240, 3, 3


def _gaussian(rng, n_outputs=2):
    family = GaussianExperts(weight_penalty=rng.uniform(0.1, 1.0, D),
                             variance_floor=np.full(n_outputs, 1e-3))
    experts = {"coef": rng.normal(size=(K, n_outputs, D)),
               "intercept": rng.normal(size=(K, n_outputs)),
               "variance": rng.uniform(0.5, 2.0, size=(K, n_outputs))}
    Y = rng.normal(size=(N, n_outputs))
    return family, experts, Y


def _logistic(rng, n_outputs=3):
    family = LogisticExperts(weight_penalty=rng.uniform(0.1, 1.0, D))
    experts = {"coef": rng.normal(size=(K, n_outputs, D)),
               "intercept": rng.normal(size=(K, n_outputs))}
    Y = np.eye(n_outputs)[rng.integers(n_outputs, size=N)]
    return family, experts, Y


def _poisson(rng, n_outputs=2):
    family = PoissonExperts(weight_penalty=rng.uniform(0.1, 1.0, D),
                            target_mean=np.full(n_outputs, 3.0))
    experts = {"coef": 0.5 * rng.normal(size=(K, n_outputs, D)),
               "intercept": rng.normal(1.0, 0.5, size=(K, n_outputs))}
    Y = rng.poisson(3.0, size=(N, n_outputs)).astype(float)
    return family, experts, Y


def _student_t(rng, n_outputs=2):
    family = StudentTExperts(weight_penalty=rng.uniform(0.1, 1.0, D),
                             variance_floor=np.full(n_outputs, 1e-3))
    experts = {"coef": rng.normal(size=(K, n_outputs, D)),
               "intercept": rng.normal(size=(K, n_outputs)),
               "variance": rng.uniform(0.5, 2.0, size=(K, n_outputs)),
               "dof": np.array([0.9, 4.0, 50.0])}
    Y = rng.standard_t(3.0, size=(N, n_outputs))
    return family, experts, Y


FAMILIES = {"gaussian": _gaussian, "logistic": _logistic, "poisson": _poisson,
            "student_t": _student_t}


def _tree(rng, branching=(2, 2)):
    gate = TreeGate(alpha=0.3, branching=branching)
    params = gate.neutral(int(np.prod(branching)), D)
    return gate, {key: rng.normal(size=value.shape) for key, value in params.items()}


# gates over K experts (the composition tests pair them with the families'
# K experts), and a tree of four leaves for the gate-only tests
GATES = {"softmax": lambda rng: (SoftmaxGate(alpha=0.3),
                                 {"coef": rng.normal(size=(K, D)),
                                  "intercept": rng.normal(size=K)}),
         "tree": lambda rng: _tree(rng, (1, K))}
GATE_ONLY = {**GATES, "tree_2x2": _tree}


def _problem(family_name, seed=0):
    rng = np.random.default_rng(seed)
    family, experts, Y = FAMILIES[family_name](rng)
    X = rng.normal(size=(N, D))
    W = rng.dirichlet(np.ones(K), size=N) * rng.uniform(0.5, 2.0, size=(N, 1))
    return family, experts, X, Y, W


def _family_objective(family, X, Y, W, experts, penalty_scale=1.0):
    return float(np.sum(W * family.log_density(NUMPY, X, Y, experts))
                 - penalty_scale * family.penalty(experts))


def _gate_objective(gate, X, W, params, balance=0.0, sample_weight=None):
    """sum_ik W_ik log g_ik - penalty [- S balance CV^2(I)], the gate M-step's objective."""
    log_g = gate.log_prior(NUMPY, X, params)
    value = float(np.sum(W * log_g)) - gate.penalty(params)
    if balance > 0:
        value -= float(sample_weight.sum()) * balance_terms(np.exp(log_g), sample_weight,
                                                            balance)[0]
    return value


# ---- families ---------------------------------------------------------------
@pytest.mark.parametrize("family_name", FAMILIES)
def test_family_gradient_matches_finite_differences(family_name):
    family, experts, X, Y, W = _problem(family_name)
    coordinates = family.coordinates(experts, family.coordinate_reference(Y, W.sum(axis=1)))
    flat = coordinates.pack(experts)
    analytic = coordinates.pack_gradient(family.gradient(NUMPY, X, Y, W, experts,
                                                         penalty_scale=0.5))
    numeric = central_differences(
        lambda v: _family_objective(family, X, Y, W, coordinates.unpack(v), 0.5), flat)
    assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-5 * np.abs(numeric).max())


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("family_name", FAMILIES)
def test_family_m_step_never_lowers_its_objective(family_name, seed):
    family, experts, X, Y, W = _problem(family_name, seed)
    before = _family_objective(family, X, Y, W, experts)
    updated = family.m_step(NUMPY, X, Y, W, experts)
    assert set(updated) == set(experts)
    assert _family_objective(family, X, Y, W, updated) >= before - 1e-9 * abs(before)
    # and a second step from there keeps climbing (or stays)
    again = family.m_step(NUMPY, X, Y, W, updated)
    assert (_family_objective(family, X, Y, W, again)
            >= _family_objective(family, X, Y, W, updated) - 1e-9 * abs(before))


@pytest.mark.parametrize("family_name", FAMILIES)
def test_family_sums_over_rows_do_not_depend_on_chunking(family_name):
    family, experts, X, Y, W = _problem(family_name)
    whole = family.gradient(NUMPY, X, Y, W, experts, penalty_scale=0.0)
    rng = np.random.default_rng(1)
    cuts = np.sort(rng.choice(np.arange(1, N), size=5, replace=False))
    parts = [family.gradient(NUMPY, X[rows], Y[rows], W[rows], experts, penalty_scale=0.0)
             for rows in np.split(np.arange(N), cuts)]
    for key, value in whole.items():
        assert_allclose(sum(part[key] for part in parts), value, rtol=1e-10, atol=1e-10)
    density = np.concatenate([family.log_density(NUMPY, X[rows], Y[rows], experts)
                              for rows in np.split(np.arange(N), cuts)])
    assert_allclose(density, family.log_density(NUMPY, X, Y, experts), rtol=1e-14)


@pytest.mark.parametrize("family_name", FAMILIES)
def test_family_coordinates_round_trip_and_projection_keeps_densities(family_name):
    family, experts, X, Y, W = _problem(family_name)
    coordinates = family.coordinates(experts, family.coordinate_reference(Y, W.sum(axis=1)))
    flat = coordinates.pack(experts)
    for key, value in coordinates.unpack(flat).items():
        assert_allclose(value, experts[key], rtol=1e-12, atol=1e-12)
    assert np.all(coordinates.lower <= flat) and np.all(flat <= coordinates.upper)
    projected = coordinates.project(flat.copy())
    assert_allclose(family.log_density(NUMPY, X, Y, coordinates.unpack(projected)),
                    family.log_density(NUMPY, X, Y, experts), rtol=1e-10, atol=1e-10)
    assert family.penalty(coordinates.unpack(projected)) <= family.penalty(experts) + 1e-12


@pytest.mark.parametrize("family_name", FAMILIES)
def test_family_user_scale_round_trip_and_predictions(family_name):
    family, experts, X, Y, W = _problem(family_name)
    rng = np.random.default_rng(2)
    x_mean, x_scale = rng.normal(size=D), rng.uniform(0.1, 10.0, size=D)
    public = family.to_user(experts, x_mean, x_scale)
    assert all(name.endswith("_") for name in public)
    back = family.from_user(public, K, x_mean, x_scale)
    for key, value in back.items():
        assert_allclose(value, experts[key], rtol=1e-10, atol=1e-10)
    # the public attributes act on raw inputs as the internal ones on standardised
    raw = X * x_scale + x_mean
    assert_allclose(np.einsum("nd,ktd->nkt", raw, public["expert_coef_"])
                    + public["expert_intercept_"],
                    np.einsum("nd,ktd->nkt", X, experts["coef"]) + experts["intercept"],
                    rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("family_name", FAMILIES)
def test_family_state_rebuilds_the_family(family_name):
    family, experts, X, Y, W = _problem(family_name)
    state = family.state()
    assert all(isinstance(v, (np.ndarray, float, int)) for v in state.values())
    rebuilt = type(family)(**state)
    assert_allclose(rebuilt.log_density(NUMPY, X, Y, experts),
                    family.log_density(NUMPY, X, Y, experts))
    assert rebuilt.penalty(experts) == family.penalty(experts)


@pytest.mark.parametrize("family_name", FAMILIES)
def test_family_split_and_take(family_name):
    family, experts, X, Y, W = _problem(family_name)
    grown = family.split(experts, 1, np.random.default_rng(0))
    n_params = family.n_parameters(K, D, Y.shape[1])
    assert family.n_parameters(K + 1, D, Y.shape[1]) > n_params
    for key, value in grown.items():
        assert value.shape[0] == K + 1
        # the two halves move symmetrically away from the old expert
        assert_allclose(value[[0, 2]], experts[key][[0, 2]])
        assert_allclose((value[1] + value[-1]) / 2, experts[key][1], rtol=1e-12, atol=1e-12)
    taken = family.take(grown, np.array([0, 2]))
    for key, value in taken.items():
        assert_allclose(value, experts[key][[0, 2]])


# ---- gates ------------------------------------------------------------------
@pytest.mark.parametrize("gate_name", GATE_ONLY)
def test_gate_gradient_matches_finite_differences(gate_name):
    rng = np.random.default_rng(3)
    gate, params = GATE_ONLY[gate_name](rng)
    n_experts = gate.n_experts(params)
    X = rng.normal(size=(N, D))
    W = rng.dirichlet(np.ones(n_experts), size=N) * rng.uniform(0.5, 2.0, size=(N, 1))
    coordinates = gate.coordinates(params)
    log_g = gate.log_prior(NUMPY, X, params)
    # the gradient of sum_ik W_ik log g_ik in a flat gate's logits, and in
    # the log priors themselves (W)
    logit_gradient = W - np.exp(log_g) * W.sum(axis=1, keepdims=True)
    analytic = coordinates.pack_gradient(gate.gradient(NUMPY, X, logit_gradient, params,
                                                       log_prior_gradient=W))
    numeric = central_differences(
        lambda v: _gate_objective(gate, X, W, coordinates.unpack(v)), coordinates.pack(params))
    assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-5 * np.abs(numeric).max())


@pytest.mark.parametrize("balance", [0.0, 0.5])
@pytest.mark.parametrize("gate_name", GATE_ONLY)
def test_gate_m_step_never_lowers_its_objective(gate_name, balance):
    rng = np.random.default_rng(4)
    gate, params = GATE_ONLY[gate_name](rng)
    n_experts = gate.n_experts(params)
    X = rng.normal(size=(N, D))
    W = rng.dirichlet(np.ones(n_experts), size=N)
    sample_weight = W.sum(axis=1)
    before = _gate_objective(gate, X, W, params, balance, sample_weight)
    updated = gate.m_step(NUMPY, X, W, params, max_iter=3, balance=balance,
                          sample_weight=sample_weight)
    assert _gate_objective(gate, X, W, updated, balance, sample_weight) >= before
    assert gate.n_experts(updated) == n_experts and gate.n_features(updated) == D


@pytest.mark.parametrize("gate_name", GATE_ONLY)
def test_gate_coordinates_projection_split_take_and_user_scale(gate_name):
    rng = np.random.default_rng(5)
    gate, params = GATE_ONLY[gate_name](rng)
    X = rng.normal(size=(N, D))
    log_g = gate.log_prior(NUMPY, X, params)
    coordinates = gate.coordinates(params)
    projected = coordinates.unpack(coordinates.project(coordinates.pack(params)))
    assert_allclose(gate.log_prior(NUMPY, X, projected), log_g, atol=1e-12)
    assert gate.penalty(projected) <= gate.penalty(params) + 1e-12
    if gate.resizable:
        # a split keeps the gate exactly: the two halves share the old expert's share
        grown = np.exp(gate.log_prior(NUMPY, X, gate.split(params, 0)))
        assert_allclose(grown[:, 0] + grown[:, -1], np.exp(log_g[:, 0]), rtol=1e-12)
        # taking experts conditions the gate on them
        kept = np.exp(gate.log_prior(NUMPY, X, gate.take(params, np.array([0, 2]))))
        g = np.exp(log_g[:, [0, 2]])
        assert_allclose(kept, g / g.sum(axis=1, keepdims=True), rtol=1e-12)
    else:  # a gate of fixed shape refuses clearly
        with pytest.raises(ValueError, match="cannot be split"):
            gate.split(params, 0)
    x_mean, x_scale = rng.normal(size=D), rng.uniform(0.1, 10.0, size=D)
    user = gate.to_user(params, x_mean, x_scale)
    back = gate.from_user(*user, x_mean, x_scale) if isinstance(user, tuple) else \
        gate.from_user(user, x_mean, x_scale)
    for key, value in back.items():
        assert_allclose(value, params[key], rtol=1e-10, atol=1e-10)


# ---- the composition --------------------------------------------------------
@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("family_name", FAMILIES)
@pytest.mark.parametrize("gate_name", GATES)
def test_fused_e_step_equals_the_composition(gate_name, family_name, dtype, backend):
    kernels = get_kernels(backend)
    rng = np.random.default_rng(6)
    gate, gate_params = GATES[gate_name](rng)
    family, experts, X, Y, _ = _problem(family_name)
    model = MixtureModel(gate, family)
    params = {"gate": gate_params, "experts": experts}
    X, Y = X.astype(dtype), Y.astype(dtype)
    outputs = []
    for fused in (True, False):
        resp, log_g = np.empty((N, K), dtype=dtype), np.empty((N, K), dtype=dtype)
        log_norm = model.e_step(kernels, X, Y, params, resp, log_gate_out=log_g, fused=fused)
        outputs.append((log_norm, resp, log_g))
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    for fused, composed in zip(*outputs):
        assert_allclose(fused, composed, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("family_name", FAMILIES)
def test_model_m_step_and_split_keep_the_mixture(family_name):
    rng = np.random.default_rng(7)
    gate, gate_params = GATES["softmax"](rng)
    family, experts, X, Y, _ = _problem(family_name)
    model = MixtureModel(gate, family)
    params = {"gate": gate_params, "experts": experts}
    data = TrainingData(X, Y, np.ones(N))
    resp = np.empty((N, K))

    def objective(p):
        return float(model.e_step(NUMPY, X, Y, p, resp).sum()) - model.penalty(p)

    before = objective(params)
    model.e_step(NUMPY, X, Y, params, resp)
    updated = model.m_step(NUMPY, data, params, resp.copy())
    assert objective(updated) >= before  # EM's monotonicity, one step
    assert model.n_experts(updated) == K
    grown = model.split(updated, 0, np.random.default_rng(0))
    assert model.n_experts(grown) == K + 1
    # a split changes the likelihood only at second order in its small step
    resp = np.empty((N, K + 1))
    split_ll = float(model.e_step(NUMPY, X, Y, grown, resp).sum())
    resp = np.empty((N, K))
    assert abs(split_ll - float(model.e_step(NUMPY, X, Y, updated, resp).sum())) < 2e-3


@pytest.mark.parametrize("family_name", FAMILIES)
def test_model_gives_gate_and_experts_their_own_columns(family_name):
    # gate_features / expert_features: the model hands each object its column view
    rng = np.random.default_rng(8)
    gate, _ = GATES["softmax"](rng)
    family, experts, X, Y, W = _problem(family_name)
    gate_columns, expert_columns = np.array([2, 0]), np.array([1])
    gate_params = {"coef": rng.normal(size=(K, 2)), "intercept": rng.normal(size=K)}
    experts = {key: value[..., [0]] if key == "coef" else value
               for key, value in experts.items()}
    # the family's penalty is per column of its own (one here)
    family = type(family)(**{**family.state(), "weight_penalty": family.weight_penalty[[1]]})
    model = MixtureModel(gate, family, gate_columns, expert_columns)
    params = {"gate": gate_params, "experts": experts}
    assert model.widths(D) == (2, 1)
    assert model.n_parameters(K, D, Y.shape[1]) == (gate.n_parameters(K, 2)
                                                    + family.n_parameters(K, 1, Y.shape[1]))
    resp = np.empty((N, K))
    log_norm = model.e_step(NUMPY, X, Y, params, resp)
    joint = (gate.log_prior(NUMPY, X[:, [2, 0]], gate_params)
             + family.log_density(NUMPY, X[:, [1]], Y, experts))
    assert_allclose(log_norm, np.log(np.exp(joint).sum(axis=1)), rtol=1e-12)
    # the gradient is the objects' own on their columns
    logit_gradient = W - np.exp(gate.log_prior(NUMPY, X[:, [2, 0]], gate_params))
    gradient = model.gradient(NUMPY, X, Y, logit_gradient, W, params)
    assert_allclose(gradient["experts"]["coef"],
                    family.gradient(NUMPY, X[:, [1]], Y, W, experts)["coef"])
    assert_allclose(gradient["gate"]["coef"],
                    gate.gradient(NUMPY, X[:, [2, 0]], logit_gradient, gate_params)["coef"])
    # public attributes on each object's columns, and back
    x_mean, x_scale = rng.normal(size=D), rng.uniform(0.1, 10.0, size=D)
    public = model.to_user(params, x_mean, x_scale)
    assert public["gate_coef_"].shape == (K, 2) and public["expert_coef_"].shape[-1] == 1
    back = model.from_user(public, x_mean, x_scale)
    for part in ("gate", "experts"):
        for key, value in back[part].items():
            assert_allclose(value, params[part][key], rtol=1e-10, atol=1e-10)
    # an EM step on the views never lowers the objective
    data = TrainingData(X, Y, np.ones(N))

    def objective(p):
        return float(model.e_step(NUMPY, X, Y, p, resp).sum()) - model.penalty(p)

    before = objective(params)
    model.e_step(NUMPY, X, Y, params, resp)
    assert objective(model.m_step(NUMPY, data, params, resp.copy())) >= before
