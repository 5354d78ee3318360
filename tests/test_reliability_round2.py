"""Reliability, round 2 (issue 17): parameters, extreme inputs, threads, plots, scorers."""

import numpy as np
import pytest

from mixexp import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor

ESTIMATORS = [MixtureOfExpertsRegressor, MixtureOfExpertsClassifier]
INTEGER_PARAMETERS = ["n_experts", "top_k", "batch_size", "n_iter_no_change", "max_iter",
                      "n_init"]


def small_problem(estimator_class, n=40, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 2))
    y = rng.normal(size=n) if estimator_class is MixtureOfExpertsRegressor else rng.randint(0, 2, n)
    return X, y


# ---- integer parameters refuse booleans ------------------------------------
@pytest.mark.parametrize("estimator_class", ESTIMATORS)
@pytest.mark.parametrize("name", INTEGER_PARAMETERS)
@pytest.mark.parametrize("value", [True, False, np.True_])
def test_boolean_integer_parameter_is_refused_by_name(estimator_class, name, value):
    # bool is an Integral in Python, so scikit-learn's Interval(Integral) would let it in
    X, y = small_problem(estimator_class)
    with pytest.raises(ValueError, match=rf"'{name}' parameter of {estimator_class.__name__} "
                                         r"must be an int .*\(not a bool\)"):
        estimator_class(**{name: value}).fit(X, y)


def test_numpy_integer_parameters_are_still_accepted():
    X, y = small_problem(MixtureOfExpertsRegressor)
    est = MixtureOfExpertsRegressor(n_experts=np.int64(1), max_iter=np.int32(50), n_init=1)
    assert est.fit(X, y).gate_intercept_.shape == (1,)
