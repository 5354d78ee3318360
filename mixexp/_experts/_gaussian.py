"""Linear-Gaussian experts, p_k(y | x) = N(y; x w_k + c_k, diag(sigma2_k)).

Parameters ``{"coef": (K, t, d), "intercept": (K, t), "variance": (K, t)}``
on the standardised inputs. The regressor's family.
"""

import numpy as np

from .._backend import array_namespace, to_host
from .._linalg import solve_psd
from .._parameters import Coordinates, copy_part
from ._family import (
    SPLIT_STEP,
    ExpertFamily,
    active_experts,
    penalty_stiffness,
    split_symmetrically,
)

# Log-variances are kept below log(target variance) + this, so exp() cannot
# overflow during a line search; the bound is never active at a sensible fit.
_LOG_VARIANCE_HEADROOM = 40.0
_MIN_VARIANCE = 1e-300


def _weighted_center_scale(Y, sample_weight):
    """Weighted mean and spread (1 where zero) of each target: host arrays (t,)."""
    xp = array_namespace(Y)
    weights = sample_weight / sample_weight.sum()
    center = weights @ Y
    scale = to_host(xp.sqrt(weights @ (Y - center) ** 2))
    return to_host(center), np.where(scale > 0, scale, 1.0)


def target_moments(Y, sample_weight):
    """Weighted mean, variance and mean square of each target: host arrays (t,).

    Computed where ``Y`` lives (on the device for CuPy input).
    """
    xp = array_namespace(Y)
    mean = xp.average(Y, axis=0, weights=sample_weight)
    variance = xp.average((Y - mean) ** 2, axis=0, weights=sample_weight)
    mean_square = xp.average(Y**2, axis=0, weights=sample_weight)
    return to_host(mean), to_host(variance), to_host(mean_square)


def variance_floor(Y, sample_weight, relative_floor):
    """Smallest variance an expert may take, per target: (t,).

    ``relative_floor`` times the target's variance; for a target constant
    up to rounding (relative spread below 1e-12; its computed variance is
    ~1e-31, not 0), which has no noise scale of its own, a millionth of its
    magnitude, far above the rounding errors of the residuals, so the fit is
    never driven by rounding noise.
    """
    _, variance, mean_square = target_moments(Y, sample_weight)
    constant = variance <= 1e-24 * mean_square
    # float32 residuals round at ~1e-7 |y|: the floor stays well above that
    relative_std = max(1e-6, 1e4 * float(np.finfo(Y.dtype).eps))
    constant_floor = relative_std**2 * mean_square
    floor = np.where(constant, constant_floor, relative_floor * variance)
    # A variance below this cannot be worked with (its reciprocal overflows).
    # A constant target is fitted exactly at it; a varying one whose floor
    # falls below it would have every variance clamped up to it, far above
    # its noise, and the fit could not tell its experts apart: refused.
    unrepresentable = ~constant & (floor < _MIN_VARIANCE)
    if np.any(unrepresentable):
        spread = float(np.sqrt(variance[unrepresentable].max()))
        raise ValueError(
            f"y varies by a standard deviation of only {spread:.3g}: its expert variances, "
            f"down to variance_floor times {spread**2:.3g}, are below float64's usable "
            f"range ({_MIN_VARIANCE:.0e}). Multiply y by a constant (the fit scales with "
            "it) or raise variance_floor."
        )
    return np.maximum(floor, _MIN_VARIANCE)


def ridge_step(statistics, experts, weight_penalty, active):
    """Weighted ridge weights and intercepts of the ``active`` experts, and their RSS.

    ``statistics``: weighted moments of (x, 1) and of the residuals at the
    current parameters (see :meth:`GaussianExperts.statistics`);
    ``weight_penalty``: per standardised weight, (d,) for every expert or
    (K, d) for each its own. Returns
    ``(coef, intercept, rss)``, the RSS (K, t) at the new parameters (not
    penalised); inactive experts keep their parameters and RSS. The system
    is solved for the step from the current parameters (right-hand side: the
    residual moments): where an ill-conditioned system is solved by
    truncated least squares, truncated directions then stay put instead of
    jumping to zero, so the penalised RSS can only go down. The new RSS is
    the current one updated by the step, r' = r - [x, 1] . step, so no
    second pass over the rows is needed; its rounding error is relative to
    the current RSS, not to the targets' spread.
    """
    gram, x_sum, w_sum = statistics["gram"], statistics["x_sum"], statistics["w_sum"]
    xr, r_sum, rss = statistics["xr"], statistics["r_sum"], statistics["rss"]
    coef = experts["coef"].copy()
    intercept = experts["intercept"].copy()
    d = coef.shape[2]
    # one penalty (d,) for every expert, or each expert's own (K, d)
    penalty = np.broadcast_to(weight_penalty, (coef.shape[0], d))
    new_rss = rss.copy()
    moments = np.empty((d + 1, d + 1))
    for k in np.flatnonzero(active):
        moments[:d, :d] = gram[k]
        moments[:d, d] = moments[d, :d] = x_sum[k]
        moments[d, d] = w_sum[k]
        system = moments.copy()
        system[np.arange(d), np.arange(d)] += penalty[k]
        residual = np.concatenate([xr[k].T, r_sum[k][None, :]], axis=0)  # (d + 1, t)
        rhs = residual.copy()
        rhs[:d] -= penalty[k][:, None] * coef[k].T
        step = solve_psd(system, rhs)
        coef[k] += step[:d].T
        intercept[k] += step[d]
        new_rss[k] = (rss[k] - 2.0 * np.sum(step * residual, axis=0)
                      + np.sum(step * (moments @ step), axis=0))
    return coef, intercept, new_rss


# The penalties per standardised weight that alpha="auto" chooses among (by
# generalised cross-validation): from the old fixed default to strong shrinkage.
GCV_PENALTY_GRID = np.logspace(-4, 4, 33)


def gcv_penalties(statistics, experts, grid=GCV_PENALTY_GRID, counts=None):
    """Each expert's ridge penalty minimising generalised cross-validation: (K,).

    For expert k, the weighted ridge regression of the targets on the
    standardised inputs (intercept free) that its M-step solves, with the
    weights W of ``statistics`` (see :meth:`GaussianExperts.statistics`):
    GCV(lambda) = RSS(lambda) / (n_k - df(lambda))^2 (Golub, Heath & Wahba
    1979), with df(lambda) = tr of the centred hat matrix
    = sum_j s_j / (s_j + lambda) over the eigenvalues s_j of the centred
    weighted Gram matrix and n_k the expert's count of rows (``counts``,
    default sum_i W_ik), as ``MASS::lm.ridge`` computes it. Several targets
    share one penalty: their RSS, each in units of the expert's noise
    variance, are summed. The RSS of every candidate comes from the
    statistics at the current parameters (the targets' centred moments are
    the residuals' plus the current fit's), so no pass over the rows is
    needed. Experts with no weight, or fewer rows than the least df, keep
    the grid's smallest penalty.
    """
    gram, x_sum, w_sum = statistics["gram"], statistics["x_sum"], statistics["w_sum"]
    xr, r_sum, rss = statistics["xr"], statistics["r_sum"], statistics["rss"]
    counts = w_sum if counts is None else counts
    grid = np.asarray(grid, dtype=float)
    coef, variance = experts["coef"], experts["variance"]
    chosen = np.full(coef.shape[0], grid[0])
    for k in np.flatnonzero(active_experts(w_sum)):
        total = w_sum[k]
        centred_gram = gram[k] - np.outer(x_sum[k], x_sum[k]) / total
        centred_xr = xr[k] - r_sum[k][:, None] * x_sum[k][None, :] / total  # (t, d)
        centred_rss = rss[k] - r_sum[k] ** 2 / total  # (t,)
        # the targets' centred moments: y = r + x . w at the current weights w
        cross = centred_xr + coef[k] @ centred_gram  # (t, d)
        syy = (centred_rss + 2.0 * np.sum(coef[k] * centred_xr, axis=1)
               + np.sum(coef[k] * (coef[k] @ centred_gram), axis=1))
        eigenvalues, vectors = np.linalg.eigh(centred_gram)
        top = eigenvalues.max(initial=0.0)
        if not top > 0:  # no spread in any column: nothing to shrink
            continue
        # in units of the largest eigenvalue (weights rescaled to any scale, penalties
        # from 1e-300 to 1e200 stay representable); directions with no data (rounding
        # noise below 1e-12 of it) neither fit nor count
        kept = eigenvalues > 1e-12 * top
        values = eigenvalues[kept] / top
        projected = (cross @ vectors[:, kept]) ** 2 / top  # (t, r)
        with np.errstate(over="ignore"):
            penalty = np.minimum(grid / top, 1e300)
        denominator = values[None, :] + penalty[:, None]  # (G, r)
        # RSS(lambda) = syy - sum_j p_j^2 (s_j + 2 lambda) / (s_j + lambda)^2
        fitted = projected @ ((values[None, :] + 2.0 * penalty[:, None])
                              / denominator / denominator).T
        residual = np.maximum(syy[:, None] - fitted, 0.0)  # (t, G)
        df = np.sum(values[None, :] / denominator, axis=1)  # (G,)
        # n^2 GCV = RSS / (1 - df / n)^2: the same argmin, and no square of a count that
        # rescaled weights (see rescaled_sample_weight) may have made huge
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.sum(residual / variance[k][:, None], axis=0) / (1.0 - df / counts[k]) ** 2
        score = np.where(counts[k] > df, score, np.inf)
        if np.any(np.isfinite(score)):
            chosen[k] = grid[int(np.argmin(score))]
    return chosen


def per_expert(weight_penalty):
    """A (d,) penalty shared by the experts, or each one's (K, d), against coef (K, t, d)."""
    return weight_penalty[:, None, :] if weight_penalty.ndim == 2 else weight_penalty


class _GaussianCoordinates(Coordinates):
    """Each expert in units of its noise level at the start.

    Weights and intercepts (centred on the target mean) divided by that
    standard deviation sigma0_k, variances as log(sigma_k^2 / sigma0_k^2).
    The curvature of the log-likelihood in an expert's mean is about its
    sample count over sigma_k^2, so these units bring it to the scale of
    the gate's (measured on make_moe_regression, n=2000, K=3: 175 L-BFGS
    iterations instead of 308 with the target's spread as the unit). Adam's
    step sizes are in these units, so a learning rate means the same for
    any target scale.
    """

    def __init__(self, experts, center, target_scale, floor, stiffness):
        super().__init__(experts)
        self.center = center
        self.scale = np.sqrt(experts["variance"])  # (K, t)
        self.stiffness = stiffness  # (d,): see penalty_stiffness
        log_var = 2.0 * np.log(self.scale)
        # a constant target's spread is rounding noise, below its floor: the
        # headroom is then measured from the floor, or the bounds would cross
        log_floor = np.log(floor)
        log_reference = np.maximum(2.0 * np.log(target_scale), log_floor)
        self.bound("variance", lower=log_floor - log_var,
                   upper=_LOG_VARIANCE_HEADROOM + log_reference - log_var)

    def _to_flat(self, key, value):
        if key == "coef":
            return value / self.scale[:, :, None] * self.stiffness
        if key == "intercept":
            return (value - self.center) / self.scale
        return np.log(value) - 2.0 * np.log(self.scale)

    def _from_flat(self, key, value):
        if key == "coef":
            return value * self.scale[:, :, None] / self.stiffness
        if key == "intercept":
            return value * self.scale + self.center
        return np.exp(value + 2.0 * np.log(self.scale))

    def _gradient_to_flat(self, key, value):
        # chain rule of the division by the expert scale; the variance's
        # gradient is taken in log sigma2 already
        if key == "coef":
            return value * self.scale[:, :, None] / self.stiffness
        if key == "intercept":
            return value * self.scale
        return value


def raise_narrow_variances(experts, target_variance, previous_target_variance):
    """``experts`` with each ``"variance"`` fitted to a target at least 4x narrower
    than ``target_variance`` raised to it (see :meth:`GaussianExperts.adapt`)."""
    grown = target_variance > 4.0 * previous_target_variance
    if not np.any(grown):
        return experts
    adapted = copy_part(experts)
    adapted["variance"][:, grown] = np.maximum(adapted["variance"][:, grown],
                                               target_variance[grown])
    return adapted


def split_by_noise_scale(experts, j, rng):
    """Expert ``j`` split in two, stepping in units of its noise scale sqrt("variance"),
    per target; the other parameters (a Student-t's nu) are copied."""
    return split_symmetrically(experts, j, rng, SPLIT_STEP * np.sqrt(experts["variance"][j]))


class GaussianExperts(ExpertFamily):
    """Linear-Gaussian experts.

    Parameters
    ----------
    weight_penalty : ndarray of shape (d,) or (K, d)
        Penalty per standardised weight: alpha / scale_j**2, so that it
        equals alpha * ||w||^2 on the user's scale. It enters the negative
        log-likelihood as alpha ||w_k||^2 / (2 sigma2_k): Ridge's convention
        on the squared error, so one expert gives Ridge's coefficients.
    variance_floor : ndarray of shape (t,)
        Smallest variance an expert may take, per target.
    """

    def __init__(self, weight_penalty, variance_floor):
        self.weight_penalty = np.asarray(weight_penalty, dtype=float)
        self.variance_floor = np.asarray(variance_floor, dtype=float)

    def state(self):
        return {"weight_penalty": self.weight_penalty, "variance_floor": self.variance_floor}

    def neutral(self, Y, sample_weight, n_experts, n_features):
        """Every expert at the target's mean and variance, with zero weights."""
        mean, variance, _ = target_moments(Y, sample_weight)
        variance = np.maximum(variance, self.variance_floor)
        return {
            "coef": np.zeros((n_experts, Y.shape[1], n_features)),
            "intercept": np.tile(mean, (n_experts, 1)),
            "variance": np.tile(variance, (n_experts, 1)),
        }

    @staticmethod
    def n_parameters(n_experts, n_features, n_outputs):
        """Free parameters of the experts: weights, intercepts, variances."""
        return n_experts * n_outputs * (n_features + 2)

    # ---- densities and objective -----------------------------------------
    def log_density(self, kernels, X, Y, experts):
        """Each expert's log-density, summed over targets: (n, K)."""
        return kernels.gaussian_log_density(
            X, Y, experts["coef"], experts["intercept"], experts["variance"]
        )

    def fused_e_step(self, kernels, X, Y, gate_coef, gate_intercept, experts, resp,
                     log_gate_out=None):
        """The fused softmax-gate E-step kernel (see ``mixexp._model``)."""
        return kernels.gaussian_e_step(
            X, Y, gate_coef, gate_intercept, experts["coef"], experts["intercept"],
            experts["variance"], resp, log_gate_out=log_gate_out,
        )

    def _weight_penalties(self, coef):
        """alpha ||w_kt||^2 on the user's scale, per expert and target: (K, t)."""
        return np.sum(per_expert(self.weight_penalty) * coef**2, axis=2)

    def penalty(self, experts):
        """Ridge penalty alpha ||w_kt||^2 / (2 sigma2_kt), summed over experts and targets."""
        return float(np.sum(self._weight_penalties(experts["coef"]) / (2.0 * experts["variance"])))

    # ---- EM ----------------------------------------------------------------
    def statistics(self, kernels, X, Y, W, experts):
        """Additive statistics of rows for :meth:`solve` (float64, host).

        Weighted Gram matrices and sums of (x, 1), and the weighted moments
        of the residuals at the current parameters: ``gram`` (K, d, d),
        ``x_sum`` (K, d), ``w_sum`` (K,), ``xr`` (K, t, d), ``r_sum`` (K, t),
        ``rss`` (K, t).
        """
        gram, x_sum, _, _, w_sum = kernels.weighted_moments(X, Y, W)
        xr, r_sum, rss = kernels.gaussian_residual_moments(X, Y, W, experts["coef"],
                                                          experts["intercept"])
        return {"gram": gram, "x_sum": x_sum, "w_sum": w_sum, "xr": xr, "r_sum": r_sum,
                "rss": rss}

    def solve(self, statistics, experts):
        """Exact M-step per expert from :meth:`statistics`: ridge weights, then the variance.

        For expert k the penalised expected log-likelihood is
        -S_k/2 log sigma2 - (RSS_k(w, c) + alpha ||w||^2) / (2 sigma2): its
        maximiser in (w, c) is the weighted ridge solution whatever sigma2
        is, and then sigma2 = (RSS_k + alpha ||w||^2) / S_k, floored.

        The ridge system is solved for the step from the current parameters
        (right-hand side: the residual moments): where an ill-conditioned
        system is solved by truncated least squares, truncated directions
        then stay put instead of jumping to zero, so the penalised RSS can
        only go down (EM stays monotone). The new RSS is the current one
        updated by the step, r' = r - [x, 1] . step, so no second pass over
        the rows is needed; its rounding error is relative to the current
        RSS, not to the targets' spread.
        """
        w_sum = statistics["w_sum"]
        active = active_experts(w_sum)
        coef, intercept, new_rss = ridge_step(statistics, experts, self.weight_penalty, active)
        variance = experts["variance"].copy()
        new_rss += self._weight_penalties(coef)
        # inactive experts (masked below) may divide by a vanishing weight
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            fitted_variance = new_rss / w_sum[:, None]
        variance[active] = np.maximum(fitted_variance[active], self.variance_floor)
        return {"coef": coef, "intercept": intercept, "variance": variance}

    def fused_pass(self, kernels, X, Y, sample_weight, gate_coef, gate_intercept, experts,
                   hessian_stride):
        """One-pass EM statistics of a chunk from the fused softmax-gate kernel
        (``kernels.gaussian_pass``; see ``mixexp._model``).

        Returns ``(log_likelihood, share, statistics, gate_gradient,
        gate_hessian, hessian_weight)``: :meth:`statistics` at W = s h, and
        the gate's Newton sums (the Hessian over every ``hessian_stride``-th
        row, whose weight is ``hessian_weight``); None where the backend has
        no such kernel.
        """
        if not hasattr(kernels, "gaussian_pass"):
            return None
        (log_likelihood, gram, x_sum, w_sum, xr, r_sum, rss, gate_gradient, gate_hessian,
         hessian_weight) = kernels.gaussian_pass(
            X, Y, sample_weight, gate_coef, gate_intercept, experts["coef"],
            experts["intercept"], experts["variance"], hessian_stride)
        statistics = {"gram": gram, "x_sum": x_sum, "w_sum": w_sum, "xr": xr, "r_sum": r_sum,
                      "rss": rss}
        # each expert's share of the weight, sum_i s_i h_ik, is its w_sum
        return (log_likelihood, w_sum.copy(), statistics, gate_gradient, gate_hessian,
                hessian_weight)

    def m_step(self, kernels, X, Y, W, experts):
        """The exact M-step (see :meth:`solve`) from one pass over the rows."""
        return self.solve(self.statistics(kernels, X, Y, W, experts), experts)

    # ---- gradient solvers --------------------------------------------------
    def gradient(self, kernels, X, Y, W, experts, penalty_scale=1.0):
        """Gradient of sum_ik W_ik log p_k(y_i | x_i) - penalty_scale * penalty.

        "coef" (K, t, d), "intercept" (K, t) and "variance" (K, t), the last
        being the derivative with respect to log sigma2_kt, the scale on
        which the coordinates move variances.
        """
        coef, variance = experts["coef"], experts["variance"]
        xr, r_sum, rss = kernels.gaussian_residual_moments(X, Y, W, coef, experts["intercept"])
        penalties = penalty_scale * self._weight_penalties(coef)
        return {
            "coef": (xr - penalty_scale * per_expert(self.weight_penalty) * coef)
            / variance[:, :, None],
            "intercept": r_sum / variance,
            "variance": 0.5 * ((rss + penalties) / variance
                               - kernels.to_host(W.sum(axis=0))[:, None]),
        }

    def coordinate_reference(self, Y, sample_weight):
        """The targets' weighted mean and spread, ``{"center": (t,), "scale": (t,)}``, and
        the total weight (see :func:`penalty_stiffness`)."""
        center, scale = _weighted_center_scale(Y, sample_weight)
        return {"center": center, "scale": scale,
                "total_weight": float(sample_weight.sum())}

    def coordinates(self, experts, reference):
        return _GaussianCoordinates(experts, reference["center"], reference["scale"],
                                    self.variance_floor,
                                    penalty_stiffness(self.weight_penalty, reference))

    # ---- alpha="auto" ------------------------------------------------------
    def penalty_choice_statistics(self, kernels, X, Y, W, experts):
        """Additive statistics of rows for :meth:`choose_penalties`: :meth:`statistics`."""
        return self.statistics(kernels, X, Y, W, experts)

    def choose_penalties(self, statistics, experts, grid, count_scale=1.0):
        """Each expert's penalty per standardised weight by GCV (:func:`gcv_penalties`):
        (K,); ``count_scale`` turns the statistics' weights into counts of rows."""
        return gcv_penalties(statistics, experts, grid, statistics["w_sum"] * count_scale)

    def adapt(self, experts, target_variance, previous_target_variance):
        """Noise levels fitted to a target at least 4x narrower (a constant or
        shifted first batch) are raised to the stream's target variance: left
        as they were, the experts' densities are too sharp to learn from the
        wider data (and Adam moves in units of them)."""
        return raise_narrow_variances(experts, target_variance, previous_target_variance)

    # ---- growing -----------------------------------------------------------
    def split(self, experts, j, rng):
        return split_by_noise_scale(experts, j, rng)

    # ---- prediction --------------------------------------------------------
    @staticmethod
    def mean(kernels, X, experts):
        """Each expert's mean x w_k + c_k: (n, K, t)."""
        return kernels.gaussian_predict(X, experts["coef"], experts["intercept"])

    @staticmethod
    def variance(experts):
        """Each expert's noise variance: (K, t)."""
        return experts["variance"]

    @staticmethod
    def noise_variance(xp, gate, means, experts):
        """The experts' noise variance mixed by ``gate`` (n, K): sum_k g_k sigma2_k, (n, t).

        ``means`` (n, K, t) are the experts' means (unused: the noise does not
        depend on x). In ``gate``'s dtype (float32 input stays float32).
        """
        return gate @ xp.asarray(experts["variance"], dtype=gate.dtype)

    # ---- user scale ------------------------------------------------------
    def to_user(self, experts, x_mean, x_scale, squeeze=False):
        coef = experts["coef"] / x_scale
        intercept = experts["intercept"] - coef @ x_mean
        variance = experts["variance"].copy()
        if squeeze:
            coef, intercept, variance = coef[:, 0], intercept[:, 0], variance[:, 0]
        return {"expert_coef_": coef, "expert_intercept_": intercept,
                "expert_variance_": variance}

    def from_user(self, attributes, n_experts, x_mean, x_scale):
        n_targets = self.variance_floor.shape[0]
        coef = np.reshape(attributes["expert_coef_"], (n_experts, n_targets, -1))
        intercept = np.reshape(attributes["expert_intercept_"], (n_experts, n_targets))
        variance = np.reshape(attributes["expert_variance_"], (n_experts, n_targets)).copy()
        return {"coef": coef * x_scale, "intercept": intercept + coef @ x_mean,
                "variance": variance}
