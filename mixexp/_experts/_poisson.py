"""Poisson regression experts with a log link, p_k(y | x) = Poisson(y; exp(x w_k + c_k)).

For non-negative integer counts; several targets are independent Poisson
counts. Parameters ``{"coef": (K, t, d), "intercept": (K, t)}`` on the
standardised inputs (the log-rate's linear map). The regressor's family
for ``expert="poisson"``.

The multi-pass M-step is a generalised one: from the current parameters,
penalised Newton steps (iteratively reweighted least squares) on each
expert's weighted log-likelihood, each step halved until that expert's
penalised objective does not fall (and dropped if halving does not help),
so EM stays monotone. Each Newton step is one pass over the rows
(``kernels.poisson_newton_moments``: value, gradient and Hessian at once),
plus one per halving. One-pass EM (``mixexp._solvers._em``) instead
gathers the Newton sums in the pass that computes the E-step
(:meth:`PoissonExperts.statistics`), takes the full Newton step on the host
(:meth:`PoissonExperts.solve`, not an exact M-step: ``exact_solve`` is
False) and has the next pass check it, with the gate's step.
"""

import numpy as np

from .._backend import array_namespace, to_host
from .._linalg import solve_psd
from .._logistic import rounding_resolution
from ._family import (
    SPLIT_STEP,
    ExpertFamily,
    StiffWeightCoordinates,
    active_experts,
    penalty_stiffness,
    split_symmetrically,
)

# Newton steps per M-step (a generalised M-step needs only one that does not
# lower the objective). Warm-started from the previous iteration, one step
# took EM to the same optima in about as many iterations as two or three
# (patent data, K=3: 46, 38 and 43 iterations; 5000 synthetic counts, K=2:
# 61, 59 and 59) at one pass with the Hessian and one without, instead of
# two or three of each.
_NEWTON_STEPS = 1
# Halvings of a Newton step before it is dropped.
_MAX_HALVINGS = 30
# Smallest mean count the neutral intercept is taken from (an all-zero
# target would give log 0).
_MIN_RATE = 1e-10


def check_counts(Y):
    """ValueError unless ``Y`` (any namespace) holds non-negative integer counts."""
    xp = array_namespace(Y)
    if bool(xp.any(Y < 0)):
        raise ValueError(
            f"expert='poisson' needs non-negative counts as y, but y has negative values "
            f"(as low as {float(xp.min(Y)):.6g}). Use expert='gaussian' for targets that can "
            "be negative."
        )
    if bool(xp.any(Y != xp.round(Y))):
        bad = to_host(Y[Y != xp.round(Y)])[:3].tolist()
        raise ValueError(
            f"expert='poisson' needs integer counts as y, but y has non-integer values such "
            f"as {bad}. Round or aggregate y to counts, or use expert='gaussian'."
        )


def _kernel(kernels, name):
    """The backend's Poisson kernel ``name``, or a ValueError where it has none (a backend
    added without them: every built-in backend has them)."""
    function = getattr(kernels, name, None)
    if function is None:
        raise ValueError(
            f"expert='poisson' is not available with backend={kernels.name!r}: it has no "
            f"{name} kernel. Use backend='numba' or 'numpy'."
        )
    return function


def target_means(Y, sample_weight):
    """Weighted mean of each target: host array (t,)."""
    xp = array_namespace(Y)
    return to_host(xp.average(Y, axis=0, weights=sample_weight)).astype(np.float64)


class PoissonExperts(ExpertFamily):
    """Poisson regression experts with a log link.

    Parameters
    ----------
    weight_penalty : ndarray of shape (d,)
        Penalty per standardised weight: alpha / scale_j**2, so that the
        penalty alpha * ||w_k||^2 (added to the negative log-likelihood, as
        for logistic experts) acts on the weights of the user's scale.
    target_mean : ndarray of shape (t,)
        The targets' weighted mean count: the starting rate of every expert.
    """

    def __init__(self, weight_penalty, target_mean):
        self.weight_penalty = np.asarray(weight_penalty, dtype=float)
        self.target_mean = np.asarray(target_mean, dtype=float)

    def state(self):
        return {"weight_penalty": self.weight_penalty, "target_mean": self.target_mean}

    def neutral(self, Y, sample_weight, n_experts, n_features):
        """Every expert at the targets' mean rate, with zero weights."""
        log_rate = np.log(np.maximum(target_means(Y, sample_weight), _MIN_RATE))
        return {"coef": np.zeros((n_experts, Y.shape[1], n_features)),
                "intercept": np.tile(log_rate, (n_experts, 1))}

    @staticmethod
    def n_parameters(n_experts, n_features, n_outputs):
        """Free parameters of the experts: weights and intercepts of each log-rate."""
        return n_experts * n_outputs * (n_features + 1)

    # ---- densities and objective -----------------------------------------
    def log_density(self, kernels, X, Y, experts):
        """Each expert's log-probability of the counts, summed over targets: (n, K)."""
        return _kernel(kernels, "poisson_log_density")(X, Y, experts["coef"],
                                                       experts["intercept"])

    def fused_e_step(self, kernels, X, Y, gate_coef, gate_intercept, experts, resp,
                     log_gate_out=None):
        """The fused softmax-gate E-step kernel (see ``mixexp._model``)."""
        return _kernel(kernels, "poisson_e_step")(
            X, Y, gate_coef, gate_intercept, experts["coef"], experts["intercept"], resp,
            log_gate_out=log_gate_out)

    def _weight_penalties(self, coef):
        """alpha ||w_kt||^2 on the user's scale, per expert and target: (K, t)."""
        return np.sum(self.weight_penalty * coef**2, axis=-1)

    def penalty(self, experts):
        """alpha ||w_kt||^2 summed over experts and targets (user's scale)."""
        return float(np.sum(self._weight_penalties(experts["coef"])))

    # ---- one-pass EM: the Newton sums of a pass, a step checked by the next ----
    exact_solve = False

    def statistics(self, kernels, X, Y, W, experts):
        """Additive statistics of rows for :meth:`solve` (float64, host): the Newton sums
        ``value`` (K, t), ``gradient`` (K, t, d + 1), ``hessian`` (K, t, d + 1, d + 1)
        at ``experts`` (``poisson_newton_moments``) and ``w_sum`` (K,)."""
        value, grad, hess = _kernel(kernels, "poisson_newton_moments")(
            X, Y, W, experts["coef"], experts["intercept"])
        return {"value": value, "gradient": grad, "hessian": hess,
                "w_sum": kernels.to_host(W.sum(axis=0)).astype(np.float64)}

    def fused_pass(self, kernels, X, Y, sample_weight, gate_coef, gate_intercept, experts,
                   hessian_stride):
        """One-pass EM statistics of a chunk from the fused softmax-gate kernel
        (``kernels.poisson_pass``; see ``mixexp._model``), as the Gaussian
        family's; None where the backend has no such kernel."""
        if not hasattr(kernels, "poisson_pass"):
            return None
        (log_likelihood, value, grad, hess, w_sum, gate_gradient, gate_hessian,
         hessian_weight) = kernels.poisson_pass(
            X, Y, sample_weight, gate_coef, gate_intercept, experts["coef"],
            experts["intercept"], hessian_stride)
        statistics = {"value": value, "gradient": grad, "hessian": hess, "w_sum": w_sum}
        # each expert's share of the weight, sum_i s_i h_ik, is its w_sum
        return (log_likelihood, w_sum.copy(), statistics, gate_gradient, gate_hessian,
                hessian_weight)

    def _newton_directions(self, value, grad, hess, w_sum, coef, dtype):
        """Penalised Newton directions (K, t, d + 1) and where they promise a gain
        above the objective's rounding (K, t)."""
        n_experts, n_targets, d = coef.shape
        objective = value - self._weight_penalties(coef)
        penalty = np.zeros(d + 1)
        penalty[:d] = self.weight_penalty
        direction = np.zeros((n_experts, n_targets, d + 1))
        moving = np.zeros((n_experts, n_targets), dtype=bool)
        for k in np.flatnonzero(active_experts(w_sum)):
            for s in range(n_targets):
                g = grad[k, s].copy()
                g[:d] -= 2.0 * self.weight_penalty * coef[k, s]
                system = hess[k, s].copy()
                system[np.arange(d + 1), np.arange(d + 1)] += 2.0 * penalty
                step = solve_psd(system, g)
                gain = float(g @ step)
                # a gain below the objective's rounding cannot be verified
                if np.isfinite(gain) and gain > rounding_resolution(
                        objective[k, s], w_sum[k], dtype):
                    direction[k, s], moving[k, s] = step, True
        return direction, moving, objective

    def solve(self, statistics, experts):
        """The full penalised Newton step from :meth:`statistics` (unchecked: see
        ``exact_solve``)."""
        coef = experts["coef"]
        d = coef.shape[2]
        direction, moving, _ = self._newton_directions(
            statistics["value"], statistics["gradient"], statistics["hessian"],
            statistics["w_sum"], coef, np.float64)
        direction[~moving] = 0.0
        return {"coef": coef + direction[:, :, :d],
                "intercept": experts["intercept"] + direction[:, :, d]}

    # ---- multi-pass EM ------------------------------------------------------
    def m_step(self, kernels, X, Y, W, experts):
        """Penalised Newton steps per expert and target, each never lowering its objective.

        Expert k's target s maximises sum_i W_ik log p(y_is | eta_iks) -
        alpha ||w_ks||^2, concave in (w_ks, c_ks): the Newton direction
        solves (H + 2 P) step = gradient (P the penalty, H the weighted
        Fisher information sum_i W_ik mu_iks z_i z_i^T, z = (x, 1)), and is
        halved until the objective does not fall. Experts and targets are
        independent, so all take their steps in the same passes.
        """
        coef = experts["coef"].copy()
        intercept = experts["intercept"].copy()
        n_experts, n_targets, d = coef.shape
        w_sum = kernels.to_host(W.sum(axis=0)).astype(np.float64)
        moments = _kernel(kernels, "poisson_newton_moments")
        value, grad, hess = moments(X, Y, W, coef, intercept)
        for step in range(_NEWTON_STEPS):
            # the last step's trials need only the objective, not the next Hessian
            more = step + 1 < _NEWTON_STEPS
            direction, moving, objective = self._newton_directions(value, grad, hess, w_sum,
                                                                   coef, X.dtype)
            if not moving.any():
                break
            t = np.ones((n_experts, n_targets, 1))
            for _ in range(_MAX_HALVINGS):
                trial_coef = coef + np.where(moving[:, :, None], t * direction[:, :, :d], 0.0)
                trial_intercept = intercept + np.where(moving, t[:, :, 0] * direction[:, :, d],
                                                       0.0)
                trial = moments(X, Y, W, trial_coef, trial_intercept, hessian=more)
                trial_objective = trial[0] - self._weight_penalties(trial_coef)
                accepted = moving & (trial_objective >= objective)
                coef[accepted] = trial_coef[accepted]
                intercept[accepted] = trial_intercept[accepted]
                value[accepted] = trial[0][accepted]
                if more:
                    grad[accepted] = trial[1][accepted]
                    hess[accepted] = trial[2][accepted]
                moving &= ~accepted
                if not moving.any():
                    break
                t[moving] *= 0.5
        return {"coef": coef, "intercept": intercept}

    # ---- gradient solvers --------------------------------------------------
    def gradient(self, kernels, X, Y, W, experts, penalty_scale=1.0):
        """Gradient of sum_ik W_ik log p_k(y_i | x_i) - penalty_scale * penalty.

        "coef" (K, t, d) and "intercept" (K, t).
        """
        coef = experts["coef"]
        d = coef.shape[2]
        grad = _kernel(kernels, "poisson_newton_moments")(X, Y, W, coef, experts["intercept"],
                                              hessian=False)[1]
        return {"coef": grad[:, :, :d] - 2.0 * penalty_scale * self.weight_penalty * coef,
                "intercept": grad[:, :, d].copy()}

    def coordinate_reference(self, Y, sample_weight):
        """The total weight (see :func:`penalty_stiffness`)."""
        return {"total_weight": float(sample_weight.sum())}

    def coordinates(self, experts, reference):
        # the penalty's curvature is 2 penalty_j, the data's about the mean count per sample
        curvature = 2.0 / max(float(np.max(self.target_mean, initial=0.0)), 1.0)
        return StiffWeightCoordinates(experts, penalty_stiffness(self.weight_penalty,
                                                                 reference,
                                                                 curvature=curvature))

    # ---- growing -----------------------------------------------------------
    def split(self, experts, j, rng):
        # log-rates are scale-free: steps of SPLIT_STEP in the log-rate
        return split_symmetrically(experts, j, rng, SPLIT_STEP)

    # ---- prediction --------------------------------------------------------
    @staticmethod
    def mean(kernels, X, experts):
        """Each expert's rate exp(x w_k + c_k): (n, K, t)."""
        # gaussian_predict is the linear map x w + c of every expert and target
        eta = kernels.gaussian_predict(X, experts["coef"], experts["intercept"])
        xp = kernels.xp
        return xp.exp(xp.minimum(eta, 700.0))

    @staticmethod
    def noise_variance(xp, gate, means, experts):
        """A Poisson count's variance is its rate: sum_k g_k mu_k, (n, t)."""
        return xp.einsum("nk,nkt->nt", gate, means)

    # ---- user scale ------------------------------------------------------
    def to_user(self, experts, x_mean, x_scale, squeeze=False):
        coef = experts["coef"] / x_scale
        intercept = experts["intercept"] - coef @ x_mean
        if squeeze:
            coef, intercept = coef[:, 0], intercept[:, 0]
        return {"expert_coef_": coef, "expert_intercept_": intercept}

    def from_user(self, attributes, n_experts, x_mean, x_scale):
        n_targets = self.target_mean.shape[0]
        coef = np.reshape(attributes["expert_coef_"], (n_experts, n_targets, -1))
        intercept = np.reshape(attributes["expert_intercept_"], (n_experts, n_targets))
        return {"coef": coef * x_scale, "intercept": intercept + coef @ x_mean}
