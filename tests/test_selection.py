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
                                    "n_vanished"]
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
