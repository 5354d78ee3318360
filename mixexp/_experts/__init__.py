"""Expert families: one module per family, all following ``_family.ExpertFamily``.

A family owns everything about its experts (starting parameters,
log-density, M-step, penalty, gradient and solver coordinates, split,
prediction, user-scale conversion, parameter count); nothing outside it
reads its parameters' keys.
"""

from ._family import ExpertFamily
from ._gaussian import GaussianExperts
from ._logistic import LogisticExperts
from ._poisson import PoissonExperts
from ._student_t import StudentTExperts

__all__ = ["ExpertFamily", "GaussianExperts", "LogisticExperts", "PoissonExperts",
           "StudentTExperts"]
