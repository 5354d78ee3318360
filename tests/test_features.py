"""gate_features / expert_features: the gate and the experts on their own columns.

flexmix's concomitant variables: the gate sees some columns (z), the experts
others (x). Without a selection (or with one of every column in order) a fit
is bit-identical to one without the parameters.
"""

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone

from mixexp import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from mixexp.datasets import make_moe_classification, make_moe_regression

FITTED = ("gate_coef_", "gate_intercept_", "expert_coef_", "expert_intercept_",
          "objective_history_")


def _concomitant_data(n=3000, seed=0):
    """Gate on z (column 2), linear experts on x (columns 0, 1); known truth."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    z = rng.normal(size=n)
    truth = {"gate_coef": np.array([-2.0, 2.0]), "gate_intercept": np.array([0.5, -0.5]),
             "coef": np.array([[1.0, -1.0], [-2.0, 0.5]]), "intercept": np.array([3.0, -1.0]),
             "std": np.array([0.3, 0.5])}
    logits = np.outer(z, truth["gate_coef"]) + truth["gate_intercept"]
    g = np.exp(logits - logits.max(axis=1, keepdims=True))
    g /= g.sum(axis=1, keepdims=True)
    expert = (rng.uniform(size=n) < g[:, 1]).astype(int)
    y = (np.sum(x * truth["coef"][expert], axis=1) + truth["intercept"][expert]
         + truth["std"][expert] * rng.normal(size=n))
    return np.column_stack([x, z]), y, truth


# short runs: whether they converged is not the point
NOT_CONVERGED = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@NOT_CONVERGED
@pytest.mark.parametrize("solver", ["em", "lbfgs", "adam"])
def test_every_column_selected_is_the_fit_without_a_selection(solver):
    X, y, _ = make_moe_regression(n_samples=300, n_features=3, n_experts=2, noise=0.2,
                                  random_state=0)
    kwargs = dict(n_experts=2, solver=solver, n_init=2, max_iter=30, random_state=0)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    for selection, data in [(dict(gate_features=[0, 1, 2], expert_features=None), X),
                            (dict(gate_features=[True] * 3, expert_features=[0, 1, 2]), X),
                            (dict(gate_features=["a", "b", "c"],
                                  expert_features=["a", "b", "c"]), frame)]:
        # (a DataFrame's memory layout may differ from X's: compared with its own fit)
        reference = MixtureOfExpertsRegressor(**kwargs).fit(data, y)
        est = MixtureOfExpertsRegressor(**kwargs, **selection).fit(data, y)
        for name in FITTED:
            assert_array_equal(getattr(est, name), getattr(reference, name), err_msg=name)


def test_classifier_every_column_selected_is_the_fit_without_a_selection():
    X, y, _ = make_moe_classification(n_samples=300, n_features=2, n_experts=2,
                                      random_state=0)
    reference = MixtureOfExpertsClassifier(2, random_state=0).fit(X, y)
    est = MixtureOfExpertsClassifier(2, random_state=0, gate_features=[0, 1],
                                     expert_features=[True, True]).fit(X, y)
    for name in FITTED:
        assert_array_equal(getattr(est, name), getattr(reference, name), err_msg=name)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_gate_on_z_and_experts_on_x_recover_the_truth(backend):
    X, y, truth = _concomitant_data()
    est = MixtureOfExpertsRegressor(2, gate_features=[2], expert_features=[0, 1], n_init=3,
                                    backend=backend, random_state=0).fit(X, y)
    assert est.gate_coef_.shape == (2, 1) and est.expert_coef_.shape == (2, 2)
    order = np.argsort(est.expert_intercept_)[::-1]  # truth: intercepts 3 and -1
    assert_allclose(est.expert_coef_[order], truth["coef"], atol=0.06)
    assert_allclose(est.expert_intercept_[order], truth["intercept"], atol=0.06)
    assert_allclose(np.sqrt(est.expert_variance_[order]), truth["std"], atol=0.03)
    # the gate's logit difference is identified (the softmax's shift is not)
    slope = est.gate_coef_[order[1], 0] - est.gate_coef_[order[0], 0]
    offset = est.gate_intercept_[order[1]] - est.gate_intercept_[order[0]]
    assert_allclose(slope, 4.0, rtol=0.15)
    assert_allclose(offset, -1.0, atol=0.2)


@NOT_CONVERGED
def test_selected_columns_with_every_option():
    X, y, _ = _concomitant_data(n=600)
    weight = np.random.default_rng(1).uniform(0.5, 2.0, size=y.size)
    common = dict(gate_features=[2], expert_features=[0, 1], random_state=0, max_iter=50,
                  tol=1e-4)
    for options in [dict(solver="lbfgs"), dict(solver="adam", max_iter=5),
                    dict(gating="hard"), dict(top_k=1, n_experts=3), dict(balance=0.1),
                    dict(n_init=3)]:
        est = MixtureOfExpertsRegressor(**{"n_experts": 2, **common, **options})
        est.fit(X, y, sample_weight=weight)
        K = est.gate_intercept_.shape[0]
        assert est.gate_coef_.shape == (K, 1) and est.expert_coef_.shape == (K, 2)
        mean, std = est.predict(X, return_std=True)
        assert mean.shape == std.shape == (y.size,) and np.all(std > 0)
        assert est.predict_gate(X).shape == (y.size, K)
        assert est.predict_experts(X).shape == (y.size, K)
        # BIC counts the gate's (K - 1)(1 + 1) and the experts' K (2 + 2) parameters
        n_parameters = (K - 1) * 2 + K * 4
        assert_allclose(est.bic(X, y), -2 * est.log_likelihood(X, y) * y.size
                        + n_parameters * np.log(y.size))


def test_expert_predictions_depend_on_their_columns_only():
    X, y, _ = _concomitant_data(n=500)
    est = MixtureOfExpertsRegressor(2, gate_features=[2], expert_features=[0, 1],
                                    random_state=0).fit(X, y)
    moved = X.copy()
    moved[:, 2] += 5.0  # the gate's column
    assert_array_equal(est.predict_experts(moved), est.predict_experts(X))
    assert not np.allclose(est.predict_gate(moved), est.predict_gate(X))
    moved = X.copy()
    moved[:, 0] += 5.0  # an expert column
    assert_array_equal(est.predict_gate(moved), est.predict_gate(X))


def test_empty_selections():
    X, y, _ = _concomitant_data(n=800)
    # constant experts gated by x: each predicts its intercept
    est = MixtureOfExpertsRegressor(2, expert_features=[], random_state=0).fit(X, y)
    assert est.expert_coef_.shape == (2, 0)
    assert_allclose(est.predict_experts(X[:3]), np.tile(est.expert_intercept_, (3, 1)))
    # a gate without columns: constant mixing proportions (a mixture of regressions)
    est = MixtureOfExpertsRegressor(2, gate_features=[], expert_features=[0, 1],
                                    random_state=0).fit(X, y)
    assert est.gate_coef_.shape == (2, 0)
    gate = est.predict_gate(X)
    assert_allclose(gate, np.tile(gate[0], (len(X), 1)))
    assert est.bic(X, y) > 0


def test_warm_start_keeps_or_restarts_with_the_selection():
    X, y, _ = _concomitant_data(n=600)
    # (alpha fixed: "auto" would choose other penalties for the grown model, another
    # objective)
    est = MixtureOfExpertsRegressor(2, gate_features=[2], expert_features=[0, 1], alpha=1e-4,
                                    warm_start=True, random_state=0).fit(X, y)
    first = est.objective_history_[-1]
    est.set_params(n_experts=3).fit(X, y)  # grown by a split from the previous fit
    assert est.objective_history_[0] >= first - 1e-3
    assert est.gate_coef_.shape == (3, 1)
    # another selection cannot start from parameters on other columns: a fresh fit
    est.set_params(gate_features=[0, 2])
    est.fit(X, y)
    assert est.gate_coef_.shape == (3, 2)


@NOT_CONVERGED
def test_partial_fit_keeps_its_columns():
    X, y, _ = _concomitant_data(n=600)
    est = MixtureOfExpertsRegressor(2, solver="adam", gate_features=[2],
                                    expert_features=[0, 1], random_state=0)
    for rows in np.array_split(np.arange(600), 3):
        est.partial_fit(X[rows], y[rows])
    assert est.gate_coef_.shape == (2, 1) and est.expert_coef_.shape == (2, 2)
    est.set_params(gate_features=[1])
    with pytest.raises(ValueError, match="gate_features or expert_features changed"):
        est.partial_fit(X[:100], y[:100])


def test_classifier_with_selected_columns():
    X, y, _ = make_moe_classification(n_samples=400, n_features=3, n_experts=2,
                                      random_state=0)
    est = MixtureOfExpertsClassifier(2, gate_features=[0], expert_features=[1, 2],
                                     random_state=0).fit(X, y)
    assert est.gate_coef_.shape == (2, 1)
    assert est.expert_coef_.shape == (2, est.classes_.size, 2)
    proba = est.predict_proba(X)
    assert_allclose(proba.sum(axis=1), 1.0)
    moved = X.copy()
    moved[:, 0] += 3.0  # the gate's column: the experts' probabilities do not move
    assert_array_equal(est.predict_experts(moved), est.predict_experts(X))
    assert_allclose(clone(est).fit(X, y).predict_proba(X), proba)


def test_dataframe_column_names():
    X, y, _ = _concomitant_data(n=500)
    frame = pd.DataFrame(X, columns=["x1", "x2", "z"])
    by_name = MixtureOfExpertsRegressor(2, gate_features=["z"], expert_features=["x1", "x2"],
                                        random_state=0).fit(frame, y)
    by_index = MixtureOfExpertsRegressor(2, gate_features=[2], expert_features=[0, 1],
                                         random_state=0).fit(X, y)
    for name in FITTED:  # (a DataFrame's memory layout may round differently)
        assert_allclose(getattr(by_name, name), getattr(by_index, name), rtol=1e-10)
    # the order given is the order of the fitted columns
    swapped = MixtureOfExpertsRegressor(2, gate_features=["z"], expert_features=["x2", "x1"],
                                        random_state=0).fit(frame, y)
    assert_allclose(swapped.expert_coef_[:, ::-1], by_name.expert_coef_, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("selection, message", [
    (dict(gate_features=[0, 3]), r"gate_features has column indices out of range .* \[3\]"),
    (dict(expert_features=[-1]), r"expert_features has column indices out of range"),
    (dict(gate_features=["a"]), r"gate_features names columns \('a'\), but X has no column"),
    (dict(expert_features=[0, 0]), r"expert_features selects some columns more than once"),
    (dict(gate_features=[True, False]), r"gate_features is a boolean mask of length 2, but "
                                        r"X has 3 columns"),
    (dict(gate_features=[0, "a"]), r"gate_features must hold only integer indices"),
    (dict(gate_features=[[0, 1]]), r"gate_features must be a 1-D list"),
])
def test_bad_selections_are_refused_naming_the_parameter(selection, message):
    X, y, _ = _concomitant_data(n=100)
    with pytest.raises(ValueError, match=message):
        MixtureOfExpertsRegressor(2, **selection).fit(X, y)


def test_unknown_column_names_are_refused():
    X, y, _ = _concomitant_data(n=100)
    frame = pd.DataFrame(X, columns=["x1", "x2", "z"])
    with pytest.raises(ValueError, match=r"gate_features names columns that X does not "
                                         r"have: \['w'\]"):
        MixtureOfExpertsRegressor(2, gate_features=["z", "w"]).fit(frame, y)


def test_inputs_are_not_modified():
    X, y, _ = _concomitant_data(n=200)
    selection = [2]
    X_copy = X.copy()
    MixtureOfExpertsRegressor(2, gate_features=selection, expert_features=[0, 1],
                              random_state=0).fit(X, y)
    assert selection == [2]
    assert_array_equal(X, X_copy)


def test_inference_tables_label_the_selected_columns():
    X, y, _ = _concomitant_data(n=300)
    est = MixtureOfExpertsRegressor(2, gate_features=[2], random_state=0).fit(X, y)
    table = est.summary(X, y)
    assert [t for part, _, t in table.index if part == "gate"] == ["intercept", "x2"]
    assert np.all(np.isfinite(table["std_err"]))
    assert np.isfinite(est.icl(X, y))
