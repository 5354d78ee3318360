"""Student-t linear experts, p_k(y | x) = t(y; x w_k + c_k, diag(sigma2_k), nu_k).

Robust mixtures of regressions (Peel & McLachlan 2000; the robust mixture
of experts of Chamroukhi 2016): each expert's noise is a Student t with
its own scale sigma2_k and degrees of freedom nu_k, so a few gross outliers
are down-weighted instead of dragging the expert's line. Several targets
form one p-variate t per expert with a diagonal scale (one latent scale
variable per row and expert, shared by the targets). Parameters
``{"coef": (K, t, d), "intercept": (K, t), "variance": (K, t), "dof": (K,)}``
on the standardised inputs. The regressor's family for ``expert="student_t"``.

The M-step is one cycle of ECM (expectation / conditional maximisation,
Meng & Rubin 1993) on each expert's weighted t log-likelihood: at the
current parameters, the latent weights u_ik = (nu_k + p) / (nu_k +
delta_ik) (delta: the squared Mahalanobis residual); then weighted ridge
least squares with weights W_ik u_ik, the scale, and nu_k by the 1-D root
of the digamma equation. Each conditional step maximises the same expected
complete-data objective, so the expert's penalised log-likelihood does not
fall (a generalised M-step; ``exact_solve`` holds for one-pass EM), and EM
stays monotone.
"""

import numpy as np
from scipy.optimize import brentq, minimize_scalar
from scipy.special import digamma, gammaln

from .._backend import to_host
from .._parameters import copy_part
from ._family import (
    SPLIT_STEP,
    ExpertFamily,
    active_experts,
    penalty_stiffness,
    split_symmetrically,
)
from ._gaussian import _GaussianCoordinates, ridge_step, target_moments

# Degrees of freedom are kept in [MIN_DOF, MAX_DOF]. Below 0.5 the t has
# hardly any mass near its centre to fit a line with; at 1e6 it is Gaussian
# to within 1e-6 of the log-density of any row within 3 scales.
MIN_DOF = 0.5
MAX_DOF = 1e6
# Where EM starts: tails heavy enough that outliers lose weight from the
# first M-step, light enough to be close to the Gaussian fit.
INITIAL_DOF = 10.0


def _kernel(kernels, name):
    """The backend's Student-t kernel ``name``, or a ValueError where it has none."""
    function = getattr(kernels, name, None)
    if function is None:
        raise ValueError(
            f"expert='student_t' is not available with backend={kernels.name!r}: it has no "
            f"{name} kernel. Use backend='numba' or 'numpy'."
        )
    return function


def dof_equation_root(offset):
    """The nu maximising the ECM's expected complete-data objective, in [MIN_DOF, MAX_DOF].

    Solves log(nu / 2) - psi(nu / 2) + 1 + ``offset`` = 0, where ``offset``
    = mean_W(log u - u) + psi((nu' + p) / 2) - log((nu' + p) / 2) at the
    current nu'. The left side decreases in nu (the objective is concave in
    nu), so the root is unique and, where it falls outside the bounds, the
    nearer bound is the constrained maximiser.
    """

    def slope(log_nu):
        half = 0.5 * np.exp(log_nu)
        return np.log(half) - digamma(half) + 1.0 + offset

    low, high = np.log(MIN_DOF), np.log(MAX_DOF)
    if not np.isfinite(offset) or slope(high) >= 0.0:
        return MAX_DOF if np.isfinite(offset) else np.nan
    if slope(low) <= 0.0:
        return MIN_DOF
    return float(np.exp(brentq(slope, low, high, xtol=1e-12, rtol=1e-12)))


class _StudentTCoordinates(_GaussianCoordinates):
    """The Gaussian experts' coordinates, and log(nu) for the degrees of freedom."""

    def __init__(self, experts, center, target_scale, floor, stiffness):
        super().__init__(experts, center, target_scale, floor, stiffness)
        self.bound("dof", lower=np.log(MIN_DOF), upper=np.log(MAX_DOF))

    def _to_flat(self, key, value):
        return np.log(value) if key == "dof" else super()._to_flat(key, value)

    def _from_flat(self, key, value):
        return np.exp(value) if key == "dof" else super()._from_flat(key, value)

    def _gradient_to_flat(self, key, value):
        # the family gives the gradient in log(nu) already
        return value if key == "dof" else super()._gradient_to_flat(key, value)


class StudentTExperts(ExpertFamily):
    """Linear experts with Student-t noise of their own scale and degrees of freedom.

    Parameters
    ----------
    weight_penalty : ndarray of shape (d,)
        Penalty per standardised weight: alpha / scale_j**2. It enters the
        negative log-likelihood as alpha ||w_k||^2 / (2 sigma2_k), as for
        Gaussian experts (the t's scale in place of the variance).
    variance_floor : ndarray of shape (t,)
        Smallest scale sigma2 an expert may take, per target.
    """

    def __init__(self, weight_penalty, variance_floor):
        self.weight_penalty = np.asarray(weight_penalty, dtype=float)
        self.variance_floor = np.asarray(variance_floor, dtype=float)

    def state(self):
        return {"weight_penalty": self.weight_penalty, "variance_floor": self.variance_floor}

    def neutral(self, Y, sample_weight, n_experts, n_features):
        """Every expert at the target's mean and variance, zero weights, nu = INITIAL_DOF."""
        mean, variance, _ = target_moments(Y, sample_weight)
        variance = np.maximum(variance, self.variance_floor)
        return {
            "coef": np.zeros((n_experts, Y.shape[1], n_features)),
            "intercept": np.tile(mean, (n_experts, 1)),
            "variance": np.tile(variance, (n_experts, 1)),
            "dof": np.full(n_experts, INITIAL_DOF),
        }

    @staticmethod
    def n_parameters(n_experts, n_features, n_outputs):
        """Free parameters of the experts: weights, intercepts, scales and degrees of freedom."""
        return n_experts * (n_outputs * (n_features + 2) + 1)

    # ---- densities and objective -----------------------------------------
    def log_density(self, kernels, X, Y, experts):
        """Each expert's log-density (a p-variate t over the targets): (n, K)."""
        return _kernel(kernels, "student_t_log_density")(
            X, Y, experts["coef"], experts["intercept"], experts["variance"], experts["dof"])

    def fused_e_step(self, kernels, X, Y, gate_coef, gate_intercept, experts, resp,
                     log_gate_out=None):
        """The fused softmax-gate E-step kernel (see ``mixexp._model``)."""
        return _kernel(kernels, "student_t_e_step")(
            X, Y, gate_coef, gate_intercept, experts["coef"], experts["intercept"],
            experts["variance"], experts["dof"], resp, log_gate_out=log_gate_out)

    def _weight_penalties(self, coef):
        """alpha ||w_kt||^2 on the user's scale, per expert and target: (K, t)."""
        return np.sum(self.weight_penalty * coef**2, axis=2)

    def penalty(self, experts):
        """Ridge penalty alpha ||w_kt||^2 / (2 sigma2_kt), summed over experts and targets."""
        return float(np.sum(self._weight_penalties(experts["coef"]) / (2.0 * experts["variance"])))

    # ---- EM ----------------------------------------------------------------
    def _latent_moments(self, kernels, X, Y, W, experts, gram=True):
        """Moments of the rows weighted by W u at ``experts`` (float64, host)."""
        # W u, and sum_i W_ik (log u_ik - u_ik) (the nu equation's data term)
        weights, log_weight_sum, w_sum = _kernel(kernels, "student_t_weights")(
            X, Y, W, experts["coef"], experts["intercept"], experts["variance"], experts["dof"])
        statistics = {"w_sum": w_sum, "log_weight_sum": log_weight_sum}
        if gram:
            gram_, x_sum, _, _, wu_sum = kernels.weighted_moments(X, Y, weights)
            statistics.update(gram=gram_, x_sum=x_sum, wu_sum=wu_sum)
        xr, r_sum, rss = kernels.gaussian_residual_moments(X, Y, weights, experts["coef"],
                                                          experts["intercept"])
        statistics.update(xr=xr, r_sum=r_sum, rss=rss)
        return statistics

    def statistics(self, kernels, X, Y, W, experts):
        """Additive statistics of rows for :meth:`solve` (float64, host).

        With u the latent weights at ``experts``: the Gaussian family's
        statistics at the weights W u (``gram`` (K, d, d), ``x_sum`` (K, d),
        ``wu_sum`` (K,), ``xr`` (K, t, d), ``r_sum`` (K, t), ``rss`` (K, t)),
        ``w_sum`` (K,) = sum_i W_ik and ``log_weight_sum`` (K,) =
        sum_i W_ik (log u_ik - u_ik).
        """
        return self._latent_moments(kernels, X, Y, W, experts)

    def fused_pass(self, kernels, X, Y, sample_weight, gate_coef, gate_intercept, experts,
                   hessian_stride):
        """One-pass EM statistics of a chunk from the fused softmax-gate kernel
        (``kernels.student_t_pass``; see ``mixexp._model``), as the Gaussian
        family's; None where the backend has no such kernel."""
        if not hasattr(kernels, "student_t_pass"):
            return None
        (log_likelihood, gram, x_sum, wu_sum, xr, r_sum, rss, gate_gradient, gate_hessian,
         hessian_weight, log_weight_sum, w_sum) = kernels.student_t_pass(
            X, Y, sample_weight, gate_coef, gate_intercept, experts["coef"],
            experts["intercept"], experts["variance"], experts["dof"], hessian_stride)
        statistics = {"w_sum": w_sum, "log_weight_sum": log_weight_sum, "gram": gram,
                      "x_sum": x_sum, "wu_sum": wu_sum, "xr": xr, "r_sum": r_sum, "rss": rss}
        # each expert's share of the weight, sum_i s_i h_ik, is its w_sum
        return (log_likelihood, w_sum.copy(), statistics, gate_gradient, gate_hessian,
                hessian_weight)

    def solve(self, statistics, experts):
        """One ECM cycle per expert from :meth:`statistics`: coefficients, scale, then nu.

        The expected complete-data objective of expert k is, in (w, c, sigma2),
        that of a Gaussian expert with weights W u and S_k/2 log sigma2
        (S_k = sum_i W_ik): ridge weights with weights W u (whatever sigma2
        is), then sigma2 = (RSS_k + alpha ||w||^2) / S_k, floored; in nu it
        is concave, maximised by :func:`dof_equation_root`.
        """
        w_sum = statistics["w_sum"]
        active = active_experts(w_sum)
        moments = {"gram": statistics["gram"], "x_sum": statistics["x_sum"],
                   "w_sum": statistics["wu_sum"], "xr": statistics["xr"],
                   "r_sum": statistics["r_sum"], "rss": statistics["rss"]}
        # experts all but out of u's weight (every row an outlier) keep their lines
        coef, intercept, new_rss = ridge_step(moments, experts, self.weight_penalty,
                                              active & active_experts(statistics["wu_sum"]))
        new_rss += self._weight_penalties(coef)
        variance = experts["variance"].copy()
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            fitted_variance = new_rss / w_sum[:, None]
        variance[active] = np.maximum(fitted_variance[active], self.variance_floor)
        dof = experts["dof"].copy()
        half = 0.5 * (dof + coef.shape[1])
        with np.errstate(invalid="ignore", divide="ignore"):
            offset = statistics["log_weight_sum"] / w_sum + digamma(half) - np.log(half)
        for k in np.flatnonzero(active):
            root = dof_equation_root(offset[k])
            if np.isfinite(root):
                dof[k] = root
        return {"coef": coef, "intercept": intercept, "variance": variance, "dof": dof}

    def fit_dof(self, kernels, X, Y, W, experts):
        """Each expert's nu maximising sum_i W_ik log p_k(y_i | x_i) at its line and scale.

        A conditional maximisation of the observed objective (ECME's step
        for nu): the search is over log nu in [MIN_DOF, MAX_DOF] on the
        rows' squared residuals, and a nu is kept only where it does not
        lower that expert's objective.
        """
        p = experts["coef"].shape[1]
        n_experts = experts["dof"].shape[0]
        # delta from the weights at nu = 1: u = (1 + p) / (1 + delta)
        weights = _kernel(kernels, "student_t_weights")(
            X, Y, kernels.xp.ones_like(W), experts["coef"], experts["intercept"],
            experts["variance"], np.ones(n_experts))[0]
        delta = kernels.to_host((1.0 + p) / weights.astype(np.float64) - 1.0)
        W = kernels.to_host(W).astype(np.float64)
        log_scale = 0.5 * np.log(experts["variance"]).sum(axis=1)
        dof = experts["dof"].copy()
        for k in np.flatnonzero(active_experts(W.sum(axis=0))):
            w, d = W[:, k], np.maximum(delta[:, k], 0.0)

            def objective(log_nu, w=w, d=d, k=k):
                nu = np.exp(log_nu)
                const = (gammaln(0.5 * (nu + p)) - gammaln(0.5 * nu)
                         - 0.5 * p * np.log(nu * np.pi) - log_scale[k])
                return float(w @ (const - 0.5 * (nu + p) * np.log1p(d / nu)))

            found = minimize_scalar(lambda v: -objective(v),
                                    bounds=(np.log(MIN_DOF), np.log(MAX_DOF)),
                                    method="bounded", options={"xatol": 1e-8})
            candidates = [np.log(dof[k]), found.x, np.log(MAX_DOF), np.log(MIN_DOF)]
            values = [objective(c) for c in candidates]
            dof[k] = float(np.exp(candidates[int(np.argmax(values))]))
        return {**experts, "dof": dof}

    def m_step(self, kernels, X, Y, W, experts):
        """One ECM cycle (see :meth:`solve`) from one pass over the rows for u, and the
        moments' passes."""
        return self.solve(self.statistics(kernels, X, Y, W, experts), experts)

    # ---- gradient solvers --------------------------------------------------
    def gradient(self, kernels, X, Y, W, experts, penalty_scale=1.0):
        """Gradient of sum_ik W_ik log p_k(y_i | x_i) - penalty_scale * penalty.

        "coef" (K, t, d), "intercept" (K, t) and "variance" (K, t) as for
        Gaussian experts with the residuals weighted by W u (the variance's
        in log sigma2), and "dof" (K,) in log nu:
        nu/2 [S (psi((nu + p)/2) - psi(nu/2) - log((nu + p)/nu) + 1)
        + sum_i W_i (log u_i - u_i)].
        """
        coef, variance, dof = experts["coef"], experts["variance"], experts["dof"]
        moments = self._latent_moments(kernels, X, Y, W, experts, gram=False)
        w_sum = moments["w_sum"]
        p = coef.shape[1]
        penalties = penalty_scale * self._weight_penalties(coef)
        dof_term = w_sum * (digamma(0.5 * (dof + p)) - digamma(0.5 * dof)
                            - np.log1p(p / dof) + 1.0) + moments["log_weight_sum"]
        return {
            "coef": (moments["xr"] - penalty_scale * self.weight_penalty * coef)
            / variance[:, :, None],
            "intercept": moments["r_sum"] / variance,
            "variance": 0.5 * ((moments["rss"] + penalties) / variance - w_sum[:, None]),
            "dof": 0.5 * dof * dof_term,
        }

    def coordinate_reference(self, Y, sample_weight):
        """As the Gaussian family's: the targets' mean and spread, and the total weight."""
        mean, variance, _ = target_moments(Y, sample_weight)
        scale = np.sqrt(variance)
        return {"center": mean, "scale": np.where(scale > 0, scale, 1.0),
                "total_weight": float(to_host(sample_weight.sum()))}

    def coordinates(self, experts, reference):
        return _StudentTCoordinates(experts, reference["center"], reference["scale"],
                                    self.variance_floor,
                                    penalty_stiffness(self.weight_penalty, reference))

    def adapt(self, experts, target_variance, previous_target_variance):
        """Scales fitted to a target at least 4x narrower are raised (as Gaussian experts')."""
        grown = target_variance > 4.0 * previous_target_variance
        if not np.any(grown):
            return experts
        adapted = copy_part(experts)
        adapted["variance"][:, grown] = np.maximum(adapted["variance"][:, grown],
                                                   target_variance[grown])
        return adapted

    # ---- growing -----------------------------------------------------------
    def split(self, experts, j, rng):
        # steps in units of the expert's scale, per target; nu copied
        return split_symmetrically(experts, j, rng, SPLIT_STEP * np.sqrt(experts["variance"][j]))

    # ---- prediction --------------------------------------------------------
    @staticmethod
    def mean(kernels, X, experts):
        """Each expert's location x w_k + c_k (its mean where nu_k > 1): (n, K, t)."""
        return kernels.gaussian_predict(X, experts["coef"], experts["intercept"])

    @staticmethod
    def noise_variance(xp, gate, means, experts):
        """The experts' noise variance mixed by ``gate`` (n, K): (n, t).

        An expert's variance is sigma2_k nu_k / (nu_k - 2) where nu_k > 2, and
        infinite otherwise; an expert with a zero gate adds nothing (not
        0 * inf). So the result is inf exactly where an expert with nu_k <= 2
        has a positive gate, never NaN.
        """
        dof = experts["dof"]
        with np.errstate(divide="ignore"):
            variance = np.where((dof > 2.0)[:, None],
                                experts["variance"] * (dof / np.maximum(dof - 2.0, 1e-300))[:, None],
                                np.inf)
        finite = xp.asarray(np.where(np.isfinite(variance), variance, 0.0), dtype=gate.dtype)
        mixed = gate @ finite
        heavy = ~np.isfinite(variance)  # (K, t)
        if heavy.any():
            # the gate of the infinite-variance experts, per target (gates are >= 0)
            infinite = gate @ xp.asarray(heavy, dtype=gate.dtype) > 0
            mixed = xp.where(infinite, xp.asarray(np.inf, dtype=gate.dtype), mixed)
        return mixed

    # ---- user scale ------------------------------------------------------
    def to_user(self, experts, x_mean, x_scale, squeeze=False):
        coef = experts["coef"] / x_scale
        intercept = experts["intercept"] - coef @ x_mean
        variance = experts["variance"].copy()
        if squeeze:
            coef, intercept, variance = coef[:, 0], intercept[:, 0], variance[:, 0]
        return {"expert_coef_": coef, "expert_intercept_": intercept,
                "expert_variance_": variance, "expert_dof_": experts["dof"].copy()}

    def from_user(self, attributes, n_experts, x_mean, x_scale):
        n_targets = self.variance_floor.shape[0]
        coef = np.reshape(attributes["expert_coef_"], (n_experts, n_targets, -1))
        intercept = np.reshape(attributes["expert_intercept_"], (n_experts, n_targets))
        variance = np.reshape(attributes["expert_variance_"], (n_experts, n_targets)).copy()
        # a Gaussian fit's experts (warm_start from expert="gaussian"): the t's Gaussian limit
        dof = (np.reshape(attributes["expert_dof_"], (n_experts,)).astype(float)
               if "expert_dof_" in attributes else np.full(n_experts, MAX_DOF))
        return {"coef": coef * x_scale, "intercept": intercept + coef @ x_mean,
                "variance": variance, "dof": dof}
