"""Expert families: their E-step, M-step, penalty and parameter count.

A family works on internally standardised inputs ``X`` (n, d) and a 2-D
target ``Y`` (n, t); parameters live in a dict shared with the gate
(``gate_coef``, ``gate_intercept``) so that a solver can treat them as one.
Per-sample arrays live in the namespace of the kernel bundle (``kernels.xp``,
the GPU for backend="cupy"); parameters and the M-step's small solves are
host NumPy.
"""

import numpy as np

from ._linalg import solve_psd
from ._logistic import fit_multinomial_logistic

# An expert whose total weight falls below this fraction of the data keeps
# its parameters: the weighted fit would be noise, and leaving it unchanged
# is a valid (generalised) M-step, so EM stays monotone.
_EMPTY_EXPERT = 1e-10


class GaussianExperts:
    """Linear-Gaussian experts, p_k(y | x) = N(y; x w_k + c_k, diag(sigma2_k)).

    Parameters
    ----------
    weight_penalty : ndarray of shape (d,)
        Penalty per standardised weight: alpha / scale_j**2, so that it
        equals alpha * ||w||^2 on the user's scale. It enters the negative
        log-likelihood as alpha ||w_k||^2 / (2 sigma2_k): Ridge's convention
        on the squared error, so one expert gives Ridge's coefficients.
    variance_floor : ndarray of shape (t,)
        Smallest variance an expert may take, per target.
    """

    def __init__(self, weight_penalty, variance_floor):
        self.weight_penalty = weight_penalty
        self.variance_floor = variance_floor

    def e_step(self, kernels, X, Y, params, resp, log_gate_out=None):
        """Fill ``resp`` (n, K) (and the log gate into ``log_gate_out``); return log p(y | x)."""
        return kernels.gaussian_e_step(
            X, Y, params["gate_coef"], params["gate_intercept"], params["coef"],
            params["intercept"], params["variance"], resp, log_gate_out=log_gate_out,
        )

    def log_density(self, kernels, X, Y, params):
        """Each expert's log-density, shape (n, K)."""
        return kernels.gaussian_log_density(
            X, Y, params["coef"], params["intercept"], params["variance"]
        )

    def m_step(self, kernels, X, Y, W, params):
        """Exact M-step per expert: ridge weights, then the variance.

        For expert k the penalised expected log-likelihood is
        -S_k/2 log sigma2 - (RSS_k(w, c) + alpha ||w||^2) / (2 sigma2): its
        maximiser in (w, c) is the weighted ridge solution whatever sigma2
        is, and then sigma2 = (RSS_k + alpha ||w||^2) / S_k, floored.
        """
        gram, x_sum, xy, y_sum, w_sum = kernels.weighted_moments(X, Y, W)
        coef = params["coef"].copy()
        intercept = params["intercept"].copy()
        variance = params["variance"].copy()
        d = coef.shape[2]
        active = w_sum > _EMPTY_EXPERT * max(w_sum.sum(), np.finfo(float).tiny)

        system = np.empty((d + 1, d + 1))
        for k in np.flatnonzero(active):
            system[:d, :d] = gram[k]
            system[np.arange(d), np.arange(d)] += self.weight_penalty
            system[:d, d] = system[d, :d] = x_sum[k]
            system[d, d] = w_sum[k]
            rhs = np.concatenate([xy[k], y_sum[k][None, :]], axis=0)
            # Solve for the step from the current parameters, not the new ones:
            # where an ill-conditioned system is solved by truncated least
            # squares, truncated directions then stay put instead of jumping
            # to zero, so the penalised RSS can only go down (EM stays monotone).
            current = np.concatenate([coef[k].T, intercept[k][None, :]], axis=0)
            step = solve_psd(system, rhs - system @ current)
            coef[k] += step[:d].T
            intercept[k] += step[d]

        rss = kernels.gaussian_weighted_rss(X, Y, W, coef, intercept)
        rss += self._weight_penalties(coef)
        # inactive experts (masked below) may divide by a vanishing weight
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            fitted_variance = rss / w_sum[:, None]
        variance[active] = np.maximum(fitted_variance[active], self.variance_floor)
        return {"coef": coef, "intercept": intercept, "variance": variance}

    def _weight_penalties(self, coef):
        """alpha ||w_kt||^2 on the user's scale, per expert and target: (K, t)."""
        return np.sum(self.weight_penalty * coef**2, axis=2)

    def penalty(self, params):
        """Ridge penalty alpha ||w_kt||^2 / (2 sigma2_kt), summed over experts and targets."""
        return float(np.sum(self._weight_penalties(params["coef"]) / (2.0 * params["variance"])))

    def gradient(self, kernels, X, Y, W, params, penalty_scale=1.0):
        """Gradient of sum_ik W_ik log p_k(y_i | x_i) - penalty_scale * penalty.

        Returns a dict keyed like the parameters: "coef" (K, t, d),
        "intercept" (K, t) and "variance" (K, t), the last being the
        derivative with respect to log sigma2_kt, the scale on which the
        gradient solvers move variances.
        """
        coef, variance = params["coef"], params["variance"]
        xr, r_sum, rss = kernels.gaussian_residual_moments(X, Y, W, coef, params["intercept"])
        penalties = penalty_scale * self._weight_penalties(coef)
        return {
            "coef": (xr - penalty_scale * self.weight_penalty * coef) / variance[:, :, None],
            "intercept": r_sum / variance,
            "variance": 0.5 * ((rss + penalties) / variance
                               - kernels.to_host(W.sum(axis=0))[:, None]),
        }

    @staticmethod
    def n_parameters(n_experts, n_features, n_targets):
        """Free parameters of the experts: weights, intercepts, variances."""
        return n_experts * n_targets * (n_features + 2)


class LogisticExperts:
    """Multinomial logistic experts, p_k(y = c | x) = softmax_c(x w_kc + b_kc).

    Targets ``Y`` are one-hot classes (n, C); a binary problem is the
    two-class case of the same model.

    Parameters
    ----------
    weight_penalty : ndarray of shape (d,)
        Penalty per standardised weight: alpha / scale_j**2, so that it
        equals alpha * ||w||^2 on the user's scale, as LogisticRegression's
        penalty ||w||^2 / (2 C) with alpha = 1 / (2 C).
    """

    def __init__(self, weight_penalty):
        self.weight_penalty = weight_penalty

    def e_step(self, kernels, X, Y, params, resp, log_gate_out=None):
        """Fill ``resp`` (n, K) (and the log gate into ``log_gate_out``); return log p(y | x)."""
        return kernels.logistic_e_step(
            X, Y, params["gate_coef"], params["gate_intercept"], params["coef"],
            params["intercept"], resp, log_gate_out=log_gate_out,
        )

    def log_density(self, kernels, X, Y, params):
        """Each expert's log-probability of the observed class, shape (n, K)."""
        return kernels.logistic_log_density(X, Y, params["coef"], params["intercept"])

    def m_step(self, kernels, X, Y, W, params):
        """Each expert by weighted multinomial logistic regression (Newton, warm-started).

        Expert k fits the classes with weights W[:, k]; each fit never lowers
        its penalised objective, so EM stays monotone.
        """
        coef = params["coef"].copy()
        intercept = params["intercept"].copy()
        w_sum = kernels.to_host(W.sum(axis=0))
        active = w_sum > _EMPTY_EXPERT * max(w_sum.sum(), np.finfo(float).tiny)
        log_p = kernels.xp.empty(Y.shape, dtype=X.dtype)
        for k in np.flatnonzero(active):
            coef[k], intercept[k] = fit_multinomial_logistic(
                kernels, X, W[:, k : k + 1] * Y, coef[k], intercept[k], self.weight_penalty,
                log_p=log_p,
            )
        return {"coef": coef, "intercept": intercept}

    def penalty(self, params):
        """alpha ||w_kc||^2 summed over experts and classes (user's scale)."""
        return float(np.sum(self.weight_penalty * params["coef"] ** 2))

    def gradient(self, kernels, X, Y, W, params, penalty_scale=1.0):
        """Gradient of sum_ik W_ik log p_k(y_i | x_i) - penalty_scale * penalty.

        Returns a dict keyed like the parameters: "coef" (K, C, d) and
        "intercept" (K, C).
        """
        coef = params["coef"]
        grad_coef, grad_intercept = kernels.logistic_gradient(X, Y, W, coef, params["intercept"])
        grad_coef -= 2.0 * penalty_scale * self.weight_penalty * coef
        return {"coef": grad_coef, "intercept": grad_intercept}

    @staticmethod
    def n_parameters(n_experts, n_features, n_classes):
        """Free parameters: one class per expert is redundant under the softmax."""
        return n_experts * (n_classes - 1) * (n_features + 1)
