"""Multinomial logistic experts, p_k(y = c | x) = softmax_c(x w_kc + b_kc).

Targets ``Y`` are one-hot classes (n, C); a binary problem is the two-class
case of the same model. Parameters ``{"coef": (K, C, d), "intercept":
(K, C)}`` on the standardised inputs. The classifier's family.

The multi-pass M-step fits each expert by warm-started Newton steps with a
line search (L-BFGS above ``NEWTON_MAX_PARAMS`` parameters), several passes
over the rows per expert. One-pass EM (``mixexp._solvers._em``) instead
gathers each expert's gradient and Hessian at its current parameters in the
pass that computes the E-step (:meth:`LogisticExperts.statistics`), takes
one penalised Newton step per expert on the host (:meth:`LogisticExperts.solve`,
not an exact M-step: ``exact_solve`` is False) and has the next pass check
it together with the gate's step, as for Poisson experts. Experts with more
than ``NEWTON_MAX_PARAMS`` parameters (a Hessian of C^2 (d + 1)^2 products
per row) keep the multi-pass M-step (:meth:`LogisticExperts.takes_one_pass`).
"""

import numpy as np

from .._backend import to_host
from .._logistic import (
    NEWTON_MAX_PARAMS,
    center,
    fit_multinomial_logistic,
    penalised_newton_step,
    rounding_resolution,
    softmax_gradient,
)
from ._family import (
    SPLIT_STEP,
    ExpertFamily,
    StiffWeightCoordinates,
    active_experts,
    penalty_stiffness,
    split_symmetrically,
)


def class_penalty_factor(n_classes):
    """Factor on alpha per class weight that gives LogisticRegression's penalty.

    With three or more classes LogisticRegression penalises every class's
    weights, ||W||^2 / (2 C), as the experts do (their weights are centred
    over classes, which is the minimum-norm optimum). With two classes it
    penalises the one logit w = w_1 - w_0 instead; for centred weights
    w_1 = -w_0 = w / 2, so alpha (||w_0||^2 + ||w_1||^2) = alpha ||w||^2 / 2:
    each class weight needs twice the penalty for alpha ||w||^2.
    """
    return 2.0 if n_classes == 2 else 1.0


class _LogisticCoordinates(StiffWeightCoordinates):
    """Class logits are scale-free (see :class:`StiffWeightCoordinates`); one
    expert's common shift over its classes is removed."""

    def project_part(self, flat):
        # a common shift of one expert's class logits changes no probability;
        # removing it can only lower the L2 penalty
        coef = self.view(flat, "coef")
        coef -= coef.mean(axis=1, keepdims=True)
        intercept = self.view(flat, "intercept")
        intercept -= intercept.mean(axis=1, keepdims=True)


class LogisticExperts(ExpertFamily):
    """Multinomial logistic experts.

    Parameters
    ----------
    weight_penalty : ndarray of shape (d,)
        Penalty per standardised class weight: alpha / scale_j**2 times
        :func:`class_penalty_factor`, so that it equals LogisticRegression's
        penalty ||w||^2 / (2 C) on the user's scale with alpha = 1 / (2 C),
        for two classes (on the binary logit) as for more.
    """

    def __init__(self, weight_penalty):
        self.weight_penalty = np.asarray(weight_penalty, dtype=float)

    def state(self):
        return {"weight_penalty": self.weight_penalty}

    def neutral(self, Y, sample_weight, n_experts, n_features):
        """Every expert at the class priors, smoothed so none is -inf, with zero weights."""
        n_classes = Y.shape[1]
        prior = to_host((sample_weight @ Y + 1.0) / (sample_weight.sum() + n_classes))
        log_prior = np.log(prior) - np.log(prior).mean()
        return {
            "coef": np.zeros((n_experts, n_classes, n_features)),
            "intercept": np.tile(log_prior, (n_experts, 1)),
        }

    @staticmethod
    def n_parameters(n_experts, n_features, n_outputs):
        """Free parameters: one class per expert is redundant under the softmax."""
        return n_experts * (n_outputs - 1) * (n_features + 1)

    # ---- densities and objective -----------------------------------------
    def log_density(self, kernels, X, Y, experts):
        """Each expert's log-probability of the observed class: (n, K)."""
        return kernels.logistic_log_density(X, Y, experts["coef"], experts["intercept"])

    def fused_e_step(self, kernels, X, Y, gate_coef, gate_intercept, experts, resp,
                     log_gate_out=None):
        """The fused softmax-gate E-step kernel (see ``mixexp._model``)."""
        return kernels.logistic_e_step(
            X, Y, gate_coef, gate_intercept, experts["coef"], experts["intercept"], resp,
            log_gate_out=log_gate_out,
        )

    def penalty(self, experts):
        """alpha ||w_kc||^2 summed over experts and classes (user's scale)."""
        return float(np.sum(self.weight_penalty * experts["coef"] ** 2))

    # ---- one-pass EM: Newton sums of a pass, a step checked by the next ------
    exact_solve = False
    # ``statistics`` takes ``hessian_stride`` (see ``ExpertFamily.samples_hessian``)
    samples_hessian = True

    @staticmethod
    def takes_one_pass(experts):
        """Whether one-pass EM serves these experts: up to ``NEWTON_MAX_PARAMS``
        parameters C (d + 1) per expert (above, the Hessian costs C^2 (d + 1)^2
        products per row and the multi-pass M-step's L-BFGS wins)."""
        _, n_classes, d = experts["coef"].shape
        return n_classes * (d + 1) <= NEWTON_MAX_PARAMS

    def statistics(self, kernels, X, Y, W, experts, hessian_stride=1):
        """Additive statistics of rows for :meth:`solve` (float64, host).

        With T_k = W[:, k] Y (the expert's weighted one-hot classes) and p_k
        its class probabilities at ``experts``: ``value`` (K,) = sum_ic T_kic
        log p_kic, ``gradient`` (K, C, d + 1) and ``hessian``
        (K, C, d + 1, C, d + 1) of that sum in (weights, intercept) of each
        class (``gate_gradient_hessian``'s, per expert), ``w_sum`` (K,) =
        sum_i W_ik. With ``hessian_stride`` > 1 the Hessian sums only rows
        i % hessian_stride == 0, whose weight per expert is
        ``hessian_weight`` (K,): :meth:`solve` rescales it, as the gate does
        its own (``SoftmaxGate.statistics``). The composition of existing
        kernels, one expert at a time: the oracle of the fused
        ``logistic_pass`` kernels.
        """
        xp = kernels.xp
        coef, intercept = experts["coef"], experts["intercept"]
        n_experts, n_classes, d = coef.shape
        value = np.zeros(n_experts)
        gradient = np.zeros((n_experts, n_classes, d + 1))
        hessian = np.zeros((n_experts, n_classes, d + 1, n_classes, d + 1))
        hessian_weight = np.zeros(n_experts)
        log_p = xp.empty((X.shape[0], n_classes), dtype=X.dtype)
        sampled = slice(None, None, hessian_stride)
        for k in range(n_experts):
            kernels.log_gate(X, coef[k], intercept[k], out=log_p)  # log-softmax of the classes
            targets = W[:, k:k + 1] * Y
            value[k] = float(xp.sum(targets * log_p, dtype=np.float64))
            if hessian_stride == 1:
                gradient[k], hessian[k] = kernels.gate_gradient_hessian(X, targets, log_p)
                continue
            gradient[k] = softmax_gradient(kernels, X, targets, coef[k], intercept[k])
            hessian[k] = kernels.gate_gradient_hessian(X[sampled], targets[sampled],
                                                       log_p[sampled])[1]
            hessian_weight[k] = float(xp.sum(W[sampled, k], dtype=np.float64))
        statistics = {"value": value, "gradient": gradient, "hessian": hessian,
                      "w_sum": kernels.to_host(W.sum(axis=0)).astype(np.float64)}
        if hessian_stride > 1:
            statistics["hessian_weight"] = hessian_weight
        return statistics

    def fused_pass(self, kernels, X, Y, sample_weight, gate_coef, gate_intercept, experts,
                   hessian_stride):
        """One-pass EM statistics of a chunk from the fused softmax-gate kernel
        (``kernels.logistic_pass``; see ``mixexp._model``), as the Gaussian
        family's; None where the backend has no such kernel."""
        if not hasattr(kernels, "logistic_pass"):
            return None
        (log_likelihood, value, grad, hess, w_sum, expert_weight, gate_gradient, gate_hessian,
         hessian_weight) = kernels.logistic_pass(
            X, Y, sample_weight, gate_coef, gate_intercept, experts["coef"],
            experts["intercept"], hessian_stride)
        statistics = {"value": value, "gradient": grad, "hessian": hess, "w_sum": w_sum}
        if hessian_stride > 1:
            statistics["hessian_weight"] = expert_weight
        # each expert's share of the weight, sum_i s_i h_ik, is its w_sum
        return (log_likelihood, w_sum.copy(), statistics, gate_gradient, gate_hessian,
                hessian_weight)

    def solve(self, statistics, experts):
        """One penalised Newton step per expert from :meth:`statistics` (unchecked: see
        ``exact_solve``), its softmax shift removed.

        Expert k's data term sum_ic T_kic log p_kic - alpha ||W_k||^2 is
        concave; its Newton direction solves (-H + 2 P) step = gradient
        (``mixexp._logistic.penalised_newton_step``). An expert without
        weight, or whose step promises a gain below the objective's
        rounding, stays where it is.
        """
        coef, intercept = experts["coef"], experts["intercept"]
        d = coef.shape[2]
        new_coef, new_intercept = coef.copy(), intercept.copy()
        w_sum = statistics["w_sum"]
        for k in np.flatnonzero(active_experts(w_sum)):
            hessian = statistics["hessian"][k]
            if "hessian_weight" in statistics:  # a subsample's Hessian, to the whole's scale
                sampled = statistics["hessian_weight"][k]
                if not sampled > 0.0:
                    continue  # no sampled row of this expert: no curvature to step with
                hessian = hessian * (w_sum[k] / sampled)
            grad = statistics["gradient"][k].copy()
            grad[:, :d] -= 2.0 * self.weight_penalty * coef[k]
            step, decrement = penalised_newton_step(grad, hessian, self.weight_penalty)
            objective = statistics["value"][k] - float(np.sum(self.weight_penalty * coef[k]**2))
            # a gain below the objective's rounding cannot be verified
            if not np.isfinite(decrement) or decrement <= rounding_resolution(
                    objective, w_sum[k], np.float64):
                continue
            new_coef[k], new_intercept[k] = center(coef[k] + step[:, :d],
                                                   intercept[k] + step[:, d])
        return {"coef": new_coef, "intercept": new_intercept}

    # ---- multi-pass EM ------------------------------------------------------
    def m_step(self, kernels, X, Y, W, experts):
        """Each expert by weighted multinomial logistic regression (warm-started
        Newton steps; L-BFGS above ``NEWTON_MAX_PARAMS`` parameters).

        Expert k fits the classes with weights W[:, k]; each fit never lowers
        its penalised objective, so EM stays monotone.
        """
        coef = experts["coef"].copy()
        intercept = experts["intercept"].copy()
        active = active_experts(kernels.to_host(W.sum(axis=0)))
        log_p = kernels.xp.empty(Y.shape, dtype=X.dtype)
        for k in np.flatnonzero(active):
            coef[k], intercept[k] = fit_multinomial_logistic(
                kernels, X, W[:, k : k + 1] * Y, coef[k], intercept[k], self.weight_penalty,
                log_p=log_p, many="lbfgs",
            )
        return {"coef": coef, "intercept": intercept}

    # ---- gradient solvers --------------------------------------------------
    def gradient(self, kernels, X, Y, W, experts, penalty_scale=1.0):
        """Gradient of sum_ik W_ik log p_k(y_i | x_i) - penalty_scale * penalty.

        "coef" (K, C, d) and "intercept" (K, C).
        """
        coef = experts["coef"]
        grad_coef, grad_intercept = kernels.logistic_gradient(X, Y, W, coef,
                                                              experts["intercept"])
        grad_coef -= 2.0 * penalty_scale * self.weight_penalty * coef
        return {"coef": grad_coef, "intercept": grad_intercept}

    def coordinate_reference(self, Y, sample_weight):
        """The total weight (see :func:`penalty_stiffness`)."""
        return {"total_weight": float(sample_weight.sum())}

    def coordinates(self, experts, reference):
        # the penalty's curvature is 2 penalty_j (the data's at most 1/4 per sample)
        return _LogisticCoordinates(experts, penalty_stiffness(self.weight_penalty, reference,
                                                               curvature=2.0))

    # ---- growing -----------------------------------------------------------
    def split(self, experts, j, rng):
        # class logits are scale-free: steps of SPLIT_STEP logits
        return split_symmetrically(experts, j, rng, SPLIT_STEP)

    # ---- prediction --------------------------------------------------------
    @staticmethod
    def log_proba(kernels, X, experts):
        """Each expert's class log-probabilities: (n, K, C)."""
        return kernels.logistic_predict_log_proba(X, experts["coef"], experts["intercept"])

    # ---- user scale ------------------------------------------------------
    def to_user(self, experts, x_mean, x_scale, squeeze=False):
        coef = experts["coef"] / x_scale
        return {"expert_coef_": coef, "expert_intercept_": experts["intercept"] - coef @ x_mean}

    def from_user(self, attributes, n_experts, x_mean, x_scale):
        coef = np.asarray(attributes["expert_coef_"])
        return {"coef": coef * x_scale,
                "intercept": attributes["expert_intercept_"] + coef @ x_mean}
