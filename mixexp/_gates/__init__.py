"""Gates: the prior over experts, p(k | x), as objects (see ``_softmax``).

A gate owns everything about its parameters: log prior, penalty, M-step,
gradient, solver coordinates, split and prune, parameter count and the
conversion to the user's scale. Nothing outside the gate reads its keys.
"""

from ._softmax import SoftmaxGate
from ._tree import TreeGate

__all__ = ["SoftmaxGate", "TreeGate"]
