"""select_n_experts (mixexp/_selection.py)."""

import pytest
from sklearn.model_selection import KFold

from mixexp import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor, select_n_experts
from mixexp.datasets import make_moe_classification, make_moe_regression


@pytest.fixture(scope="module")
def two_experts():
    return make_moe_regression(400, 1, 2, noise=0.2, random_state=0)[:2]


@pytest.mark.parametrize("criterion", ["bic", "icl"])
def test_information_criteria_find_the_true_number(two_experts, criterion):
    X, y = two_experts
    template = MixtureOfExpertsRegressor(n_init=3, random_state=0)
    best, scores = select_n_experts(template, X, y, n_experts=[1, 2, 3], criterion=criterion)
    assert best.n_experts == 2 and best.gate_coef_.shape == (2, 1)
    assert scores.index.tolist() == [1, 2, 3]
    assert list(scores.columns) == ["n_parameters", "log_likelihood", "aic", "bic", "icl",
                                    "n_vanished", "rows_per_parameter", "eligible"]
    assert scores["eligible"].all()
    assert scores["n_parameters"].tolist() == [3, 8, 13]
    assert scores.loc[2, "bic"] == pytest.approx(best.bic(X, y))
    assert scores.loc[2, "icl"] == pytest.approx(best.icl(X, y))
    assert scores[criterion].idxmin() == 2
    assert template.n_experts == 3  # the template is cloned, not changed


def test_cross_validation(two_experts):
    X, y = two_experts
    best, scores = select_n_experts(MixtureOfExpertsRegressor(n_init=2, random_state=0), X, y,
                                    n_experts=[1, 2], criterion="cv",
                                    cv=KFold(3, shuffle=True, random_state=0))
    assert best.n_experts == 2
    assert scores["cv_log_likelihood"].idxmax() == 2
    # held-out log-likelihood is below the training one
    n = len(y)
    assert (scores["cv_log_likelihood"] < scores["log_likelihood"] / n + 0.2).all()


def test_classifier():
    X, y, _ = make_moe_classification(400, 2, 2, class_strength=2.0, random_state=0)
    best, scores = select_n_experts(MixtureOfExpertsClassifier(n_init=2, random_state=0),
                                    X, y, n_experts=[1, 2], criterion="aic")
    assert best.n_experts == scores["aic"].idxmin()
    assert scores["n_parameters"].tolist() == [3, 9]


@pytest.mark.parametrize("kwargs, match", [
    ({"criterion": "loo"}, "criterion"),
    ({"n_experts": []}, "n_experts"),
    ({"n_experts": [0, 1]}, "n_experts"),
    ({"n_experts": [2, 2]}, "repeated"),
])
def test_bad_arguments(two_experts, kwargs, match):
    X, y = two_experts
    with pytest.raises(ValueError, match=match):
        select_n_experts(MixtureOfExpertsRegressor(), X, y, **kwargs)


def test_estimator_without_n_experts(two_experts):
    from sklearn.linear_model import Ridge

    X, y = two_experts
    with pytest.raises(ValueError, match="n_experts"):
        select_n_experts(Ridge(), X, y)


def _interpolating_table():
    """30 rows of 8 features: three experts of 10 parameters each can nearly
    interpolate them, and their inflated likelihood wins BIC without the rule."""
    import numpy as np
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 8))
    y = X @ rng.normal(size=8) + rng.normal(scale=1.0, size=30)
    return X, y


def test_rows_per_parameter_rule_refuses_interpolating_candidates():
    X, y = _interpolating_table()
    template = MixtureOfExpertsRegressor(random_state=0)
    unguarded, raw = select_n_experts(template, X, y, n_experts=[1, 2, 3],
                                      min_rows_per_parameter=0)
    best, scores = select_n_experts(template, X, y, n_experts=[1, 2, 3])
    # the rule changes the choice here: BIC alone prefers an interpolating mixture
    assert unguarded.n_experts > 1
    assert best.n_experts == 1
    # each row's figure: the least-used expert's rows over its parameters per row
    assert (scores["eligible"] == (scores["rows_per_parameter"] >= 2.0)).all()
    assert scores.loc[1, "rows_per_parameter"] == pytest.approx(30 / 10)
    assert not scores.loc[unguarded.n_experts, "eligible"]
    assert raw["bic"].tolist() == pytest.approx(scores["bic"].tolist())


def test_rows_per_parameter_counts_a_classifier_label_once():
    X, y = make_moe_classification(300, 2, 2, n_classes=3, random_state=0)[:2]
    best, scores = select_n_experts(MixtureOfExpertsClassifier(random_state=0), X, y,
                                    n_experts=[1])
    # one expert: 300 rows, (3 - 1) classes x (2 + 1) weights and intercepts
    assert scores.loc[1, "rows_per_parameter"] == pytest.approx(300 / 6)


def test_no_eligible_candidate_keeps_the_least_over_parameterised():
    X, y = _interpolating_table()
    best, scores = select_n_experts(MixtureOfExpertsRegressor(random_state=0), X, y,
                                    n_experts=[2, 3], min_rows_per_parameter=50)
    assert not scores["eligible"].any()
    assert best.n_experts == scores["rows_per_parameter"].idxmax()


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "2", True])
def test_min_rows_per_parameter_is_checked(two_experts, bad):
    X, y = two_experts
    with pytest.raises(ValueError, match="min_rows_per_parameter"):
        select_n_experts(MixtureOfExpertsRegressor(), X, y, min_rows_per_parameter=bad)
