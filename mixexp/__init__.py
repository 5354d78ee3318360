"""mixexp: classical mixture-of-experts estimators for scikit-learn users."""

from ._classifier import MixtureOfExpertsClassifier
from ._hierarchical import (
    HierarchicalMixtureOfExpertsClassifier,
    HierarchicalMixtureOfExpertsRegressor,
)
from ._inference import SingularInformationWarning
from ._regressor import MixtureOfExpertsRegressor
from ._selection import select_n_experts

__version__ = "0.1.0"

__all__ = [
    "HierarchicalMixtureOfExpertsClassifier",
    "HierarchicalMixtureOfExpertsRegressor",
    "MixtureOfExpertsClassifier",
    "MixtureOfExpertsRegressor",
    "SingularInformationWarning",
    "__version__",
    "select_n_experts",
]
