"""mixexp: classical mixture-of-experts estimators for scikit-learn users."""

from ._regressor import MixtureOfExpertsRegressor

__version__ = "0.1.0"

__all__ = ["MixtureOfExpertsRegressor", "__version__"]
