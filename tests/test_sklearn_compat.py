"""scikit-learn compatibility: clone, Pipeline, GridSearchCV, pickle (common checks:
tests/test_common_checks.py)."""

import pickle

from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mixexp import MixtureOfExpertsRegressor
from mixexp.datasets import make_moe_regression


def test_pipeline_in_grid_search_selects_true_number_of_experts():
    X, y, _ = make_moe_regression(
        n_samples=600, n_features=2, n_experts=3, noise=0.1, gate_strength=8.0, random_state=0
    )
    pipe = make_pipeline(StandardScaler(), MixtureOfExpertsRegressor(n_init=3, random_state=0))
    search = GridSearchCV(pipe, {"mixtureofexpertsregressor__n_experts": [1, 2, 3]}, cv=3)
    search.fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert search.best_params_["mixtureofexpertsregressor__n_experts"] == 3
    assert search.best_score_ > 0.95
    assert search.best_score_ > scores[0] + 0.2  # far better than one expert


def test_clone_and_pickle_round_trip():
    X, y, _ = make_moe_regression(n_samples=300, random_state=1)
    est = MixtureOfExpertsRegressor(n_experts=3, n_init=2, random_state=0).fit(X, y)
    unfitted = clone(est)
    assert not hasattr(unfitted, "gate_coef_")
    assert unfitted.get_params() == est.get_params()
    restored = pickle.loads(pickle.dumps(est))
    mean, std = est.predict(X, return_std=True)
    mean2, std2 = restored.predict(X, return_std=True)
    assert_allclose(mean2, mean, rtol=0, atol=0)
    assert_allclose(std2, std, rtol=0, atol=0)
    assert restored.log_likelihood(X, y) == est.log_likelihood(X, y)
