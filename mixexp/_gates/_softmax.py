"""The softmax gating network as one object.

The gate is g_k(x) = softmax_k(x . v_k + b_k) on internally standardised
inputs, so its penalty alpha * ||V||^2 does not depend on the features'
scales. Its M-step is a weighted multinomial logistic regression on the soft
targets (the responsibilities), warm-started from the previous gate.
Parameters: ``{"coef": (K, d), "intercept": (K,)}``.
"""

import numpy as np

from .. import _logistic
from .._balance import balance_terms
from .._logistic import (
    boehning_bound,
    bound_step,
    center,
    fit_multinomial_logistic,
    penalised_newton_step,
    rounding_resolution,
    softmax_gradient,
)
from .._parameters import Coordinates, append_expert, take_experts

# Newton steps per gate M-step (a generalised M-step: any improvement keeps
# EM monotone). Warm-started from the previous iteration the gate is close
# to its optimum: with one step instead of two, EM needed the same number
# of iterations to converge, give or take one (motorcycle K=3: 53 and 53;
# n=1e5 K=3: 13 and 12; n=2e5 K=8: 17 and 16; a classifier, n=2e4 K=4: 75
# and 73) to the same optima, and each iteration skips a Hessian pass and a
# line-search pass. The initial M-step starts from a zero gate, far from
# its optimum: it takes three.
GATE_NEWTON_STEPS = 1
INITIAL_GATE_NEWTON_STEPS = 3
# Newton-like steps of the load-balanced gate M-step (its line search sees
# the balance term too).
BALANCED_GATE_STEPS = 3


class _SoftmaxCoordinates(Coordinates):
    """The gate's parameters as they are (inputs are standardised already)."""

    def project_part(self, flat):
        # a common shift of every expert's logits changes no probability;
        # removing it can only lower the L2 penalty
        coef = self.view(flat, "coef")
        coef -= coef.mean(axis=0)
        intercept = self.view(flat, "intercept")
        intercept -= intercept.mean()


class SoftmaxGate:
    """Softmax of linear functions of the (standardised) inputs.

    Parameters
    ----------
    alpha : float
        L2 penalty alpha * ||V||^2 on the gate weights (not the intercepts).
    """

    # experts can be split and pruned (warm starts, revival of vanished experts)
    resizable = True

    def __init__(self, alpha):
        self.alpha = float(alpha)

    # ---- shape -----------------------------------------------------------
    @staticmethod
    def neutral(n_experts, n_features):
        """The uniform gate."""
        return {"coef": np.zeros((n_experts, n_features)), "intercept": np.zeros(n_experts)}

    @staticmethod
    def n_experts(gate):
        return gate["intercept"].shape[0]

    @staticmethod
    def n_features(gate):
        return gate["coef"].shape[1]

    @staticmethod
    def n_parameters(n_experts, n_features):
        """Free parameters: one expert's logits are redundant under the softmax."""
        return (n_experts - 1) * (n_features + 1)

    @staticmethod
    def linear(gate):
        """``(coef, intercept)`` of the logits, for the fused E-step kernels."""
        return gate["coef"], gate["intercept"]

    # ---- densities and objective -----------------------------------------
    def log_prior(self, kernels, X, gate, out=None):
        """log g_k(x_i): (n, K), in float64 (float32 ``out`` too)."""
        return kernels.log_gate(X, gate["coef"], gate["intercept"], out=out)

    def penalty(self, gate):
        """alpha * ||V||^2 on the (standardised-scale) gate weights."""
        return self.alpha * float(np.sum(gate["coef"] ** 2))

    # ---- M-step ----------------------------------------------------------
    def m_step(self, kernels, X, W, gate, *, log_prior=None, log_prior_ready=False,
               max_iter=GATE_NEWTON_STEPS, balance=0.0, sample_weight=None):
        """Maximise sum_ik W_ik log g_k(x_i) - alpha ||V||^2 [- S balance CV^2(I)].

        Parameters
        ----------
        kernels : kernel bundle
        X : ndarray of shape (n, d)
            Standardised inputs.
        W : ndarray of shape (n, K)
            Responsibilities times sample weights.
        gate : dict
            The previous gate (warm start).
        log_prior : ndarray of shape (n, K), optional
            Scratch buffer.
        log_prior_ready : bool, default=False
            ``log_prior`` holds the log gate of ``gate`` already.
        max_iter : int
            Newton steps at most (the balanced gate keeps its own bound).
        balance : float, default=0
            Load-balancing strength (see ``mixexp._balance``); it needs
            ``sample_weight`` (n,).

        Returns
        -------
        gate : dict, never worse than the previous one.
        """
        coef, intercept = gate["coef"], gate["intercept"]
        if coef.shape[0] == 1:
            return self.neutral(1, coef.shape[1])
        extra = None
        if balance > 0:
            total = float(sample_weight.sum())
            max_iter = BALANCED_GATE_STEPS

            def extra(log_g):
                penalty, logit_gradient = balance_terms(kernels.xp.exp(log_g), sample_weight,
                                                        balance)
                return total * penalty, total * logit_gradient

        penalty = np.full(coef.shape[1], self.alpha)
        coef, intercept = fit_multinomial_logistic(
            kernels, X, W, coef, intercept, penalty, max_iter=max_iter, log_p=log_prior,
            log_p_ready=log_prior_ready, extra=extra,
        )
        return {"coef": coef, "intercept": intercept}

    # ---- one-pass EM: statistics of a pass, then a step checked by the next ----
    @staticmethod
    def takes_newton_steps(gate):
        """Whether :meth:`statistics` gathers Newton's Hessian (else Boehning's bound):
        up to ``NEWTON_MAX_PARAMS`` parameters (``mixexp._logistic``); above, the
        Hessian would cost K^2 d^2 per row."""
        n_experts, d = gate["coef"].shape
        return n_experts * (d + 1) <= _logistic.NEWTON_MAX_PARAMS

    @staticmethod
    def newton_statistics(gradient, hessian, hessian_weight=None):
        """:meth:`statistics` of a Newton step from its sums (``hessian_weight``: the
        weight of the rows a subsampled Hessian was summed over)."""
        statistics = {"gradient": gradient, "hessian": hessian}
        if hessian_weight is not None:
            statistics["hessian_weight"] = hessian_weight
        return statistics

    def statistics(self, kernels, X, W, gate, log_prior, hessian_stride=1):
        """Additive statistics of one chunk for :meth:`direction` (float64, host).

        ``W`` (n, K) are responsibilities times sample weights and
        ``log_prior`` the log gate at ``gate``. Newton's gradient and
        Hessian of sum_ik W_ik log g_ik, or (see :meth:`takes_newton_steps`)
        the gradient and the weighted Gram matrix of Boehning's bound.

        With ``hessian_stride`` > 1 the Hessian is summed over every
        ``hessian_stride``-th row only (its weight, ``hessian_weight``,
        rescales it in :meth:`direction`): a subsampled Newton step (Byrd
        et al. 2011) for large data, where the Hessian costs K times the
        rest of a pass. The gradient always sums every row.
        """
        if self.takes_newton_steps(gate) and hessian_stride == 1:
            return self.newton_statistics(*kernels.gate_gradient_hessian(X, W, log_prior))
        gradient = softmax_gradient(kernels, X, W, gate["coef"], gate["intercept"])
        if self.takes_newton_steps(gate):
            sampled = slice(None, None, hessian_stride)
            hessian = kernels.gate_gradient_hessian(X[sampled], W[sampled],
                                                    log_prior[sampled])[1]
            return self.newton_statistics(
                gradient, hessian, float(kernels.xp.sum(W[sampled], dtype=np.float64)))
        row_weight = W.sum(axis=1)[:, None]
        gram, x_sum, _, _, w_sum = kernels.weighted_moments(X, row_weight, row_weight)
        return {"gradient": gradient, "gram": gram[0], "x_sum": x_sum[0], "w_sum": w_sum[0]}

    def direction(self, statistics, gate, total_weight, objective, dtype):
        """Ascent direction (K, d + 1) for the gate from a pass's statistics, or None.

        Newton's direction on the penalised sum_ik W_ik log g_ik (or
        Boehning's bound step). None where the gain it promises is below
        the rounding level of ``objective`` (the summed objective the next
        pass checks the step on, in ``dtype``): nothing a pass could verify.
        """
        coef = gate["coef"]
        n_experts, d = coef.shape
        if n_experts == 1:
            return None
        penalty = np.full(d, self.alpha)
        grad = statistics["gradient"].copy()
        grad[:, :d] -= 2.0 * penalty * coef
        if "hessian" in statistics:
            hessian = statistics["hessian"]
            if "hessian_weight" in statistics:  # a subsample's Hessian, to the whole's scale
                hessian = hessian * (total_weight / max(statistics["hessian_weight"], 1e-300))
            step, decrement = penalised_newton_step(grad, hessian, penalty)
        else:
            bound = boehning_bound(statistics["gram"], statistics["x_sum"],
                                   statistics["w_sum"], penalty)
            step = bound_step(grad, bound)
            decrement = float(np.sum(grad * step))
        if not np.isfinite(decrement) or decrement <= rounding_resolution(
                objective, total_weight, dtype):
            return None
        return step

    @staticmethod
    def step(gate, direction, t):
        """The gate moved by ``t`` times ``direction``, its softmax shift removed."""
        d = gate["coef"].shape[1]
        coef, intercept = center(gate["coef"] + t * direction[:, :d],
                                 gate["intercept"] + t * direction[:, d])
        return {"coef": coef, "intercept": intercept}

    # ---- gradient solvers --------------------------------------------------
    def gradient(self, kernels, X, logit_gradient, gate, penalty_scale=1.0, *,
                 log_prior_gradient=None):
        """Gradient of the objective in the gate, from its gradient in the logits (n, K).

        (``log_prior_gradient`` serves gates that are not one softmax; unused.)
        """
        return {
            "coef": (kernels.to_host(logit_gradient.T @ X)
                     - 2.0 * self.alpha * penalty_scale * gate["coef"]),
            "intercept": kernels.to_host(logit_gradient.sum(axis=0)),
        }

    @staticmethod
    def coordinates(gate):
        return _SoftmaxCoordinates(gate)

    # ---- growing and pruning -------------------------------------------
    @staticmethod
    def split(gate, j):
        """Expert ``j``'s gate row duplicated last; both halves share its old gate exactly."""
        grown = append_expert(gate, j)
        grown["intercept"][[j, -1]] -= np.log(2.0)
        return grown

    @staticmethod
    def take(gate, index):
        """The gate of experts ``index``: the softmax of the kept rows is the old gate
        conditioned on the kept experts."""
        return take_experts(gate, index)

    # ---- user scale ------------------------------------------------------
    @staticmethod
    def to_user(gate, x_mean, x_scale):
        """``(coef, intercept)`` acting on raw x, from the standardised gate."""
        coef = gate["coef"] / x_scale
        return coef, gate["intercept"] - coef @ x_mean

    @staticmethod
    def from_user(coef, intercept, x_mean, x_scale):
        """Inverse of :meth:`to_user`."""
        return {"coef": coef * x_scale, "intercept": intercept + coef @ x_mean}

    def public(self, gate, x_mean, x_scale):
        """The estimator's public attributes of the gate (name -> array, user's scale)."""
        coef, intercept = self.to_user(gate, x_mean, x_scale)
        return {"gate_coef_": coef, "gate_intercept_": intercept}

    def from_public(self, attributes, x_mean, x_scale):
        """The gate from the public attributes (a mapping, as :meth:`public` names them)."""
        return self.from_user(attributes["gate_coef_"], attributes["gate_intercept_"], x_mean,
                              x_scale)
