"""The gradient solvers' objective as one pass over rows (RowsObjective, used for
rows held on a cluster) equals the whole-data GradientObjective."""

import warnings

import numpy as np
from numpy.testing import assert_allclose
from sklearn.exceptions import ConvergenceWarning

from mixexp import MixtureOfExpertsRegressor
from mixexp._kernels import get_kernels
from mixexp._rows import InMemoryRows
from mixexp._solvers import SolverOptions
from mixexp._solvers._gradient import GradientObjective, RowsObjective
from mixexp.datasets import make_moe_regression


def test_rows_objective_equals_the_whole_data_objective():
    rng = np.random.default_rng(0)
    X, y, _ = make_moe_regression(n_samples=300, n_features=3, n_experts=3, random_state=0)
    Y = np.c_[y, 2 * y + rng.standard_normal(300)]  # two targets
    sample_weight = rng.uniform(0.5, 2.0, X.shape[0])
    estimator = MixtureOfExpertsRegressor(3, alpha=0.3, max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(X, Y, sample_weight=sample_weight)
    model, kernels = estimator._fitted_model, get_kernels("numpy")
    # chunks of 64 rows: the sums are taken over several chunks
    rows = InMemoryRows(X, Y, sample_weight, estimator._x_mean, estimator._x_scale, kernels,
                        rows_per_chunk=64)
    data = rows.whole()
    coordinates = model.coordinates(estimator._params,
                                    model.coordinate_reference(data.Y, data.sample_weight))
    whole = GradientObjective(model, kernels, data, SolverOptions(), coordinates)
    passes = RowsObjective(model, kernels, rows, coordinates)
    flat = coordinates.pack(estimator._params) + 0.05 * rng.standard_normal(coordinates.size)
    expected, actual = whole.evaluate(flat), passes.evaluate(flat)
    assert np.isclose(actual.objective, expected.objective, rtol=1e-13)
    assert np.isclose(actual.log_likelihood, expected.log_likelihood, rtol=1e-13)
    assert_allclose(actual.gradient, expected.gradient, rtol=1e-10,
                    atol=1e-13 * np.abs(expected.gradient).max())
    assert passes.evaluate(flat, gradient=False).gradient is None
