import numpy as np
import pytest
from numpy.testing import assert_array_equal

from mixexp.datasets import load_motorcycle, make_moe_regression


def test_load_motorcycle():
    data = load_motorcycle()
    assert data.data.shape == (133, 1) and data.target.shape == (133,)
    assert data.feature_names == ["times"] and data.target_names == ["accel"]
    assert data.frame is None
    assert "Silverman" in data.DESCR
    # first and last rows of MASS::mcycle
    assert_array_equal(data.data[[0, -1], 0], [2.4, 57.6])
    assert_array_equal(data.target[[0, -1]], [0.0, 10.7])
    X, y = load_motorcycle(return_X_y=True)
    assert_array_equal(X, data.data)
    assert_array_equal(y, data.target)


def test_load_motorcycle_as_frame():
    pd = pytest.importorskip("pandas")
    data = load_motorcycle(as_frame=True)
    assert isinstance(data.frame, pd.DataFrame)
    assert list(data.frame.columns) == ["times", "accel"]
    assert isinstance(data.data, pd.DataFrame) and isinstance(data.target, pd.Series)
    assert_array_equal(data.data.to_numpy(), load_motorcycle().data)


def test_make_moe_regression_is_seeded_and_follows_its_parameters():
    X, y, truth = make_moe_regression(n_samples=4000, n_features=3, n_experts=4,
                                      noise=0.05, random_state=0)
    X2, y2, _ = make_moe_regression(n_samples=4000, n_features=3, n_experts=4,
                                    noise=0.05, random_state=0)
    assert_array_equal(X, X2)
    assert_array_equal(y, y2)
    assert truth.gate_coef.shape == (4, 3) and truth.expert_coef.shape == (4, 3)
    assert truth.expert_intercept.shape == truth.expert_variance.shape == (4,)
    # residuals of each sample under the expert that drew it have the stated noise
    k = truth.expert
    resid = y - (np.einsum("nd,nd->n", X, truth.expert_coef[k]) + truth.expert_intercept[k])
    assert abs(resid.std() - 0.05) < 0.005


@pytest.mark.parametrize("kwargs", [{"n_samples": 0}, {"n_experts": 0}, {"noise": 0.0}])
def test_make_moe_regression_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        make_moe_regression(**kwargs)
