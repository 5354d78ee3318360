"""Weighted multinomial logistic regression by damped Newton, bound or L-BFGS steps.

One solver serves two M-steps: the softmax gate (soft targets = weighted
responsibilities) and each expert of the classifier (targets = the expert's
weights times the one-hot classes). Every step type guarantees the penalised
objective never decreases, which keeps EM monotone: Newton steps by a line
search, bound steps by construction, L-BFGS by its line search (and a final
check against the start).
"""

import numpy as np
from scipy.optimize import minimize

from ._linalg import solve_psd
from ._rows import row_blocks

_ARMIJO = 1e-4
_MAX_HALVINGS = 40
# Above this many parameters C * (d + 1), Newton's Hessian (C^2 weighted Gram
# products and a cubic solve) costs more than it saves: use bound steps (the
# gate) or L-BFGS (the experts).
NEWTON_MAX_PARAMS = 160
# L-BFGS iterations per M-step for each Newton step the caller allows, and its
# stopping rules: the largest entry of the preconditioned gradient per unit
# weight (about a Newton step's size in its own units), and the relative gain
# of an iteration; one expert then lands within 1e-5 in probability of
# LogisticRegression solved to tol=1e-12 (digits)
_LBFGS_ITER_PER_STEP = 100
_GTOL, _FTOL = 1e-8, 1e-12


def _penalised_objective(xp, targets, log_p, coef, penalty):
    # summed by blocks of rows in float64: no (n, C) temporary (a large fit's
    # peak memory), and float32 inputs lose nothing more in the sum
    data_term = 0.0
    dot = xp.float64 == targets.dtype == log_p.dtype and targets.flags.c_contiguous and \
        log_p.flags.c_contiguous
    for rows in row_blocks(targets.shape[0]):
        if dot:  # one BLAS dot product of the flattened blocks, no temporary
            data_term += float(xp.vdot(targets[rows].ravel(), log_p[rows].ravel()))
        else:
            data_term += float(xp.sum(targets[rows] * log_p[rows], dtype=np.float64))
    return data_term - float(np.sum(penalty * coef**2))


def center(coef, intercept):
    # Softmax is unchanged by a common shift of every class's parameters;
    # removing the mean shift keeps them bounded and can only lower the
    # penalty, so the objective never decreases.
    return coef - coef.mean(axis=0, keepdims=True), intercept - intercept.mean()


def penalised_newton_step(grad, hess, penalty):
    """Newton direction of a penalised softmax objective, and its decrement.

    ``grad`` (C, d + 1) is the gradient of the whole objective (penalty
    included), ``hess`` (C, d + 1, C, d + 1) the data part's Hessian (negative
    semi-definite) and ``penalty`` (d,) the L2 penalty of the weights.
    Returns ``(step (C, d + 1), decrement = grad . step)``.
    """
    n_classes, width = grad.shape
    penalty_curvature = np.zeros((n_classes, width))
    penalty_curvature[:, : width - 1] = 2.0 * penalty
    neg_hess = -hess.reshape(n_classes * width, n_classes * width)
    data_diagonal = np.diagonal(neg_hess).copy()
    neg_hess[np.diag_indices_from(neg_hess)] += penalty_curvature.ravel()
    step = _newton_direction(neg_hess, grad.ravel(), data_diagonal)
    return step.reshape(n_classes, width), float(grad.ravel() @ step)


def softmax_gradient(kernels, X, targets, coef, intercept):
    """sum_i (T_ic - p_ic s_i) (x_i, 1): the unpenalised gradient (C, d + 1), float64, host.

    ``T`` (n, C) are soft targets with row sums s_i and p the softmax of
    (coef, intercept): the logistic-gradient kernel with one "expert" whose
    classes are the C columns, in one fused pass over the rows.
    """
    unit = kernels.xp.ones((X.shape[0], 1), dtype=X.dtype)
    grad_coef, grad_intercept = kernels.logistic_gradient(X, targets, unit, coef[None],
                                                          intercept[None])
    return np.concatenate([grad_coef[0], grad_intercept[0][:, None]], axis=1)


def boehning_bound(gram, x_sum, w_sum, penalty):
    """The (d + 1, d + 1) matrix S / 2 + 2 P of Boehning's bound (see :func:`_bound_ascent`),
    from the weighted moments of (x, 1): ``gram`` (d, d), ``x_sum`` (d,), ``w_sum``."""
    d = x_sum.shape[0]
    bound = np.empty((d + 1, d + 1))
    bound[:d, :d] = 0.5 * gram + 2.0 * np.diag(penalty)
    bound[:d, d] = bound[d, :d] = 0.5 * x_sum
    bound[d, d] = 0.5 * w_sum
    return bound


def bound_step(grad, bound):
    """Boehning's bound step: every class moves by ``bound^-1 g_c`` (see :func:`_bound_ascent`)."""
    return solve_psd(bound, grad.T).T


def rounding_resolution(objective, total_weight, dtype):
    """The smallest gain of an objective a line search can verify.

    A gain below the objective's rounding level (log-probabilities stored
    in X's dtype: float32 rounds each term at 6e-8) cannot be verified, and
    a line search would halve the step to nothing, a pass each time.
    """
    return max(1e-12 * max(total_weight, 1.0), float(np.finfo(dtype).eps) * abs(objective))


def _newton_direction(neg_hess, grad, data_diagonal):
    """Solve neg_hess @ step = grad, ridged for the softmax null space.

    ``data_diagonal`` is the diagonal of the data part of ``neg_hess``
    (without the penalty's curvature).
    """
    n_params = neg_hess.shape[0]
    # The common shift is a null direction of the softmax; the gradient has
    # no component along it, so a tiny ridge only makes the solve safe. It is
    # relative to each diagonal entry: one relative to their mean swamped
    # every data direction when a tiny-scale feature's penalty (alpha /
    # scale^2) dominated the trace. The floor for entries without curvature
    # comes from the data's curvature alone: one from the penalised diagonal
    # swamped the unpenalised intercepts when the penalty was 1e30 times the
    # data (weights near 1e-300, rescaled with alpha), and Newton stalled.
    diagonal = np.diagonal(neg_hess).copy()
    scale = data_diagonal.max() if np.any(data_diagonal > 0) else diagonal.max()
    floor = 1e-30 * scale if scale > 0 else 1e-300
    neg_hess[np.diag_indices(n_params)] += 1e-10 * np.maximum(diagonal, floor)
    return solve_psd(neg_hess, grad)


def _bound_ascent(kernels, X, targets, coef, intercept, penalty, max_iter):
    """Minorise-maximise steps with Boehning's bound on the softmax Hessian.

    The data part of the negative Hessian is bounded by
    1/2 (I - 11^T / C) (x) S with S = sum_i s_i [x_i, 1][x_i, 1]^T, so on
    centred parameters every class moves by the same small solve
    (S / 2 + 2 P)^-1 g_c, with P the penalty. Each step maximises a lower
    bound of the objective that touches it at the current point: the
    objective never decreases, without a line search, at O(n C d) a step.
    """
    n_classes, d = coef.shape
    row_weight = targets.sum(axis=1)
    gram, x_sum, _, _, w_sum = kernels.weighted_moments(X, targets[:, :1], row_weight[:, None])
    bound = boehning_bound(gram[0], x_sum[0], w_sum[0], penalty)
    for _ in range(max_iter):
        grad = softmax_gradient(kernels, X, targets, coef, intercept)
        grad[:, :d] -= 2.0 * penalty * coef
        step = bound_step(grad, bound)
        # the gain of a bound step shrinks only linearly near the optimum:
        # stop when it is at the level of rounding, not merely small
        if float(np.sum(grad * step)) <= 1e-15 * max(float(w_sum[0]), 1.0):
            break
        coef, intercept = center(coef + step[:, :d], intercept + step[:, d])
    return coef, intercept


def _lbfgs_ascent(kernels, X, targets, coef, intercept, penalty, max_iter, log_p):
    """Quasi-Newton (L-BFGS) steps on the penalised objective, warm-started.

    Bound steps converge only linearly, by a factor that worsens with the
    number of classes: one expert on a 64-feature, 10-class table (digits)
    took thousands of them. L-BFGS, as LogisticRegression uses, costs one
    log-softmax and one (C, n) x (n, d) product per iteration and converges
    superlinearly. Its line search only accepts steps that raise the
    objective; the result is compared with the start all the same.
    """
    xp = kernels.xp
    n_classes, d = coef.shape
    row_weight = targets.sum(axis=1)[:, None]
    total_weight = max(float(row_weight.sum()), 1e-300)

    # L-BFGS runs in coordinates u = v * sqrt(h) with h the Hessian's diagonal at
    # the start (Jacobi preconditioning): per-feature penalties alpha / scale^2
    # spread over orders of magnitude otherwise slow it down
    kernels.log_gate(X, coef, intercept, out=log_p)
    proba = xp.exp(log_p)
    curvature = proba * (row_weight - proba * row_weight)  # s p (1 - p), (n, C)
    diagonal = np.empty((n_classes, d + 1))
    diagonal[:, :d] = kernels.to_host(curvature.T @ (X * X)) + 2.0 * penalty
    diagonal[:, d] = kernels.to_host(curvature.sum(axis=0))

    def penalised(flat):
        # the logits by one BLAS product (the per-row kernels are slower at wide d)
        logits = X @ xp.asarray(flat[:, :d].T) + xp.asarray(flat[:, d])
        logits -= logits.max(axis=1, keepdims=True)
        proba = xp.exp(logits)
        total = proba.sum(axis=1, keepdims=True)
        proba /= total
        log_p = logits - xp.log(total)
        value = _penalised_objective(xp, targets, log_p, flat[:, :d], penalty)
        residual = targets - proba * row_weight  # (n, C), T - p s
        grad = np.empty((n_classes, d + 1))
        grad[:, :d] = kernels.to_host(residual.T @ X) - 2.0 * penalty * flat[:, :d]
        grad[:, d] = kernels.to_host(residual.sum(axis=0))
        return value, grad

    return preconditioned_lbfgs(penalised, coef, intercept, diagonal, total_weight, max_iter)


def preconditioned_lbfgs(penalised, coef, intercept, diagonal, total_weight, max_iter):
    """L-BFGS ascent of a penalised multinomial objective from (coef, intercept).

    ``penalised(flat)`` gives the objective and its gradient (C, d + 1) at
    ``flat = [coef, intercept]``; ``diagonal`` (C, d + 1, overwritten) is its
    negative Hessian's diagonal at the start, on which the coordinates u = v *
    sqrt(h / total_weight) are scaled (Jacobi preconditioning). The objective
    is minimised per unit weight, so the tolerances do not depend on n. The
    result is kept only if it is finite and no lower than the start;
    otherwise (coef, intercept) come back unchanged.
    """
    n_classes, d = coef.shape
    diagonal /= total_weight
    largest = diagonal.max()
    diagonal = np.maximum(diagonal, 1e-12 * largest) if largest > 0 else np.ones_like(diagonal)
    unit = 1.0 / np.sqrt(diagonal)

    def negative_objective(u):
        value, grad = penalised(u.reshape(n_classes, d + 1) * unit)
        return -value / total_weight, -(grad * unit).ravel() / total_weight

    start = (np.concatenate([coef, intercept[:, None]], axis=1) / unit).ravel()
    start_value = negative_objective(start)[0]
    result = minimize(negative_objective, start, jac=True, method="L-BFGS-B",
                      options={"maxiter": _LBFGS_ITER_PER_STEP * max_iter, "gtol": _GTOL,
                               "ftol": _FTOL})
    if not np.all(np.isfinite(result.x)) or not result.fun <= start_value:
        return coef, intercept  # no ascent found: keep the current parameters
    flat = result.x.reshape(n_classes, d + 1) * unit
    return center(flat[:, :d].copy(), flat[:, d].copy())


def fit_multinomial_logistic(kernels, X, targets, coef, intercept, penalty, *, max_iter=3,
                             log_p=None, log_p_ready=False, extra=None, many="bound"):
    """Maximise sum_ic T_ic log softmax_c(x_i . v_c + b_c) - sum_cj penalty_j v_cj^2.

    An ``extra`` term (the gate's load balancing) may be subtracted too.

    Parameters
    ----------
    kernels : kernel bundle
        Per-sample arrays (``X``, ``targets``, ``log_p``) live in its
        namespace; parameters are host arrays.
    X : ndarray of shape (n, d)
    targets : ndarray of shape (n, C)
        Non-negative weighted targets T (soft labels times sample weights).
    coef, intercept : ndarray of shape (C, d) and (C,)
        Starting point (warm start).
    penalty : ndarray of shape (d,)
        L2 penalty per feature (intercepts are not penalised).
    max_iter : int
        Newton steps at most.
    log_p : ndarray of shape (n, C), optional
        Scratch buffer for the log-probabilities.
    log_p_ready : bool, default=False
        ``log_p`` already holds the log-probabilities at the start (the
        E-step wrote the log gate there): they are not recomputed.
    extra : callable, optional
        ``extra(log_p) -> (value, logit_gradient)``: a further term
        subtracted from the objective and its gradient in the logits,
        shape (n, C). Newton directions then use the logistic part's
        Hessian only; they are still ascent directions, and the line search
        on the whole objective keeps every step an improvement.
    many : {"bound", "lbfgs"}, default="bound"
        The steps above ``NEWTON_MAX_PARAMS`` parameters (without ``extra``):
        ``2 * max_iter`` of Boehning's bound steps (cheap, linear
        convergence: the gate's M-step, which EM repeats anyway), or
        L-BFGS for up to ``100 * max_iter`` iterations (an expert's M-step
        solved nearly exactly: one expert then converges in a few EM
        iterations, as fast as LogisticRegression).

    Returns
    -------
    coef, intercept : new arrays whose objective is no lower than the start's.
    """
    n_classes, d = coef.shape
    coef, intercept = center(coef, intercept)
    # Boehning's bound minorises the logistic part only: not with an extra term
    xp = kernels.xp
    if log_p is None:
        log_p = xp.empty((X.shape[0], n_classes), dtype=X.dtype)
    if extra is None and n_classes * (d + 1) > NEWTON_MAX_PARAMS:
        if many == "lbfgs":
            return _lbfgs_ascent(kernels, X, targets, coef, intercept, penalty, max_iter, log_p)
        return _bound_ascent(kernels, X, targets, coef, intercept, penalty, 2 * max_iter)

    def whole_objective(log_p, coef):
        value = _penalised_objective(xp, targets, log_p, coef, penalty)
        return value if extra is None else value - extra(log_p)[0]

    if not log_p_ready:  # (centring above leaves the log-softmax unchanged)
        kernels.log_gate(X, coef, intercept, out=log_p)  # log-softmax of a linear map
    objective = whole_objective(log_p, coef)
    total_weight = float(targets.sum())
    trial_log_p = xp.empty_like(log_p)

    for _ in range(max_iter):
        grad, hess = kernels.gate_gradient_hessian(X, targets, log_p)
        grad[:, :d] -= 2.0 * penalty * coef
        if extra is not None:
            logit_gradient = extra(log_p)[1]
            grad[:, :d] -= kernels.to_host(logit_gradient.T @ X)
            grad[:, d] -= kernels.to_host(logit_gradient.sum(axis=0))
        step, decrement = penalised_newton_step(grad, hess, penalty)
        if not np.isfinite(decrement) or decrement <= rounding_resolution(
                objective, total_weight, log_p.dtype):
            break

        t = 1.0
        for _ in range(_MAX_HALVINGS):
            trial_coef, trial_intercept = center(
                coef + t * step[:, :d], intercept + t * step[:, d]
            )
            kernels.log_gate(X, trial_coef, trial_intercept, out=trial_log_p)
            trial_objective = whole_objective(trial_log_p, trial_coef)
            if trial_objective >= objective + _ARMIJO * t * decrement:
                break
            t *= 0.5
        else:
            break  # no ascent found: keep the current parameters
        coef, intercept, objective = trial_coef, trial_intercept, trial_objective
        log_p, trial_log_p = trial_log_p, log_p
    return coef, intercept
