"""Hierarchical mixtures of experts: the tree gate, its estimators, and references."""

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score

from mixexp import (
    HierarchicalMixtureOfExpertsClassifier,
    HierarchicalMixtureOfExpertsRegressor,
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
)
from mixexp._gates import SoftmaxGate, TreeGate
from mixexp._kernels import get_kernels
from mixexp._rows import TrainingData
from mixexp._solvers._gradient import GradientObjective
from mixexp._solvers._options import SolverOptions
from mixexp.datasets import make_moe_classification, make_moe_regression

DATA = Path(__file__).parent / "data"
# benchmarks/reference/mixtools_tonedata_hme.R: mixtools 2.0.0 hmeEM(tuned ~
# stretchratio, k = 2), best of 50 random starts (total log-likelihood)
MIXTOOLS_TONEDATA_LOG_LIKELIHOOD = 145.650315


def _quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return function(*args, **kwargs)


# ---------------------------------------------------------------------------
# The tree gate


def test_tree_log_prior_is_the_sum_of_the_node_log_gates_on_each_path():
    rng = np.random.default_rng(0)
    gate = TreeGate(0.0, (2, 3))
    params = gate.neutral(6, 4)
    for key in params:
        params[key] = rng.normal(size=params[key].shape)
    X = rng.normal(size=(50, 4))
    kernels = get_kernels("numpy")
    log_prior = gate.log_prior(kernels, X, params)

    def log_softmax(coef, intercept):
        z = X @ coef.T + intercept
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    root = log_softmax(params["coef_0"][0], params["intercept_0"][0])
    for leaf in range(6):
        parent, child = divmod(leaf, 3)
        node = log_softmax(params["coef_1"][parent], params["intercept_1"][parent])
        assert_allclose(log_prior[:, leaf], root[:, parent] + node[:, child], rtol=1e-12)
    assert_allclose(np.exp(log_prior).sum(axis=1), 1.0, rtol=1e-12)


def test_tree_of_one_level_is_the_softmax_gate():
    rng = np.random.default_rng(1)
    flat = {"coef": rng.normal(size=(4, 3)), "intercept": rng.normal(size=4)}
    tree = {"coef_0": flat["coef"][None], "intercept_0": flat["intercept"][None]}
    X = rng.normal(size=(30, 3))
    kernels = get_kernels("numpy")
    assert_allclose(TreeGate(0.5, (4,)).log_prior(kernels, X, tree),
                    SoftmaxGate(0.5).log_prior(kernels, X, flat), rtol=1e-14)
    assert TreeGate(0.5, (4,)).n_parameters(4, 3) == SoftmaxGate.n_parameters(4, 3)
    assert TreeGate(0.5, (4,)).penalty(tree) == SoftmaxGate(0.5).penalty(flat)


def test_tree_parameter_count():
    # root: 1 node x (2 - 1) x (d + 1); level 1: 2 nodes x (3 - 1) x (d + 1)
    assert TreeGate(1.0, (2, 3)).n_parameters(6, 4) == 1 * 1 * 5 + 2 * 2 * 5


@pytest.mark.parametrize("options", [SolverOptions(), SolverOptions(gating="hard"),
                                     SolverOptions(balance=0.7)],
                         ids=["soft", "hard", "balance"])
@pytest.mark.parametrize("branching", [(2, 2), (3, 2), (2, 1, 2)])
def test_tree_gradient_matches_finite_differences(branching, options):
    rng = np.random.default_rng(0)
    X, y, _ = make_moe_regression(n_samples=150, n_features=2, n_experts=4, random_state=0)
    estimator = _quiet(HierarchicalMixtureOfExpertsRegressor(
        branching, alpha=0.3, max_iter=3, random_state=0).fit, X, y)
    sample_weight = rng.uniform(0.5, 2.0, X.shape[0])
    Y = estimator._encode_targets(y, fitting=False)
    data = TrainingData((X - estimator._x_mean) / estimator._x_scale, Y, sample_weight)
    model = estimator._fitted_model
    coordinates = model.coordinates(estimator._params,
                                    model.coordinate_reference(Y, sample_weight))
    objective = GradientObjective(model, get_kernels("numpy"), data, options, coordinates)
    flat = coordinates.pack(estimator._params) + 0.3 * rng.standard_normal(coordinates.size)
    analytic = objective.evaluate(flat).gradient
    step = 1e-6
    numeric = np.array([
        (objective.evaluate(flat + step * e, gradient=False).objective
         - objective.evaluate(flat - step * e, gradient=False).objective) / (2 * step)
        for e in np.eye(flat.size)])
    assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7 * np.abs(numeric).max())


# ---------------------------------------------------------------------------
# The estimators


@pytest.mark.parametrize("solver", ["em", "lbfgs"])
@pytest.mark.parametrize("kind", ["regressor", "classifier"])
def test_one_level_tree_is_the_flat_mixture(kind, solver):
    if kind == "regressor":
        X, y, _ = make_moe_regression(n_samples=400, n_features=2, n_experts=3, noise=0.2,
                                      random_state=0)
        flat_class, tree_class = MixtureOfExpertsRegressor, HierarchicalMixtureOfExpertsRegressor
    else:
        X, y, _ = make_moe_classification(n_samples=400, n_features=2, n_experts=3,
                                          n_classes=3, random_state=0)
        flat_class, tree_class = (MixtureOfExpertsClassifier,
                                  HierarchicalMixtureOfExpertsClassifier)
    settings = dict(solver=solver, n_init=2, random_state=0, max_iter=60)
    flat = _quiet(flat_class(3, **settings).fit, X, y)
    tree = _quiet(tree_class((3,), **settings).fit, X, y)
    # the same model from the same start; the flat one takes fused kernels,
    # the tree the composition: equal up to rounding
    assert tree.n_iter_ == flat.n_iter_
    assert tree.log_likelihood_ == pytest.approx(flat.log_likelihood_, rel=1e-9)
    assert_allclose(tree.node_coef_[0][0], flat.gate_coef_, rtol=1e-6, atol=1e-9)
    assert_allclose(tree.node_intercept_[0][0], flat.gate_intercept_, rtol=1e-6, atol=1e-9)
    assert_allclose(tree.expert_coef_, flat.expert_coef_, rtol=1e-6, atol=1e-9)
    assert_allclose(tree.predict_gate(X), flat.predict_gate(X), rtol=1e-6, atol=1e-9)


def _two_level_problem(n, seed):
    """Data from a known (2, 2) tree whose leaf regions no flat softmax of 4 can draw.

    The root splits on x1; its left child splits on x2 at +1.5, its right
    child at -1.5: the four regions meet along x1 = 0 in a step, which the
    argmax of four linear functions cannot produce.
    """
    rng = np.random.default_rng(seed)
    X = rng.uniform(-3, 3, size=(n, 2))
    sharp = 6.0

    def sigmoid(z):
        return 1.0 / (1.0 + np.exp(-z))

    right = sigmoid(sharp * X[:, 0])
    upper_left, upper_right = sigmoid(sharp * (X[:, 1] - 1.5)), sigmoid(sharp * (X[:, 1] + 1.5))
    gate = np.column_stack([(1 - right) * (1 - upper_left), (1 - right) * upper_left,
                            right * (1 - upper_right), right * upper_right])
    coef = np.array([[1.0, 2.0], [-2.0, 1.0], [0.5, -1.5], [-1.0, -2.0]])
    intercept = np.array([0.0, 3.0, -3.0, 1.0])
    noise = 0.2
    means = X @ coef.T + intercept
    leaf = np.array([rng.choice(4, p=p) for p in gate])
    y = means[np.arange(n), leaf] + noise * rng.standard_normal(n)
    log_density = np.log(np.sum(gate * np.exp(-0.5 * ((y[:, None] - means) / noise) ** 2), axis=1)
                         / (np.sqrt(2 * np.pi) * noise))
    return X, y, log_density, np.sum(gate * means, axis=1)


def test_two_level_tree_recovers_a_known_tree_where_a_flat_mixture_falls_short():
    X, y, true_log_density, _ = _two_level_problem(3000, seed=0)
    X_test, y_test, _, true_mean_test = _two_level_problem(3000, seed=1)
    tree = HierarchicalMixtureOfExpertsRegressor((2, 2), n_init=8, random_state=0).fit(X, y)
    flat = MixtureOfExpertsRegressor(4, n_init=8, random_state=0).fit(X, y)
    # measured: tree 0.02406 per sample, truth 0.02021, flat 0.00229
    assert tree.log_likelihood_ >= true_log_density.mean() - 0.01
    true_r2 = r2_score(y_test, true_mean_test)
    tree_r2, flat_r2 = tree.score(X_test, y_test), flat.score(X_test, y_test)
    # measured: truth 0.91037, tree 0.90992, flat 0.90024
    assert tree_r2 >= 0.97 * true_r2
    assert flat_r2 < tree_r2 - 0.005
    assert flat.log_likelihood_ < tree.log_likelihood_ - 0.01


def test_one_level_tree_reaches_mixtools_on_the_tone_data():
    data = np.loadtxt(DATA / "tonedata.csv", delimiter=",", skiprows=1)
    X, y = data[:, :1], data[:, 1]
    # as many starts as the reference's 50; alpha=0: the unpenalised MLE
    est = HierarchicalMixtureOfExpertsRegressor((2,), alpha=0.0, n_init=50, max_iter=3000,
                                                tol=1e-10, random_state=0).fit(X, y)
    total = est.log_likelihood_ * len(y)
    # measured: 145.650315 (mixtools 145.650315)
    assert total >= MIXTOOLS_TONEDATA_LOG_LIKELIHOOD - 1e-5


def test_node_gates_multiply_to_the_leaf_gate():
    X, y, _ = make_moe_regression(n_samples=300, n_features=2, n_experts=6, random_state=3)
    est = _quiet(HierarchicalMixtureOfExpertsRegressor((2, 3), random_state=0).fit, X, y)
    root, children = est.predict_node_gates(X[:20])
    assert root.shape == (20, 1, 2) and children.shape == (20, 2, 3)
    assert_allclose(root.sum(axis=2), 1.0)
    assert_allclose(children.sum(axis=2), 1.0)
    leaves = (root[:, 0, :, None] * children).reshape(20, 6)
    assert_allclose(leaves, est.predict_gate(X[:20]), rtol=1e-10)
    assert [c.shape for c in est.node_coef_] == [(1, 2, 2), (2, 3, 2)]
    assert [c.shape for c in est.node_intercept_] == [(1, 2), (2, 3)]


@pytest.mark.parametrize("gating, top_k", [("soft", None), ("soft", 2), ("hard", None)])
def test_every_gating_mode_and_prediction_method(gating, top_k):
    X, y, _ = make_moe_regression(n_samples=300, n_features=2, n_experts=4, random_state=0)
    est = _quiet(HierarchicalMixtureOfExpertsRegressor(
        (2, 2), gating=gating, top_k=top_k, random_state=0).fit, X, y)
    mean, std = est.predict(X, return_std=True)
    assert mean.shape == std.shape == (300,) and np.all(std > 0)
    assert est.predict_experts(X).shape == (300, 4)
    resp = est.predict_responsibilities(X, y)
    assert_allclose(resp.sum(axis=1), 1.0)
    assert np.isfinite(est.bic(X, y)) and est.aic(X, y) < est.bic(X, y)
    assert est.icl(X, y) >= est.bic(X, y) - 1e-9


def test_classifier_fits_and_predicts():
    X, y, _ = make_moe_classification(n_samples=400, n_features=2, n_experts=4, n_classes=3,
                                      random_state=0)
    est = _quiet(HierarchicalMixtureOfExpertsClassifier((2, 2), random_state=0).fit, X, y)
    proba = est.predict_proba(X)
    assert proba.shape == (400, 3)
    assert_allclose(proba.sum(axis=1), 1.0)
    assert est.score(X, y) > 0.6
    assert est.expert_coef_.shape[0] == 4


def test_sample_weight_warm_start_pickle_and_clone():
    X, y, _ = make_moe_regression(n_samples=300, n_features=2, n_experts=4, random_state=0)
    weight = np.random.default_rng(0).integers(1, 3, size=300)
    est = _quiet(HierarchicalMixtureOfExpertsRegressor((2, 2), random_state=0).fit, X, y,
                 sample_weight=weight)
    repeated = _quiet(HierarchicalMixtureOfExpertsRegressor((2, 2), random_state=0).fit,
                      np.repeat(X, weight, axis=0), np.repeat(y, weight))
    assert est.log_likelihood_ == pytest.approx(repeated.log_likelihood_, rel=1e-6)
    restored = pickle.loads(pickle.dumps(est))
    assert_allclose(restored.predict(X), est.predict(X))
    assert clone(est).get_params() == est.get_params()
    # a warm start continues a fit at fixed penalties (alpha="auto" chooses them again)
    est.set_params(alpha=1e-4)
    _quiet(est.fit, X, y, sample_weight=weight)
    before = est.log_likelihood_
    est.set_params(warm_start=True, max_iter=5)
    _quiet(est.fit, X, y, sample_weight=weight)
    assert est.log_likelihood_ >= before - 1e-9


def test_what_a_tree_refuses():
    X, y, _ = make_moe_regression(n_samples=200, n_features=2, n_experts=4, random_state=0)
    est = _quiet(HierarchicalMixtureOfExpertsRegressor((2, 2), random_state=0).fit, X, y)
    est.set_params(warm_start=True, branching=(4,))
    with pytest.raises(ValueError, match=r"warm_start needs the tree of the previous fit"):
        est.fit(X, y)
    with pytest.raises(ValueError, match="Standard errors are not derived"):
        est.summary(X, y)
    for bad in [(), (2, 0), "ab", (2, True), 2.5]:
        with pytest.raises(ValueError, match="branching"):
            HierarchicalMixtureOfExpertsRegressor(bad).fit(X, y)
    with pytest.raises(ValueError, match="solver"):
        HierarchicalMixtureOfExpertsRegressor(solver="adam").fit(X, y)
    assert not hasattr(HierarchicalMixtureOfExpertsRegressor(), "partial_fit")
    # an int is a one-level tree
    assert HierarchicalMixtureOfExpertsRegressor(branching=3).n_experts == 3


def test_plot_node_gates_draws_one_row_per_level_and_the_leaves():
    plt = pytest.importorskip("matplotlib.pyplot")
    from mixexp.plotting import plot_node_gates

    X, y, _ = make_moe_regression(n_samples=200, n_features=1, n_experts=4, random_state=0)
    est = _quiet(HierarchicalMixtureOfExpertsRegressor((2, 2), random_state=0).fit, X, y)
    axes = plot_node_gates(est, X, n_points=50)
    assert len(axes) == 3
    assert len(axes[0].lines) == 2 and len(axes[1].lines) == 4 and len(axes[2].lines) == 4
    # the root's two curves add up to 1 everywhere
    assert_allclose(axes[0].lines[0].get_ydata() + axes[0].lines[1].get_ydata(), 1.0)
    flat = MixtureOfExpertsRegressor(2, random_state=0).fit(X, y)
    with pytest.raises(TypeError, match="plot_gate"):
        plot_node_gates(flat, X)
    with pytest.raises(ValueError, match="1-feature"):
        plot_node_gates(est, np.c_[X, X])
    plt.close("all")


def test_vanished_leaves_are_reported_without_promising_a_revival():
    X, y, _ = make_moe_regression(n_samples=200, n_features=1, n_experts=4, random_state=0)
    est = _quiet(HierarchicalMixtureOfExpertsRegressor((2, 2), random_state=0).fit, X, y)
    with pytest.warns(ConvergenceWarning, match=r"indices \[2, 3\].*fixed shape.*smaller "
                                                r"branching"):
        est._warn_vanished_experts(np.array([0.5, 0.5, 0.0, 0.0]))


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 1e-5)],
                         ids=["float64", "float32"])
@pytest.mark.parametrize("branching", [(3,), (2, 2), (2, 3, 2), (1, 4)])
def test_numba_tree_log_gate_matches_the_reference_composition(branching, dtype, rtol):
    kernels = get_kernels("numba")
    rng = np.random.default_rng(len(branching))
    gate = TreeGate(0.0, branching)
    n_leaves = int(np.prod(branching))
    params = gate.neutral(n_leaves, 7)
    for key in params:
        params[key] = 2.0 * rng.normal(size=params[key].shape)
    # several blocks and threads' worth of rows, and a row of extreme logits
    X = rng.normal(size=(70_001, 7)).astype(dtype)
    X[0] = 300.0
    fused = gate.log_prior(kernels, X, params)
    composed = gate.log_prior(get_kernels("numpy"), X, params)  # the reference, node by node
    assert fused.shape == (70_001, n_leaves) and fused.dtype == np.float64
    assert_allclose(fused, composed, rtol=rtol, atol=rtol)
    out = np.empty((70_001, n_leaves), dtype=dtype)
    assert gate.log_prior(kernels, X, params, out=out) is out
    assert_allclose(out, composed.astype(dtype), rtol=max(rtol, 1e-6), atol=1e-5)


def test_tree_gates_on_their_own_columns_and_poisson_leaves():
    rng = np.random.default_rng(0)
    n = 1500
    z = rng.uniform(-3, 3, size=(n, 1))  # the gate's column
    x = rng.normal(size=(n, 1))  # the experts'
    region = (z[:, 0] > 0).astype(int) * 2 + (z[:, 0] > 1.5 * np.sign(z[:, 0])).astype(int)
    slopes, intercepts = np.array([1.0, -1.0, 0.5, -0.5]), np.array([0.5, 1.5, 1.0, 2.0])
    rate = np.exp(intercepts[region] + slopes[region] * x[:, 0])
    counts = rng.poisson(rate)
    X = np.c_[x, z]
    est = _quiet(HierarchicalMixtureOfExpertsRegressor(
        (2, 2), expert="poisson", gate_features=[1], expert_features=[0], n_init=4,
        random_state=0).fit, X, counts)
    # the gates see z alone, the experts x alone
    assert [c.shape for c in est.node_coef_] == [(1, 2, 1), (2, 2, 1)]
    assert est.expert_coef_.shape == (4, 1)
    # the four regimes' slopes are recovered (in some order)
    assert_allclose(np.sort(est.expert_coef_.ravel()), np.sort(slopes), atol=0.15)
    with pytest.raises(ValueError, match="expert_features"):
        HierarchicalMixtureOfExpertsRegressor(expert_features=[5]).fit(X, counts)


# measured (min usage, CV^2 of usage, mean log-likelihood), free -> balance=0.3:
# EM (0.0528, 0.145, 0.7715) -> (0.1364, 0.036, 0.7658); L-BFGS (0.0000, 0.808,
# 0.7552) -> (0.1342, 0.037, 0.7673)
@pytest.mark.parametrize("solver", ["em", "lbfgs"])
def test_load_balancing_evens_the_leaves_usage(solver):
    # 3 true regimes, 6 leaves: without balancing some leaves starve
    X, y, _ = make_moe_regression(n_samples=800, n_features=2, n_experts=3, noise=0.1,
                                  gate_strength=8.0, random_state=1)
    settings = dict(branching=(2, 3), solver=solver, max_iter=2000, random_state=0)
    # (L-BFGS starves one leaf entirely, and says so)
    free = _quiet(HierarchicalMixtureOfExpertsRegressor(**settings).fit, X, y)
    balanced = HierarchicalMixtureOfExpertsRegressor(balance=0.3, **settings).fit(X, y)

    def squared_cv(usage):
        return 6 * np.sum(usage**2) - 1

    assert balanced.expert_usage_.min() > 0.12
    assert squared_cv(balanced.expert_usage_) < squared_cv(free.expert_usage_) / 3
    assert balanced.log_likelihood_ > free.log_likelihood_ - 0.03  # a small price, if any
