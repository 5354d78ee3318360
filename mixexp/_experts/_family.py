"""What every expert family provides (the protocol the solvers are written against).

A family works on internally standardised inputs ``X`` (n, d), its own
columns of the data (``expert_features``: the model hands it that view),
and a 2-D target ``Y`` (n, t); its parameters are one dict of host float64 arrays
with the expert axis first (the ``"experts"`` part of a model's
parameters), and nothing outside the family reads its keys. Per-sample
arrays live in the namespace of the kernel bundle (``kernels.xp``, the GPU
for backend="cupy"); parameters and the M-step's small solves are host
NumPy.

A family object holds only what it was configured with (penalties,
floors: arrays and floats), returned by :meth:`ExpertFamily.state`, so a
fitted estimator stores that dict and rebuilds the family from it: its
persisted form holds arrays only.
"""

from abc import ABC, abstractmethod

import numpy as np

from .._parameters import Coordinates, append_expert, take_experts

# An expert whose total weight falls below this fraction of the data keeps
# its parameters: the weighted fit would be noise, and leaving it unchanged
# is a valid (generalised) M-step, so EM stays monotone.
EMPTY_EXPERT = 1e-10
# Size of the symmetry-breaking step of a split (see ``mixexp._resize``), in
# units of the expert's natural scale (noise standard deviation, logits).
SPLIT_STEP = 1e-2


def split_symmetrically(experts, j, rng, scale, keys=("coef", "intercept")):
    """Expert ``j`` copied last, the two moved apart by a symmetric random step.

    On standardised inputs a step of norm ~1 over the d + 1 coordinates of
    a linear map moves each of its outputs by about ``scale`` (broadcast
    against the output axis, which follows the expert axis). The other
    keys are copied as they are.
    """
    grown = append_expert(experts, j)
    n_coordinates = experts["coef"].shape[-1] + 1
    for key in keys:
        shape = experts[key].shape[1:]
        step = rng.standard_normal(shape) / np.sqrt(n_coordinates)
        step *= np.reshape(scale, np.shape(scale) + (1,) * (len(shape) - np.ndim(scale)))
        grown[key][j] += step
        grown[key][-1] -= step
    return grown


# Penalties per weight are capped here: far beyond any data's curvature (the
# weight is zero to ~1e-200 either way), and finite for any feature scale.
MAX_WEIGHT_PENALTY = 1e200


def user_scale_penalty(alpha, x_scale):
    """Penalty per standardised weight that is ``alpha * w^2`` on the user's scale: (d,).

    ``alpha / x_scale**2``, capped at 1e200, so a feature of any spread,
    however small (its square may underflow), gives a finite penalty.
    """
    x_scale = np.asarray(x_scale, dtype=float)
    with np.errstate(over="ignore", divide="ignore", under="ignore"):
        # alpha may be huge too (scaled with sample weights that vanish): capped after
        return np.minimum(alpha * np.minimum(1.0 / x_scale, 1e150) ** 2, MAX_WEIGHT_PENALTY)


def penalty_stiffness(weight_penalty, reference, curvature=1.0):
    """Per-feature unit of the gradient solvers' weight coordinates: (d,), 1 normally.

    ``weight_penalty``: (d,), or (K, d) for penalties of each expert's own.

    The objective is a mean over the total weight S, so a feature's penalty
    adds curvature ``curvature * penalty_j / S`` to that of the data (about
    1 per standardised weight in the families' units). A tiny-scale feature
    has a huge penalty on the user's scale (alpha / scale^2, 1e20 at scale
    1e-12): its weight is measured in units sqrt(that curvature) smaller,
    so that Adam's steps and L-BFGS's first steps stay where the objective
    is about as curved as in the other directions. Where the penalty is
    weaker than the data (any ordinary fit), the unit is exactly 1.
    """
    weight_penalty = np.asarray(weight_penalty)
    if weight_penalty.ndim == 2:  # each expert's own: the stiffest sets the unit
        weight_penalty = weight_penalty.max(axis=0)
    total = reference.get("total_weight") if reference else None
    if total is None:  # a state saved without it
        return np.ones_like(weight_penalty)
    return np.sqrt(np.maximum(1.0, curvature * weight_penalty / max(total, 1e-300)))


class StiffWeightCoordinates(Coordinates):
    """Scale-free expert parameters (log-rates, class logits) as they are, but
    for the weights of stiff penalties, measured in the units of
    :func:`penalty_stiffness` (1 in ordinary fits)."""

    def __init__(self, experts, stiffness):
        super().__init__(experts)
        self.stiffness = stiffness  # (d,)

    def _to_flat(self, key, value):
        return value * self.stiffness if key == "coef" else value

    def _from_flat(self, key, value):
        return value / self.stiffness if key == "coef" else value.copy()

    def _gradient_to_flat(self, key, value):
        return value / self.stiffness if key == "coef" else value


def active_experts(w_sum):
    """Boolean (K,): experts with enough weight for a fit of their own."""
    return w_sum > EMPTY_EXPERT * max(w_sum.sum(), np.finfo(float).tiny)


class ExpertFamily(ABC):
    """Base class of expert families; see the module docstring for conventions."""

    # ---- configuration and shape -----------------------------------------
    @abstractmethod
    def state(self):
        """Constructor arguments (arrays and floats): ``type(self)(**state)`` rebuilds it."""

    @abstractmethod
    def neutral(self, Y, sample_weight, n_experts, n_features):
        """Parameters an initial M-step starts from (every expert alike)."""

    @staticmethod
    @abstractmethod
    def n_parameters(n_experts, n_features, n_outputs):
        """Free parameters of ``n_experts`` experts with ``n_outputs`` targets or classes."""

    # ---- densities and objective -----------------------------------------
    @abstractmethod
    def log_density(self, kernels, X, Y, experts):
        """Each expert's log-density log p_k(y_i | x_i): (n, K)."""

    @abstractmethod
    def penalty(self, experts):
        """The experts' penalty (subtracted from the summed log-likelihood)."""

    # ---- EM ----------------------------------------------------------------
    @abstractmethod
    def m_step(self, kernels, X, Y, W, experts):
        """New parameters maximising sum_ik W_ik log p_k(y_i | x_i) - penalty, or at
        least never lowering it (a generalised M-step). ``W`` (n, K) holds
        responsibilities times sample weights."""

    # ---- gradient solvers --------------------------------------------------
    @abstractmethod
    def gradient(self, kernels, X, Y, W, experts, penalty_scale=1.0):
        """Gradient of sum_ik W_ik log p_k(y_i | x_i) - penalty_scale * penalty, as a
        dict keyed like the parameters, in the natural parameters except where
        the family's coordinates say otherwise."""

    def coordinate_reference(self, Y, sample_weight):
        """Summaries of the data the coordinates depend on (a dict of small host arrays);
        none by default. Kept with a solver's state, so that the coordinates
        can be rebuilt exactly (Adam's ``partial_fit``)."""
        return {}

    @abstractmethod
    def coordinates(self, experts, reference):
        """The :class:`mixexp._parameters.Coordinates` the gradient solvers move,
        anchored at ``experts``; ``reference`` from :meth:`coordinate_reference`."""

    def adapt(self, experts, target_variance, previous_target_variance):
        """Experts carried over to a stream whose targets' variance has changed (t,).

        ``partial_fit`` rebuilds the family when the running statistics of
        the stream move; a family whose parameters were fitted to a narrower
        target (a constant first batch, say) widens them here. None to adapt
        by default.
        """
        return experts

    # ---- growing and pruning -------------------------------------------
    @abstractmethod
    def split(self, experts, j, rng):
        """Parameters with a copy of expert ``j`` appended last, the two moved
        apart by a small symmetric random step (drawn from ``rng``)."""

    # Whether ``solve`` (where the family has the one-pass split ``statistics`` /
    # ``solve``) is an exact M-step, or at least never lowers the expected
    # complete-data objective; one-pass EM checks the step of a family where
    # it is not (see ``mixexp._solvers._em``).
    exact_solve = True
    # Whether ``statistics`` takes ``hessian_stride``: a Hessian summed over every
    # m-th row only (as the gate's, above ``HESSIAN_SAMPLE_ROWS`` rows), which
    # ``solve`` rescales; the step is checked by the next pass all the same.
    samples_hessian = False

    @staticmethod
    def step_towards(experts, target, t):
        """The parameters a fraction ``t`` of the way from ``experts`` to ``target``."""
        return {key: value + t * (target[key] - value) for key, value in experts.items()}

    @staticmethod
    def take(experts, index):
        """The parameters of experts ``index`` (an int array), in that order."""
        return take_experts(experts, index)

    # ---- user scale ------------------------------------------------------
    @abstractmethod
    def to_user(self, experts, x_mean, x_scale, squeeze=False):
        """The public fitted attributes (name -> array) on the user's scale.

        ``squeeze`` drops the target axis (a model fitted on 1-D targets).
        """

    @abstractmethod
    def from_user(self, attributes, n_experts, x_mean, x_scale):
        """Internal parameters for standardisation (x_mean, x_scale) from the
        public attributes (a mapping such as ``vars(estimator)``)."""
