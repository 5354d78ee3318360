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
from scipy.optimize import brentq
from scipy.special import digamma, gammaln

from .._backend import to_host
from ._family import ExpertFamily, active_experts, penalty_stiffness
from ._gaussian import (
    _GaussianCoordinates,
    gcv_penalties,
    per_expert,
    raise_narrow_variances,
    ridge_step,
    split_by_noise_scale,
    target_moments,
)

# Degrees of freedom are kept in [MIN_DOF, MAX_DOF]. Below 0.5 the t has
# hardly any mass near its centre to fit a line with; at 1e6 it is Gaussian
# to within 1e-6 of the log-density of any row within 3 scales.
MIN_DOF = 0.5
MAX_DOF = 1e6
# candidates per pass of fit_dof's grid search
_DOF_GRID_POINTS = 49
# Where EM starts: tails heavy enough that outliers lose weight from the
# first M-step, light enough to be close to the Gaussian fit.
INITIAL_DOF = 10.0
# The one-pass nu step's candidates, as multiples of the current nu (see
# StudentTExperts.solve). ECM moves nu by about 0.5 per iteration where the
# noise is nearly Gaussian (the motorcycle data); these let it move 8-fold.
DOF_STEPS = (0.125, 0.5, 2.0, 8.0)
# A step in nu alone is taken only where the lines have settled: ECM's
# guaranteed gain from the line and scale is at most this share of the step's
# gain. Without it, a jump at lines still far from their optimum led EM to
# worse optima (5% outliers: -1.085 against ECM's -0.993 per sample; hard
# gating on t(3, 10) data: -0.718 against -0.713); 0.1 left the motorcycle
# fit at -4.365, 0.01 reached -4.351.
SETTLED_SHARE = 0.01
# The candidates' sums cost a log per row, expert and candidate (about as much
# as the rest of the fused pass), and serve only where the lines have settled.
# One-pass EM skips them (see CandidateSchedule) while each expert's line gain
# exceeds PROBE_SHARE times its candidates' last measured gain, and takes them
# at least every REFRESH_ITERATIONS iterations.
PROBE_SHARE = 10.0 * SETTLED_SHARE
REFRESH_ITERATIONS = 8


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


def dof_candidates(dof):
    """The degrees of freedom the nu step compares, per expert: (K, 1 + len(DOF_STEPS)).

    The current nu first, then its multiples ``DOF_STEPS``, clipped to
    [MIN_DOF, MAX_DOF]: a nu below MIN_DOF would be one ECM's constrained
    step leaves for MIN_DOF at a loss (EM's objective fell on sklearn's
    small checks).
    """
    dof = np.asarray(dof, dtype=float)
    return np.clip(np.column_stack([dof] + [step * dof for step in DOF_STEPS]), MIN_DOF, MAX_DOF)


def _dof_objective(dofs, w_sum, log1p_sums, p):
    """sum_i W_ik log t_nu(y_i) at each candidate nu of ``dofs`` (K, J), the expert's line
    and scale fixed, less the terms free of nu: (K, J)."""
    return (w_sum[:, None] * (gammaln(0.5 * (dofs + p)) - gammaln(0.5 * dofs)
                              - 0.5 * p * np.log(dofs))
            - 0.5 * (dofs + p) * log1p_sums)


def _gamma_objective(dof, offset):
    """The ECM's expected complete-data objective in nu, per unit weight (to a constant)."""
    half = 0.5 * dof
    return half * np.log(half) - gammaln(half) + half * offset


class CandidateSchedule:
    """When one-pass EM's next pass computes the nu step's candidate sums.

    One per EM run, updated by :meth:`StudentTExperts.solve` and read by the
    passes (``options``); not part of the parameters. The candidates' step
    needs an expert's line gain at most ``SETTLED_SHARE`` times the
    candidates' gain. Lines settle gradually, so the sums are skipped while
    every expert's line gain is above ``PROBE_SHARE`` times its candidates'
    last measured gain, and computed at least every ``REFRESH_ITERATIONS``
    iterations (the candidates' gain can grow as the lines move).
    """

    def __init__(self):
        self.wanted = True
        self.threshold = None  # line gain, per expert, below which the sums may pay
        self.skipped = 0

    def options(self):
        """Keyword options of the next pass's statistics."""
        return {"with_candidates": self.wanted}

    def record(self, line_gain, candidate_gain=None):
        """Decide the next pass from this iteration's line gains and, where the pass
        had them, the candidates' gains (per expert; NaN for inactive experts)."""
        if candidate_gain is not None:
            self.threshold = PROBE_SHARE * np.where(np.isfinite(candidate_gain),
                                                    np.maximum(candidate_gain, 0.0), 0.0)
            self.skipped = 0
        else:
            self.skipped += 1
        if self.threshold is None:  # (no gains measured yet)
            return
        with np.errstate(invalid="ignore"):
            settling = np.any(line_gain <= self.threshold)  # (NaN: False)
        self.wanted = bool(settling or self.skipped + 1 >= REFRESH_ITERATIONS)


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
    weight_penalty : ndarray of shape (d,) or (K, d)
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
        return np.sum(per_expert(self.weight_penalty) * coef**2, axis=2)

    def penalty(self, experts):
        """Ridge penalty alpha ||w_kt||^2 / (2 sigma2_kt), summed over experts and targets."""
        return float(np.sum(self._weight_penalties(experts["coef"]) / (2.0 * experts["variance"])))

    # ---- EM ----------------------------------------------------------------
    def _latent_moments(self, kernels, X, Y, W, experts, gram=True, candidates=True):
        """Moments of the rows weighted by W u at ``experts`` (float64, host); the
        candidates' sums with the Gram matrices where ``candidates``."""
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
        if gram and candidates:
            statistics["log1p_sums"] = _kernel(kernels, "student_t_log1p_sums")(
                X, Y, W, experts["coef"], experts["intercept"], experts["variance"],
                dof_candidates(experts["dof"]))
        return statistics

    def statistics(self, kernels, X, Y, W, experts, with_candidates=True):
        """Additive statistics of rows for :meth:`solve` (float64, host).

        With u the latent weights at ``experts``: the Gaussian family's
        statistics at the weights W u (``gram`` (K, d, d), ``x_sum`` (K, d),
        ``wu_sum`` (K,), ``xr`` (K, t, d), ``r_sum`` (K, t), ``rss`` (K, t)),
        ``w_sum`` (K,) = sum_i W_ik, ``log_weight_sum`` (K,) =
        sum_i W_ik (log u_ik - u_ik) and ``log1p_sums`` (K, J) = sum_i W_ik
        log1p(delta_ik / nu) at the candidates :func:`dof_candidates` (only
        where ``with_candidates``: see :class:`CandidateSchedule`).
        """
        return self._latent_moments(kernels, X, Y, W, experts, candidates=with_candidates)

    @staticmethod
    def pass_schedule():
        """A new :class:`CandidateSchedule`: which statistics one-pass EM's passes compute."""
        return CandidateSchedule()

    def fused_pass(self, kernels, X, Y, sample_weight, gate_coef, gate_intercept, experts,
                   hessian_stride, with_candidates=True):
        """One-pass EM statistics of a chunk from the fused softmax-gate kernel
        (``kernels.student_t_pass``; see ``mixexp._model``), as the Gaussian
        family's (``with_candidates`` as in :meth:`statistics`); None where the
        backend has no such kernel."""
        if not hasattr(kernels, "student_t_pass"):
            return None
        (log_likelihood, gram, x_sum, wu_sum, xr, r_sum, rss, gate_gradient, gate_hessian,
         hessian_weight, log_weight_sum, w_sum, log1p_sums) = kernels.student_t_pass(
            X, Y, sample_weight, gate_coef, gate_intercept, experts["coef"],
            experts["intercept"], experts["variance"], experts["dof"], hessian_stride,
            # (no candidates: none of their logs computed)
            dof_candidates(experts["dof"])[:, :None if with_candidates else 0])
        statistics = {"w_sum": w_sum, "log_weight_sum": log_weight_sum, "gram": gram,
                      "x_sum": x_sum, "wu_sum": wu_sum, "xr": xr, "r_sum": r_sum, "rss": rss}
        if with_candidates:
            statistics["log1p_sums"] = log1p_sums
        # each expert's share of the weight, sum_i s_i h_ik, is its w_sum
        return (log_likelihood, w_sum.copy(), statistics, gate_gradient, gate_hessian,
                hessian_weight)

    def solve(self, statistics, experts, schedule=None):
        """Each expert's M-step from :meth:`statistics`: an ECM cycle, or a step in nu alone.

        The ECM cycle: the expected complete-data objective of expert k is,
        in (w, c, sigma2), that of a Gaussian expert with weights W u and
        S_k/2 log sigma2 (S_k = sum_i W_ik): ridge weights with weights W u
        (whatever sigma2 is), then sigma2 = (RSS_k + alpha ||w||^2) / S_k,
        floored; in nu it is concave, maximised by :func:`dof_equation_root`.
        It raises the expert's weighted log-likelihood F_k by at least its
        gain in that objective (Dempster et al. 1977), which the statistics
        give.

        ECM's nu crawls where the noise is nearly Gaussian (u is nearly 1
        on every row, so the objective hardly tells nu apart). The
        statistics also hold F_k exactly at the current line and scale and
        the candidates :func:`dof_candidates` (nu and its multiples
        ``DOF_STEPS``): where the best candidate gains more than ECM's
        guaranteed gain and the lines have settled (``SETTLED_SHARE``), the
        expert takes that nu and keeps its line and scale. Either step raises F_k,
        so the M-step stays a generalised one (EM stays monotone) and needs
        no other pass. Statistics without the candidates' sums give the ECM
        cycle. ``schedule`` (a :class:`CandidateSchedule`) learns this
        iteration's gains.
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
        p = coef.shape[1]
        half = 0.5 * (dof + p)
        with np.errstate(invalid="ignore", divide="ignore"):
            offset = statistics["log_weight_sum"] / w_sum + digamma(half) - np.log(half)
        for k in np.flatnonzero(active):
            root = dof_equation_root(offset[k])
            if np.isfinite(root):
                dof[k] = root
        ecm = {"coef": coef, "intercept": intercept, "variance": variance, "dof": dof}
        if "log1p_sums" not in statistics and schedule is None:
            return ecm
        # ECM's guaranteed gain: in the (w, c, sigma2) part of the objective,
        # -S/2 sum log sigma2 - 1/2 sum (RSS at weights W u + penalty) / sigma2, and in nu
        before = (statistics["rss"] + self._weight_penalties(experts["coef"])) / experts["variance"]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            line_gain = (-0.5 * w_sum * np.sum(np.log(variance / experts["variance"]), axis=1)
                         - 0.5 * np.sum(new_rss / variance - before, axis=1))
        line_gain = np.where(active, line_gain, np.nan)
        if "log1p_sums" not in statistics:
            schedule.record(line_gain)
            return ecm
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            ecm_gain = line_gain + w_sum * (_gamma_objective(dof, offset)
                                            - _gamma_objective(experts["dof"], offset))
            candidates = dof_candidates(experts["dof"])
            values = _dof_objective(candidates, w_sum, statistics["log1p_sums"], p)
        if schedule is not None:
            schedule.record(line_gain, np.max(values, axis=1) - values[:, 0])
        for k in np.flatnonzero(active):
            best = int(np.argmax(values[k]))
            # (NaN comparisons are False: ECM's step stands)
            gain = values[k, best] - values[k, 0]
            if best > 0 and gain > ecm_gain[k] and line_gain[k] <= SETTLED_SHARE * gain:
                for key in ("coef", "intercept", "variance"):
                    ecm[key][k] = experts[key][k]
                dof[k] = candidates[k, best]
        return ecm

    def dof_grid(self, experts, centre=None, width=None, n_points=_DOF_GRID_POINTS):
        """Candidate nu per expert for :meth:`fit_dof`: (K, J), log-spaced.

        Without ``centre``, the whole of [MIN_DOF, MAX_DOF]; with it, the
        ``width`` (in log nu) either side of each expert's ``centre``,
        clipped to the bounds. The expert's current nu and both bounds are
        always among the candidates, so the best of them is never worse
        than keeping nu or than the Gaussian limit.
        """
        n_experts = experts["dof"].shape[0]
        low, high = np.log(MIN_DOF), np.log(MAX_DOF)
        if centre is None:
            grid = np.tile(np.linspace(low, high, n_points), (n_experts, 1))
        else:
            centre = np.log(centre)[:, None]
            grid = np.clip(centre + np.linspace(-width, width, n_points), low, high)
        extra = np.column_stack([np.log(experts["dof"]), np.full(n_experts, low),
                                 np.full(n_experts, high)])
        return np.exp(np.concatenate([grid, extra], axis=1))

    def dof_sums(self, kernels, X, Y, W, experts, dofs):
        """Additive statistics of rows for :meth:`best_dof` at candidates ``dofs`` (K, J):
        ``w_sum`` (K,) and ``log1p`` = sum_i W_ik log1p(delta_ik / nu_kj) (K, J)."""
        return {"w_sum": kernels.to_host(W.sum(axis=0, dtype=np.float64)),
                "log1p": _kernel(kernels, "student_t_log1p_sums")(
                    X, Y, W, experts["coef"], experts["intercept"], experts["variance"],
                    dofs)}

    def best_dof(self, sums, experts, dofs):
        """Each active expert's best candidate nu from :meth:`dof_sums`: the weighted t
        log-likelihood at its line and scale, exactly, at every candidate."""
        p = experts["coef"].shape[1]
        log_scale = 0.5 * np.log(experts["variance"]).sum(axis=1)
        const = (gammaln(0.5 * (dofs + p)) - gammaln(0.5 * dofs)
                 - 0.5 * p * np.log(dofs * np.pi) - log_scale[:, None])
        values = sums["w_sum"][:, None] * const - 0.5 * (dofs + p) * sums["log1p"]
        dof = experts["dof"].copy()
        active = active_experts(sums["w_sum"])
        best = dofs[np.arange(dofs.shape[0]), np.argmax(values, axis=1)]
        dof[active] = best[active]
        return {**experts, "dof": dof}

    def fit_dof(self, kernels, map_reduce, experts):
        """Each expert's nu maximising sum_i W_ik log p_k(y_i | x_i) at its line and scale.

        A conditional maximisation of the observed objective (ECME's step
        for nu) over log nu in [MIN_DOF, MAX_DOF], in two passes over the
        rows: a coarse grid over the whole range, then a fine one around
        each expert's best (steps of about 0.3 and 0.02 in log nu).
        ``map_reduce(function)`` sums ``function(X, Y, W)`` over the rows,
        with W = s h at the current parameters; rows in memory and on a
        cluster take the same passes, so both start from the same nu. A nu
        is kept only where it does not lower that expert's objective.
        """
        dofs = self.dof_grid(experts)
        coarse = self.best_dof(
            map_reduce(lambda X, Y, W: self.dof_sums(kernels, X, Y, W, experts, dofs)),
            experts, dofs)
        step = (np.log(MAX_DOF) - np.log(MIN_DOF)) / (_DOF_GRID_POINTS - 1)
        dofs = self.dof_grid(experts, centre=coarse["dof"], width=step)
        return self.best_dof(
            map_reduce(lambda X, Y, W: self.dof_sums(kernels, X, Y, W, experts, dofs)),
            experts, dofs)

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
            "coef": (moments["xr"] - penalty_scale * per_expert(self.weight_penalty) * coef)
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

    # ---- alpha="auto" ------------------------------------------------------
    def penalty_choice_statistics(self, kernels, X, Y, W, experts):
        """Additive statistics of rows for :meth:`choose_penalties`: the moments at the
        weights W u (no candidates' sums)."""
        return self._latent_moments(kernels, X, Y, W, experts, candidates=False)

    def choose_penalties(self, statistics, experts, grid, count_scale=1.0):
        """Each expert's penalty per standardised weight by GCV (:func:`gcv_penalties`)
        of the weighted ridge regression its ECM cycle solves (weights W u), with
        n_k = sum_i W_ik rows: (K,)."""
        moments = {**statistics, "w_sum": statistics["wu_sum"]}
        return gcv_penalties(moments, experts, grid, statistics["w_sum"] * count_scale)

    def adapt(self, experts, target_variance, previous_target_variance):
        """Scales fitted to a target at least 4x narrower are raised (as Gaussian experts')."""
        return raise_narrow_variances(experts, target_variance, previous_target_variance)

    # ---- growing -----------------------------------------------------------
    def split(self, experts, j, rng):
        return split_by_noise_scale(experts, j, rng)

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
