"""scikit-learn estimators as experts (``expert=<estimator>``): generalised EM."""

import pickle

import _kernel_harness as HARNESS  # tests/, on the path through conftest.py
import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.metrics import r2_score
from sklearn.neighbors import KNeighborsRegressor
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from mixexp import (
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
    select_n_experts,
)
from mixexp._experts import GaussianExperts
from mixexp._experts._estimator import (
    PROBA_FLOOR,
    EstimatorClassificationExperts,
    EstimatorRegressionExperts,
)
from mixexp._experts._family import user_scale_penalty
from mixexp._experts._gaussian import variance_floor
from mixexp._gates import SoftmaxGate
from mixexp._init import initial_params
from mixexp._kernels import get_kernels
from mixexp._model import MixtureModel
from mixexp._rows import InMemoryRows
from mixexp._solvers import ConvergenceMonitor
from mixexp._solvers._em import _multi_pass
from mixexp._solvers._options import SolverOptions
from mixexp._validation import weighted_mean_and_scale
from mixexp.datasets import make_moe_classification, make_moe_regression

NUMPY = get_kernels("numpy")
NOT_CONVERGED = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _regimes(n, seed):
    """Two regimes split by x1 < 0, each a step function of x2: piecewise constant."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-3.0, 3.0, size=(n, 2))
    left = X[:, 0] < 0
    y = np.where(left, np.where(X[:, 1] > 1.0, 2.0, -1.0),
                 np.where(X[:, 1] > -1.0, -2.0, 1.5))
    return X, y + 0.1 * rng.normal(size=n)


# ---- the generalised EM against the parametric families -------------------------
def _em_iterates(family, X, Y, weight, gate_alpha, resp, n_iter):
    """Multi-pass EM (the estimator experts' EM) from the M-step of ``resp``: the
    objective history and the last parameters."""
    x_mean, x_scale = weighted_mean_and_scale(X, weight)
    rows = InMemoryRows(X, Y, weight, x_mean, x_scale, NUMPY)
    model = MixtureModel(SoftmaxGate(gate_alpha), family)
    neutral = model.neutral(Y, weight, resp.shape[1], X.shape[1])
    params = initial_params(model, NUMPY, rows.whole(), neutral, resp)
    monitor = ConvergenceMonitor("EM iteration", 0.0)
    _multi_pass(model, NUMPY, rows, params, n_iter, monitor, SolverOptions())
    return np.asarray(monitor.objective_history), model, rows


@pytest.mark.parametrize("estimator, alpha", [(LinearRegression(), 0.0), (Ridge(alpha=3.0), 3.0)])
def test_linear_estimator_experts_take_the_gaussian_familys_em_steps(estimator, alpha):
    """Weighted least squares (ridge) experts are the Gaussian family's exact M-step: from
    the same start, every EM iterate has the same objective as expert="gaussian" with the
    matching alpha (Ridge's alpha ||w||^2 counted in the objective as the family's)."""
    X, y, _ = make_moe_regression(n_samples=400, n_features=2, n_experts=3, noise=0.2,
                                  random_state=1)
    Y = y[:, None]
    weight = np.random.default_rng(0).uniform(0.5, 2.0, size=len(y))
    resp = np.random.default_rng(1).dirichlet(np.ones(3), size=len(y))
    x_mean, x_scale = weighted_mean_and_scale(X, weight)
    floor = variance_floor(Y, weight, 1e-6)
    gaussian = GaussianExperts(user_scale_penalty(alpha, x_scale), floor)
    estimators = EstimatorRegressionExperts(estimator, x_mean, x_scale, floor)
    reference, _, _ = _em_iterates(gaussian, X, Y, weight, alpha, resp, 25)
    history, _, _ = _em_iterates(estimators, X, Y, weight, alpha, resp, 25)
    assert np.all(np.diff(history) >= -1e-12 * np.abs(history).max())
    assert history[-1] - history[0] > 0.1  # EM did move
    assert_allclose(history, reference, rtol=1e-9)


@NOT_CONVERGED
def test_linear_regression_experts_equal_gaussian_experts_with_alpha_0():
    """The estimator end to end: the same start (random_state), the same fit."""
    X, y, _ = make_moe_regression(n_samples=500, n_features=2, n_experts=3, noise=0.2,
                                  random_state=2)
    kwargs = dict(n_experts=3, alpha=0.0, tol=1e-10, max_iter=2000, random_state=0)
    gaussian = MixtureOfExpertsRegressor(**kwargs).fit(X, y)
    linear = MixtureOfExpertsRegressor(expert=LinearRegression(), **kwargs).fit(X, y)
    assert_allclose(linear.log_likelihood_, gaussian.log_likelihood_, rtol=1e-7)
    assert_allclose(linear.predict(X), gaussian.predict(X), atol=1e-4)
    assert_allclose(linear.expert_variance_, gaussian.expert_variance_, rtol=1e-4)
    coef = np.array([expert.coef_ for expert in linear.experts_])
    assert_allclose(coef, gaussian.expert_coef_, atol=1e-4)
    assert_allclose([e.intercept_ for e in linear.experts_], gaussian.expert_intercept_,
                    atol=1e-4)


@NOT_CONVERGED
@pytest.mark.parametrize("n_classes", [2, 3])
def test_logistic_regression_experts_match_logistic_experts(n_classes):
    """alpha <-> C = 1 / (2 alpha): LogisticRegression experts fit what expert="logistic"
    (the default) fits with that alpha, for two classes and for more."""
    X, y, _ = make_moe_classification(n_samples=500, n_features=2, n_experts=2,
                                      n_classes=n_classes, random_state=3)
    alpha = 0.5
    kwargs = dict(n_experts=2, alpha=alpha, tol=1e-10, max_iter=3000, random_state=0)
    logistic = MixtureOfExpertsClassifier(**kwargs).fit(X, y)
    estimator = LogisticRegression(C=1.0 / (2.0 * alpha), tol=1e-12, max_iter=10_000)
    experts = MixtureOfExpertsClassifier(expert=estimator, **kwargs).fit(X, y)
    assert_allclose(experts.objective_history_[-1], logistic.objective_history_[-1],
                    rtol=1e-6)
    assert_allclose(experts.predict_proba(X), logistic.predict_proba(X), atol=1e-4)


# ---- what trees add ------------------------------------------------------------
@NOT_CONVERGED
def test_tree_experts_fit_piecewise_constant_regimes_linear_experts_cannot():
    X, y = _regimes(600, seed=0)
    X_test, y_test = _regimes(3000, seed=1)
    kwargs = dict(n_experts=2, gate_features=[0], n_init=3, max_iter=100, random_state=0)
    trees = MixtureOfExpertsRegressor(expert=DecisionTreeRegressor(max_depth=2),
                                      **kwargs).fit(X, y)
    linear = MixtureOfExpertsRegressor(**kwargs).fit(X, y)
    tree_r2 = r2_score(y_test, trees.predict(X_test))
    linear_r2 = r2_score(y_test, linear.predict(X_test))
    assert tree_r2 > 0.95
    assert tree_r2 > linear_r2 + 0.1, (tree_r2, linear_r2)


@NOT_CONVERGED
@pytest.mark.parametrize("estimator, options", [
    (DecisionTreeRegressor(max_depth=3), {}),
    (DecisionTreeRegressor(max_depth=3), {"gating": "hard"}),
    (DecisionTreeRegressor(max_depth=3), {"top_k": 2, "balance": 0.5, "n_init": 2}),
    (Ridge(alpha=10.0), {}),
])
def test_objective_history_never_decreases(estimator, options):
    """The guarded M-step (a clone that fits its weights worse than the expert it
    replaces is dropped) keeps EM monotone for any estimator; the suite's fit check
    (tests/conftest.py) asserts it on every fit, this test states it."""
    X, y = _regimes(400, seed=2)
    est = MixtureOfExpertsRegressor(3, expert=estimator, max_iter=60, random_state=0,
                                    **options).fit(X, y)
    history = est.objective_history_
    assert history.size == est.n_iter_ > 1
    assert np.diff(history).min() >= -1e-12 * np.abs(history).max()


class _WorseEachFit(RegressorMixin, BaseEstimator):
    """Predicts a constant that moves 10 further away with every fit made (any clone)."""

    fits = 0

    def fit(self, X, y, sample_weight=None):
        type(self).fits += 1
        self.value_ = 10.0 * type(self).fits
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        return np.full(X.shape[0], self.value_)


def test_m_step_keeps_the_previous_expert_when_the_new_clone_fits_worse():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(50, 2)), rng.normal(size=(50, 1))
    family = EstimatorRegressionExperts(_WorseEachFit(), np.zeros(2), np.ones(2),
                                        np.array([1e-6]))
    W = rng.uniform(size=(50, 2))
    first = family.m_step(NUMPY, X, Y, W, family.neutral(Y, np.ones(50), 2, 2))
    second = family.m_step(NUMPY, X, Y, W, first)
    assert [e.value_ for e in second["estimator"]] == [e.value_ for e in first["estimator"]]
    # the previous experts' variances are refitted to the weights (the same here)
    assert_allclose(second["variance"], first["variance"])


# ---- classes ---------------------------------------------------------------------
def test_classifier_experts_align_classes_a_clone_did_not_see():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    labels = rng.integers(3, size=60)
    Y = np.eye(3)[labels]
    family = EstimatorClassificationExperts(DecisionTreeClassifier(max_depth=1), np.zeros(2),
                                            np.ones(2), n_classes=3)
    # expert 0 sees only classes 0 and 2 (class 1 rows have no weight at all),
    # expert 1 every class
    W = np.ones((60, 2))
    seen = labels != 1
    fitted = family.m_step(NUMPY, X[seen], Y[seen], W[seen],
                           family.neutral(Y, np.ones(60), 2, 2))
    assert list(fitted["estimator"][0].classes_) == [0, 2]
    log_proba = family.log_proba(NUMPY, X, fitted)
    assert log_proba.shape == (60, 2, 3)
    assert_allclose(log_proba[:, 0, 1], np.log(PROBA_FLOOR))
    proba = fitted["estimator"][0].predict_proba(X)
    assert_allclose(np.exp(log_proba[:, 0, [0, 2]]), np.maximum(proba, PROBA_FLOOR))
    # a row of an unseen class: the floor, finite
    density = family.log_density(NUMPY, X, Y, fitted)
    assert np.all(np.isfinite(density))
    assert_allclose(density[labels == 1, 0], np.log(PROBA_FLOOR))


@NOT_CONVERGED
def test_tree_classifier_experts_with_string_labels_and_weights_near_zero():
    """Each region holds two of three classes: the experts' clones see the third with
    weights near zero; predict_proba follows classes_ and sums to 1."""
    rng = np.random.default_rng(1)
    X = rng.uniform(-2, 2, size=(600, 2))
    left = X[:, 0] < 0
    codes = np.where(left, (X[:, 1] > 0).astype(int), 1 + (X[:, 1] > 0.5))
    y = np.array(["a", "b", "c"])[codes]
    clf = MixtureOfExpertsClassifier(2, expert=DecisionTreeClassifier(max_depth=2),
                                     gate_features=[0], n_init=2, random_state=0).fit(X, y)
    proba = clf.predict_proba(X)
    assert list(clf.classes_) == ["a", "b", "c"]
    assert_allclose(proba.sum(axis=1), 1.0)
    assert clf.score(X, y) > 0.95
    assert clf.predict_experts(X).shape == (600, 2, 3)


# ---- options ------------------------------------------------------------------
@NOT_CONVERGED
def test_predict_return_std_mixes_the_experts_variances():
    X, y = _regimes(300, seed=3)
    est = MixtureOfExpertsRegressor(2, expert=DecisionTreeRegressor(max_depth=2),
                                    max_iter=30, random_state=0).fit(X, y)
    mean, std = est.predict(X, return_std=True)
    gate, means = est.predict_gate(X), est.predict_experts(X)
    assert_allclose(mean, np.sum(gate * means, axis=1))
    expected = np.sum(gate * (est.expert_variance_ + (means - mean[:, None]) ** 2), axis=1)
    assert_allclose(std, np.sqrt(expected))
    assert_allclose(means[:, 1], est.experts_[1].predict(X))


@NOT_CONVERGED
def test_multi_output_targets_and_expert_features():
    X, y = _regimes(300, seed=4)
    Y = np.column_stack([y, -y])
    est = MixtureOfExpertsRegressor(2, expert=DecisionTreeRegressor(max_depth=2),
                                    gate_features=[0], expert_features=[1], max_iter=30,
                                    random_state=0).fit(X, Y)
    assert est.expert_variance_.shape == (2, 2)
    assert est.predict(X).shape == (300, 2)
    assert all(expert.n_features_in_ == 1 for expert in est.experts_)
    # each target has its own noise: every expert's second target is the first negated
    means = est.predict_experts(X)
    assert means.shape == (300, 2, 2)
    assert_allclose(means[:, :, 1], -means[:, :, 0])
    assert_allclose(est.expert_variance_[:, 1], est.expert_variance_[:, 0])


@NOT_CONVERGED
def test_sample_weight_as_repetition_for_least_squares_experts():
    X, y, _ = make_moe_regression(n_samples=200, n_features=2, n_experts=2, noise=0.2,
                                  random_state=5)
    counts = np.random.default_rng(0).integers(0, 3, size=len(y))
    kwargs = dict(n_experts=2, expert=LinearRegression(), tol=1e-10, max_iter=500,
                  random_state=0)
    weighted = MixtureOfExpertsRegressor(**kwargs).fit(X, y, sample_weight=counts)
    repeated = MixtureOfExpertsRegressor(**kwargs).fit(np.repeat(X, counts, axis=0),
                                                       np.repeat(y, counts))
    assert_allclose(weighted.predict(X), repeated.predict(X), atol=1e-6)


@NOT_CONVERGED
def test_warm_start_refits_from_the_stored_clones_and_grows_regressors():
    X, y = _regimes(400, seed=5)
    est = MixtureOfExpertsRegressor(2, expert=DecisionTreeRegressor(max_depth=2),
                                    max_iter=40, random_state=0).fit(X, y)
    before = est.objective_history_[-1]
    est.set_params(warm_start=True).fit(X, y)
    assert est.objective_history_[0] >= before - 1e-12 * abs(before)
    est.set_params(n_experts=3).fit(X, y)
    assert len(est.experts_) == 3 and est.expert_variance_.shape == (3,)


@NOT_CONVERGED
def test_warm_start_refuses_to_grow_classifier_estimator_experts():
    X, y, _ = make_moe_classification(n_samples=200, n_features=2, n_experts=2,
                                      random_state=0)
    clf = MixtureOfExpertsClassifier(2, expert=LogisticRegression(), max_iter=20,
                                     random_state=0).fit(X, y)
    clf.set_params(warm_start=True, n_experts=3)
    with pytest.raises(ValueError, match="cannot grow classifier estimator experts"):
        clf.fit(X, y)


@NOT_CONVERGED
def test_fitted_experts_pickle():
    X, y = _regimes(200, seed=6)
    est = MixtureOfExpertsRegressor(2, expert=DecisionTreeRegressor(max_depth=2),
                                    max_iter=20, random_state=0).fit(X, y)
    loaded = pickle.loads(pickle.dumps(est))
    assert_allclose(loaded.predict(X, return_std=True), est.predict(X, return_std=True))


@NOT_CONVERGED
def test_skops_lists_the_clones_types_to_trust():
    sio = pytest.importorskip("skops.io")
    X, y = _regimes(200, seed=6)
    est = MixtureOfExpertsRegressor(2, expert=DecisionTreeRegressor(max_depth=2),
                                    max_iter=20, random_state=0).fit(X, y)
    dumped = sio.dumps(est)
    untrusted = sio.get_untrusted_types(data=dumped)
    assert "sklearn.tree._tree.Tree" in untrusted
    loaded = sio.loads(dumped, trusted=untrusted)
    assert_allclose(loaded.predict(X), est.predict(X))


@NOT_CONVERGED
def test_bic_counts_linear_experts_and_refuses_trees():
    X, y, _ = make_moe_regression(n_samples=200, n_features=2, n_experts=2, random_state=0)
    kwargs = dict(n_experts=2, alpha=0.0, max_iter=50, random_state=0)
    gaussian = MixtureOfExpertsRegressor(**kwargs).fit(X, y)
    linear = MixtureOfExpertsRegressor(expert=LinearRegression(), **kwargs).fit(X, y)
    assert linear._n_parameters() == gaussian._n_parameters()
    trees = MixtureOfExpertsRegressor(expert=DecisionTreeRegressor(max_depth=2),
                                      **kwargs).fit(X, y)
    for criterion in (trees.bic, trees.aic, trees.icl):
        with pytest.raises(ValueError, match="DecisionTreeRegressor experts is not defined"):
            criterion(X, y)
    with pytest.raises(ValueError, match="DecisionTreeRegressor experts is not defined"):
        select_n_experts(trees, X, y, n_experts=[1, 2])
    with pytest.raises(ValueError, match="not available"):
        trees.summary(X, y)


# ---- bad input -------------------------------------------------------------------
class _NotCloneable:
    def fit(self, X, y, sample_weight=None):
        return self

    def predict(self, X):
        return np.zeros(len(X))


@pytest.mark.parametrize("estimator_class, expert, match", [
    (MixtureOfExpertsRegressor, KNeighborsRegressor(),
     "KNeighborsRegressor does not accept sample_weight"),
    (MixtureOfExpertsRegressor, DecisionTreeClassifier(),
     "DecisionTreeClassifier is a classifier"),
    (MixtureOfExpertsClassifier, DecisionTreeRegressor(),
     "DecisionTreeRegressor is a regressor"),
    (MixtureOfExpertsClassifier, LinearSVC(), "LinearSVC has no predict_proba"),
    (MixtureOfExpertsRegressor, _NotCloneable(), "_NotCloneable cannot be cloned"),
])
def test_unusable_estimators_are_refused(estimator_class, expert, match):
    X, y, _ = make_moe_classification(n_samples=50, n_features=2, n_experts=2,
                                      random_state=0)
    with pytest.raises(ValueError, match=match):
        estimator_class(2, expert=expert).fit(X, y)


@pytest.mark.parametrize("solver", ["lbfgs", "adam"])
@pytest.mark.parametrize("estimator_class, expert", [
    (MixtureOfExpertsRegressor, LinearRegression()),
    (MixtureOfExpertsClassifier, LogisticRegression()),
])
def test_gradient_solvers_are_refused(estimator_class, expert, solver):
    X, y, _ = make_moe_classification(n_samples=50, n_features=2, n_experts=2,
                                      random_state=0)
    with pytest.raises(ValueError, match="trained by generalised EM only"):
        estimator_class(2, expert=expert, solver=solver).fit(X, y)


@NOT_CONVERGED
def test_hierarchical_regressor_and_plot_experts_take_estimator_experts():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mixexp import HierarchicalMixtureOfExpertsRegressor
    from mixexp.plotting import plot_experts

    X, y = _regimes(300, seed=7)
    tree = HierarchicalMixtureOfExpertsRegressor(
        branching=(2, 2), expert=DecisionTreeRegressor(max_depth=2), max_iter=30,
        random_state=0).fit(X, y)
    assert len(tree.experts_) == 4 and tree.score(X, y) > 0.9
    flat = MixtureOfExpertsRegressor(2, expert=DecisionTreeRegressor(max_depth=2),
                                     max_iter=30, random_state=0).fit(X[:, :1], y)
    ax = plot_experts(flat, X[:, :1], y)
    assert len(ax.get_lines()) == 3  # two experts and the mean
    plt.close("all")


@NOT_CONVERGED
def test_pipeline_experts_weight_their_final_step():
    """Quadratic experts as a Pipeline: the feature map is fitted unweighted, the final
    LinearRegression with the responsibilities; the same as the Gaussian family on
    the expanded features (a map of x alone: no fitted state)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures

    rng = np.random.default_rng(8)
    x = rng.uniform(-2, 2, size=300)
    y = np.where(x < 0, x**2, 2.0 - x**2) + 0.1 * rng.normal(size=300)
    kwargs = dict(n_experts=2, alpha=0.0, gate_features=[0], tol=1e-10, max_iter=1000,
                  random_state=0)
    pipeline = make_pipeline(PolynomialFeatures(2, include_bias=False), LinearRegression())
    quadratic = MixtureOfExpertsRegressor(expert=pipeline, expert_features=[0],
                                          **kwargs).fit(x[:, None], y)
    X2 = np.column_stack([x, x**2])
    gaussian = MixtureOfExpertsRegressor(expert_features=[0, 1], **kwargs).fit(X2, y)
    assert_allclose(quadratic.log_likelihood_, gaussian.log_likelihood_, rtol=1e-7)
    assert_allclose(quadratic.predict(x[:, None]), gaussian.predict(X2), atol=1e-4)
    with pytest.raises(ValueError, match="KNeighborsRegressor does not accept"):
        MixtureOfExpertsRegressor(expert=make_pipeline(PolynomialFeatures(),
                                                       KNeighborsRegressor())).fit(X2, y)


# ---- CuPy (emulated): the clones run on host copies, the rest on the device ----------
@pytest.fixture
def emulated_cupy(tmp_path_factory, monkeypatch):
    import shutil
    import sys

    from mixexp._kernels import _CACHE

    if shutil.which("g++") is None:
        pytest.skip("no g++ to run the CUDA source on the host")
    emulation = HARNESS.load_emulation()
    fake = emulation.emulated_cupy(tmp_path_factory.mktemp("cuda_on_host"), one_thread=True)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setitem(sys.modules, "mixexp._kernels._cupy", emulation.load_cupy_kernels(fake))
    saved = _CACHE.pop("cupy", None)
    yield fake
    _CACHE.pop("cupy", None)
    if saved is not None:
        _CACHE["cupy"] = saved


@NOT_CONVERGED
@pytest.mark.parametrize("kind", ["regressor", "classifier", "trees"])
def test_emulated_cupy_fit_equals_the_numpy_fit(emulated_cupy, kind):
    """Linear experts (continuous in the weights) give the NumPy fit to rounding. A
    tree's split may flip between two nearly equal candidates when the weights
    differ in the last digits, so tree experts are compared loosely."""
    rtol = 1e-3 if kind == "trees" else 1e-8
    if kind != "classifier":
        X, y = _regimes(300, seed=9)
        expert = DecisionTreeRegressor(max_depth=2) if kind == "trees" else LinearRegression()
        make = lambda **kw: MixtureOfExpertsRegressor(
            2, expert=expert, max_iter=20, random_state=0, **kw)
    else:
        X, y, _ = make_moe_classification(n_samples=300, n_features=2, n_experts=2,
                                          random_state=0)
        make = lambda **kw: MixtureOfExpertsClassifier(
            2, expert=LogisticRegression(), max_iter=20, random_state=0, **kw)
    reference = make(backend="numpy").fit(X, y)
    device = make(backend="cupy").fit(emulated_cupy.asarray(X), emulated_cupy.asarray(y))
    assert device.n_iter_ == reference.n_iter_
    assert_allclose(device.objective_history_, reference.objective_history_, rtol=rtol)
    out = device.predict_experts(emulated_cupy.asarray(X))
    assert isinstance(out, emulated_cupy.ndarray)
    if kind != "trees":
        assert_allclose(emulated_cupy.asnumpy(out), reference.predict_experts(X), rtol=rtol,
                        atol=1e-12)


# ---- the family protocol (as tests/test_conformance.py checks the parametric ones) ----
def _family(kind):
    rng = np.random.default_rng(10)
    X = rng.normal(size=(200, 2))
    if kind == "regressor":
        Y = np.column_stack([np.sign(X[:, 0]) + 0.3 * rng.normal(size=200),
                             X[:, 1] ** 2 + 0.3 * rng.normal(size=200)])
        family = EstimatorRegressionExperts(DecisionTreeRegressor(max_depth=2), np.zeros(2),
                                            np.ones(2), np.full(2, 1e-6))
    else:
        Y = np.eye(3)[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)]
        family = EstimatorClassificationExperts(DecisionTreeClassifier(max_depth=2),
                                                np.zeros(2), np.ones(2), n_classes=3)
    return family, X, Y, rng


@pytest.mark.parametrize("kind", ["regressor", "classifier"])
def test_m_step_never_lowers_the_expected_objective(kind):
    """Q(new) >= Q(old) under the same weights, for weights that keep changing."""
    family, X, Y, rng = _family(kind)
    experts = family.m_step(NUMPY, X, Y, rng.dirichlet(np.ones(3), size=200),
                            family.neutral(Y, np.ones(200), 3, 2))
    for _ in range(10):
        W = rng.dirichlet(np.ones(3), size=200) * rng.uniform(0.5, 2.0, size=(200, 1))

        def objective(experts, W=W):
            return (float(np.sum(W * family.log_density(NUMPY, X, Y, experts)))
                    - family.penalty(experts))

        new = family.m_step(NUMPY, X, Y, W, experts)
        assert objective(new) >= objective(experts) - 1e-9 * abs(objective(experts))
        experts = new


@pytest.mark.parametrize("kind", ["regressor", "classifier"])
def test_user_scale_round_trip_take_and_split(kind):
    family, X, Y, rng = _family(kind)
    experts = family.m_step(NUMPY, X, Y, rng.dirichlet(np.ones(3), size=200),
                            family.neutral(Y, np.ones(200), 3, 2))
    public = family.to_user(experts, np.zeros(2), np.ones(2))
    back = family.from_user(public, 3, np.zeros(2), np.ones(2))
    assert_allclose(family.log_density(NUMPY, X, Y, back),
                    family.log_density(NUMPY, X, Y, experts))
    taken = family.take(experts, np.array([2, 0]))
    assert_allclose(family.log_density(NUMPY, X, Y, taken),
                    family.log_density(NUMPY, X, Y, experts)[:, [2, 0]])
    grown = family.split(experts, 1, np.random.default_rng(0))
    density = family.log_density(NUMPY, X, Y, grown)
    assert density.shape == (200, 4)
    # the halves are expert 1 up to the symmetry-breaking step (regressors: the noise)
    assert_allclose(density[:, [1, 3]], density[:, [1, 1]], rtol=0.03, atol=0.02)
    assert_allclose(density[:, [0, 2]], family.log_density(NUMPY, X, Y, experts)[:, [0, 2]])
    if kind == "regressor":
        assert not np.allclose(density[:, 1], density[:, 3])
