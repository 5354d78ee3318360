"""NumPy reference kernels: the oracle every fast backend is tested against.

Shapes: ``X`` (n, d) standardised inputs, ``Y`` (n, t) targets, ``K``
experts. Gate parameters ``gate_coef`` (K, d), ``gate_intercept`` (K,).
Gaussian expert parameters ``coef`` (K, t, d), ``intercept`` (K, t),
``variance`` (K, t). ``W`` (n, K) holds non-negative per-sample weights of
each expert (responsibilities times sample weights).

Precision: arrays with a sample axis keep the dtype of ``X`` (float32 or
float64), except the E-steps' per-sample log-likelihood, always float64.
Reductions whose size does not depend on n (the M-step statistics, the
gradients) are accumulated and returned in float64: the M-step solves its
small systems in float64, and float32 Gram matrices made EM decrease its
objective on near-singular float32 fits.

These functions favour clarity over speed; they may allocate, but never an
(n, K, d) temporary, nor a float64 copy of float32 data larger than a block
of rows.
"""

import numpy as np
from scipy.special import gammaln

from .._rows import row_blocks

LOG_2PI = float(np.log(2.0 * np.pi))


def _float64_blocks(*arrays):
    """Yield the arrays' rows in blocks, each block as float64."""
    for rows in row_blocks(arrays[0].shape[0]):
        yield tuple(a[rows].astype(np.float64, copy=False) for a in arrays)


def _row_shift_and_total(a):
    """Per row of a (n, K): the shift (row maximum, 0 where not finite) and
    total = sum_k exp(a[:, k] - shift).

    Reduces by looping over the K columns: NumPy's reductions along a short
    last axis are an order of magnitude slower than K vector operations.
    """
    shift = a[:, 0].copy()
    for k in range(1, a.shape[1]):
        np.maximum(shift, a[:, k], out=shift)
    shift[~np.isfinite(shift)] = 0.0  # an all -inf row sums to zero below
    total = np.zeros_like(shift)
    for k in range(a.shape[1]):
        total += np.exp(a[:, k] - shift)
    return shift, total


def row_logsumexp(a):
    """log sum_k exp(a[:, k]) per row, shape (n,); -inf where a row is all -inf."""
    shift, total = _row_shift_and_total(a)
    with np.errstate(divide="ignore"):
        return shift + np.log(total)


def row_sum(a):
    """sum_k a[:, k] per row, shape (n,) (column loop, see row_logsumexp)."""
    total = a[:, 0].copy()
    for k in range(1, a.shape[1]):
        total += a[:, k]
    return total


def log_gate(X, gate_coef, gate_intercept, out=None):
    """Log-softmax gate, log g_k(x_i): (n, K), computed in float64 (float32 ``out`` too)."""
    if out is not None and out.dtype != np.float64:
        out[...] = log_gate(X, gate_coef, gate_intercept)
        return out
    logits = np.matmul(X, gate_coef.T, out=out)
    logits += gate_intercept
    logits -= row_logsumexp(logits)[:, None]
    return logits


def gaussian_log_density(X, Y, coef, intercept, variance, out=None):
    """log N(y_i; x_i w_k + c_k, diag(variance_k)), summed over targets: (n, K)."""
    n_experts = coef.shape[0]
    if out is None:
        out = np.empty((X.shape[0], n_experts), dtype=X.dtype)
    for k in range(n_experts):
        resid = Y - (X @ coef[k].T + intercept[k])
        out[:, k] = -0.5 * (
            (resid**2 / variance[k]).sum(axis=1) + np.sum(LOG_2PI + np.log(variance[k]))
        )
    return out


def normalize_log_joint(log_joint, resp_out=None):
    """Responsibilities from log g + log p.

    Returns ``(log_norm, resp)``: log_norm (n,) is log sum_k exp(log_joint),
    resp (n, K) the normalised posterior. A row whose joint is -inf for every
    expert (impossible under every expert) gets zero responsibilities rather
    than NaN.
    """
    shift, total = _row_shift_and_total(log_joint)
    with np.errstate(divide="ignore"):
        log_norm = shift + np.log(total)
    # exp(a - shift) / total, not exp(a - log_norm): where the joint is huge
    # (|a| ~ 1e100) log(total) is lost in log_norm's rounding and the rows
    # would not sum to 1
    resp = np.subtract(log_joint, shift[:, None], out=resp_out)
    np.exp(resp, out=resp)
    inverse = np.zeros_like(total)
    np.divide(1.0, total, out=inverse, where=total > 0.0)  # impossible rows: zero
    resp *= inverse[:, None]
    return log_norm, resp


def gaussian_e_step(X, Y, gate_coef, gate_intercept, coef, intercept, variance, resp,
                    log_gate_out=None):
    """Whole E-step for Gaussian experts.

    Writes the responsibilities into ``resp`` (n, K) and returns the
    per-sample log-likelihood log p(y_i | x_i), shape (n,), in float64.
    With ``log_gate_out`` (n, K), also writes the log gate there (what
    :func:`log_gate` gives): the gate's M-step starts from it.
    """
    return _composed_e_step(
        X, gate_coef, gate_intercept, resp, log_gate_out,
        lambda out: gaussian_log_density(X, Y, coef, intercept, variance, out=out))


def _composed_e_step(X, gate_coef, gate_intercept, resp, log_gate_out, log_density):
    """log gate + ``log_density(out)`` (the experts' (n, K)), normalised into ``resp``;
    returns the per-sample log-likelihood (float64). Every family's E-step."""
    # float64 (n, K) work arrays: float32 data gets float64 arithmetic
    log_joint = log_gate(X, gate_coef, gate_intercept, out=np.empty(resp.shape))
    if log_gate_out is not None:
        log_gate_out[...] = log_joint
    log_joint += log_density(np.empty(resp.shape))
    log_norm, posterior = normalize_log_joint(log_joint, resp_out=log_joint)
    resp[...] = posterior
    return log_norm


def gaussian_predict(X, coef, intercept):
    """Each expert's mean: (n, K, t)."""
    n_experts, n_targets, d = coef.shape
    means = X @ coef.reshape(n_experts * n_targets, d).T + intercept.ravel()
    return means.reshape(X.shape[0], n_experts, n_targets)


def _sum_over_blocks(block_statistics, *arrays):
    """Sum ``block_statistics(*blocks)`` (a tuple of arrays) over float64 row blocks."""
    total = None
    for blocks in _float64_blocks(*arrays):
        part = block_statistics(*blocks)
        total = part if total is None else tuple(t + p for t, p in zip(total, part))
    return total


def weighted_moments(X, Y, W):
    """Sufficient statistics of a weighted least-squares fit per expert.

    Returns ``(gram, x_sum, xy, y_sum, w_sum)`` in float64, with shapes
    (K, d, d), (K, d), (K, d, t), (K, t), (K,): X^T diag(W_k) X, X^T W_k,
    X^T diag(W_k) Y, Y^T W_k and sum W_k.
    """

    def block_moments(X, Y, W):
        n_experts, d = W.shape[1], X.shape[1]
        gram = np.empty((n_experts, d, d))
        xy = np.empty((n_experts, d, Y.shape[1]))
        for k in range(n_experts):
            weighted_X = X * W[:, k : k + 1]
            gram[k] = weighted_X.T @ X
            xy[k] = weighted_X.T @ Y
        return gram, (X.T @ W).T, xy, (Y.T @ W).T, W.sum(axis=0)

    return _sum_over_blocks(block_moments, X, Y, W)


def gaussian_weighted_rss(X, Y, W, coef, intercept):
    """Weighted residual sum of squares per expert and target: (K, t), float64."""

    def block_rss(X, Y, W):
        rss = np.empty((W.shape[1], Y.shape[1]))
        for k in range(W.shape[1]):
            resid = Y - (X @ coef[k].T + intercept[k])
            rss[k] = W[:, k] @ resid**2
        return (rss,)

    return _sum_over_blocks(block_rss, X, Y, W)[0]


def gate_gradient_hessian(X, W, log_g):
    """Gradient and Hessian of sum_ik W_ik log g_ik in the gate parameters.

    Parameters are ordered (K, d + 1): the d weights then the intercept of
    each expert. Returns the gradient (K, d + 1) and the Hessian
    (K, d + 1, K, d + 1) (negative semi-definite), in float64. ``W`` rows
    sum to the sample weight, ``log_g`` is the current log gate.
    """

    def block_gradient_hessian(X, W, log_g):
        n_experts, d = W.shape[1], X.shape[1]
        g = np.exp(log_g)
        s = row_sum(W)
        residual = W - g * s[:, None]
        grad = np.empty((n_experts, d + 1))
        grad[:, :d] = residual.T @ X
        grad[:, d] = residual.sum(axis=0)
        hess = np.empty((n_experts, d + 1, n_experts, d + 1))
        for k in range(n_experts):
            for j in range(k, n_experts):
                # curvature weights s_i (g_ik [k == j] - g_ik g_ij)
                c = -s * g[:, k] * g[:, j]
                if k == j:
                    c += s * g[:, k]
                block = np.empty((d + 1, d + 1))
                weighted_X = X * c[:, None]
                block[:d, :d] = weighted_X.T @ X
                block[:d, d] = block[d, :d] = weighted_X.sum(axis=0)
                block[d, d] = c.sum()
                hess[k, :, j, :] = -block
                hess[j, :, k, :] = -block.T
        return grad, hess

    return _sum_over_blocks(block_gradient_hessian, X, W, log_g)


def logistic_log_density(X, Y, coef, intercept, out=None):
    """log p_k(y_i | x_i) of multinomial logistic experts: (n, K).

    ``coef`` (K, C, d), ``intercept`` (K, C), ``Y`` (n, C) one-hot classes:
    sum_c Y_ic log softmax_c(x_i . w_kc + b_kc).
    """
    n_experts = coef.shape[0]
    if out is None:
        out = np.empty((X.shape[0], n_experts), dtype=X.dtype)
    for k in range(n_experts):
        log_p = log_gate(X, coef[k], intercept[k])
        out[:, k] = row_sum(Y * log_p)
    return out


def logistic_e_step(X, Y, gate_coef, gate_intercept, coef, intercept, resp, log_gate_out=None):
    """Whole E-step for logistic experts: fills ``resp`` (n, K), returns log p(y_i | x_i).

    The log-likelihood (n,) is float64; ``log_gate_out`` as in
    :func:`gaussian_e_step`.
    """
    return _composed_e_step(
        X, gate_coef, gate_intercept, resp, log_gate_out,
        lambda out: logistic_log_density(X, Y, coef, intercept, out=out))


def logistic_predict_log_proba(X, coef, intercept):
    """Each expert's class log-probabilities: (n, K, C)."""
    n_experts, n_classes, _ = coef.shape
    out = np.empty((X.shape[0], n_experts, n_classes), dtype=X.dtype)
    for k in range(n_experts):
        out[:, k] = log_gate(X, coef[k], intercept[k])
    return out


# ---------------------------------------------------------------------------
# Hard and top-k gating (mixexp._routing), and the data terms of the expert
# gradients (the gradient solvers). Same conventions as above.


def top_k_log_gate(log_g, k, out=None):
    """Log gate restricted to each row's ``k`` largest entries, renormalised: (n, K).

    Entries outside the top ``k`` are -inf; ties go to the lower expert
    index. ``k=1`` is the hard gate: 0 at the row's argmax, -inf elsewhere.
    Renormalising the log-softmax over a subset equals the softmax of the
    raw logits over that subset, so the input may be logits or a log gate.
    """
    if out is None:
        out = np.empty_like(log_g)
    # a stable sort of the negated row keeps the lower index first on ties
    order = np.argsort(-log_g, axis=1, kind="stable")[:, :k]
    kept = np.take_along_axis(log_g, order, axis=1)
    kept -= row_logsumexp(kept)[:, None]
    out.fill(-np.inf)
    np.put_along_axis(out, order, kept, axis=1)
    return out


def classify_log_joint(log_joint, resp_out=None):
    """Classification E-step: every row goes to its most probable expert.

    Returns ``(best, resp)``: best (n,) is max_k log_joint, the row's
    classification log-likelihood; resp (n, K) is one-hot at the argmax
    (the lower index on ties). A row that is -inf for every expert gets zero
    responsibilities, as in :func:`normalize_log_joint`.
    """
    n = log_joint.shape[0]
    winner = np.argmax(log_joint, axis=1)
    best = log_joint[np.arange(n), winner]
    resp = resp_out if resp_out is not None else np.empty_like(log_joint)
    resp.fill(0.0)
    resp[np.arange(n), winner] = np.where(np.isneginf(best), 0.0, 1.0)
    return best, resp


def gaussian_residual_moments(X, Y, W, coef, intercept):
    """Weighted residual moments behind the gradient of Gaussian experts.

    With r_ikt = y_it - (x_i w_kt + c_kt), returns ``(xr, r_sum, rss)`` of
    shapes (K, t, d), (K, t), (K, t), in float64: sum_i W_ik r_ikt x_i,
    sum_i W_ik r_ikt and sum_i W_ik r_ikt^2.
    """
    n_experts, n_targets, d = coef.shape

    def block_moments(X, Y, W):
        xr = np.empty((n_experts, n_targets, d))
        r_sum = np.empty((n_experts, n_targets))
        rss = np.empty((n_experts, n_targets))
        for k in range(n_experts):
            resid = Y - (X @ coef[k].T + intercept[k])
            weighted = resid * W[:, k : k + 1]
            xr[k] = weighted.T @ X
            r_sum[k] = weighted.sum(axis=0)
            rss[k] = (weighted * resid).sum(axis=0)
        return xr, r_sum, rss

    return _sum_over_blocks(block_moments, X, Y, W)


def logistic_gradient(X, Y, W, coef, intercept):
    """Gradient of sum_ik W_ik sum_c Y_ic log softmax_c(x_i w_kc + b_kc).

    Returns the gradient in the weights (K, C, d) and in the intercepts
    (K, C), in float64: sum_i W_ik (Y_ic - p_ikc s_i) x_i with
    s_i = sum_c Y_ic.
    """
    n_experts, n_classes, d = coef.shape

    def block_gradient(X, Y, W):
        grad_coef = np.empty((n_experts, n_classes, d))
        grad_intercept = np.empty((n_experts, n_classes))
        s = row_sum(Y)
        for k in range(n_experts):
            p = np.exp(log_gate(X, coef[k], intercept[k]))
            residual = (Y - p * s[:, None]) * W[:, k : k + 1]
            grad_coef[k] = residual.T @ X
            grad_intercept[k] = residual.sum(axis=0)
        return grad_coef, grad_intercept

    return _sum_over_blocks(block_gradient, X, Y, W)


# ---------------------------------------------------------------------------
# Poisson experts with a log link: p_k(y | x) = Poisson(y; exp(x w_k + c_k)),
# independently per target. Parameters ``coef`` (K, t, d), ``intercept``
# (K, t); ``Y`` (n, t) non-negative counts.

# Linear predictors are capped here before exp(): exp(700) ~ 1e304 is finite,
# so a far extrapolation gives a huge rate (and a log-density of about
# -1e304), never an overflow.
POISSON_MAX_ETA = 700.0


def poisson_rate(eta):
    """exp(min(eta, POISSON_MAX_ETA)): the rate of a linear predictor (any shape)."""
    return np.exp(np.minimum(eta, POISSON_MAX_ETA))


def poisson_log_density(X, Y, coef, intercept, out=None):
    """log Poisson(y_i; exp(x_i w_k + c_k)), summed over targets: (n, K).

    y eta - exp(eta) - lgamma(y + 1), eta capped at ``POISSON_MAX_ETA``.
    """
    n_experts = coef.shape[0]
    if out is None:
        out = np.empty((X.shape[0], n_experts), dtype=X.dtype)
    log_factorial = gammaln(Y.astype(np.float64) + 1.0).sum(axis=1)
    for k in range(n_experts):
        eta = np.minimum(X @ coef[k].T + intercept[k], POISSON_MAX_ETA)
        out[:, k] = (Y * eta - np.exp(eta)).sum(axis=1) - log_factorial
    return out


def poisson_e_step(X, Y, gate_coef, gate_intercept, coef, intercept, resp, log_gate_out=None):
    """Whole E-step for Poisson experts: fills ``resp`` (n, K), returns log p(y_i | x_i).

    The log-likelihood (n,) is float64; ``log_gate_out`` as in
    :func:`gaussian_e_step`.
    """
    return _composed_e_step(
        X, gate_coef, gate_intercept, resp, log_gate_out,
        lambda out: poisson_log_density(X, Y, coef, intercept, out=out))


def poisson_newton_moments(X, Y, W, coef, intercept, hessian=True):
    """Value, gradient and Hessian of each Poisson expert's weighted data term.

    With eta_iks = x_i w_ks + c_ks (capped) and mu = exp(eta), returns
    float64 ``(value, gradient, hessian)`` of shapes (K, t), (K, t, d + 1)
    and (K, t, d + 1, d + 1) (None without ``hessian``): sum_i W_ik
    (y_is eta_iks - mu_iks) (the log-likelihood without its constant
    -lgamma(y + 1)), sum_i W_ik (y_is - mu_iks) (x_i, 1) and
    sum_i W_ik mu_iks (x_i, 1)(x_i, 1)^T (minus the Hessian: positive
    semi-definite).
    """
    n_experts, n_targets, d = coef.shape

    def block_moments(X, Y, W):
        value = np.empty((n_experts, n_targets))
        grad = np.empty((n_experts, n_targets, d + 1))
        hess = np.empty((n_experts, n_targets, d + 1, d + 1)) if hessian else np.zeros(())
        Z = np.column_stack([X, np.ones(X.shape[0])])
        for k in range(n_experts):
            eta = np.minimum(X @ coef[k].T + intercept[k], POISSON_MAX_ETA)
            mu = np.exp(eta)
            value[k] = W[:, k] @ (Y * eta - mu)
            grad[k] = ((Y - mu) * W[:, k : k + 1]).T @ Z
            if hessian:
                for s in range(n_targets):
                    hess[k, s] = (Z * (W[:, k] * mu[:, s])[:, None]).T @ Z
        return value, grad, hess

    value, grad, hess = _sum_over_blocks(block_moments, X, Y, W)
    return value, grad, (hess if hessian else None)


# ---------------------------------------------------------------------------
# Student-t experts: p_k(y | x) = t_p(y; x w_k + c_k, diag(variance_k), dof_k),
# a p-variate t (p targets) with a diagonal scale. Parameters ``coef`` (K, t, d),
# ``intercept`` (K, t), ``variance`` (K, t) (the scale's diagonal) and ``dof``
# (K,). delta_ik = sum_s r_iks^2 / variance_ks is the squared Mahalanobis
# residual.


def student_t_log_constant(variance, dof):
    """log of the t density's normaliser per expert, from host float64 parameters: (K,).

    lgamma((nu + p) / 2) - lgamma(nu / 2) - p/2 log(nu pi) - 1/2 sum_s log sigma2_s.
    """
    variance, dof = np.asarray(variance, dtype=float), np.asarray(dof, dtype=float)
    p = variance.shape[1]
    return (gammaln(0.5 * (dof + p)) - gammaln(0.5 * dof) - 0.5 * p * np.log(dof * np.pi)
            - 0.5 * np.log(variance).sum(axis=1))


def _student_t_delta(X, Y, coef, intercept, variance, k):
    resid = Y - (X @ coef[k].T + intercept[k])
    return (resid**2 / variance[k]).sum(axis=1)


def student_t_log_density(X, Y, coef, intercept, variance, dof, out=None):
    """log t_p(y_i; x_i w_k + c_k, diag(variance_k), dof_k): (n, K).

    The constant of :func:`student_t_log_constant` minus
    (nu_k + p) / 2 log1p(delta_ik / nu_k).
    """
    n_experts, p = coef.shape[0], coef.shape[1]
    if out is None:
        out = np.empty((X.shape[0], n_experts), dtype=X.dtype)
    log_const = student_t_log_constant(variance, dof)
    for k in range(n_experts):
        delta = _student_t_delta(X, Y, coef, intercept, variance, k)
        out[:, k] = log_const[k] - 0.5 * (dof[k] + p) * np.log1p(delta / dof[k])
    return out


def student_t_e_step(X, Y, gate_coef, gate_intercept, coef, intercept, variance, dof, resp,
                     log_gate_out=None):
    """Whole E-step for Student-t experts: fills ``resp`` (n, K), returns log p(y_i | x_i).

    The log-likelihood (n,) is float64; ``log_gate_out`` as in
    :func:`gaussian_e_step`.
    """
    return _composed_e_step(
        X, gate_coef, gate_intercept, resp, log_gate_out,
        lambda out: student_t_log_density(X, Y, coef, intercept, variance, dof, out=out))


def student_t_weights(X, Y, W, coef, intercept, variance, dof):
    """The ECM's latent weights, applied to ``W``, and the sums the nu step needs.

    With u_ik = (nu_k + p) / (nu_k + delta_ik), E[tau_ik | y_i, expert k]
    of the t's Gamma(nu/2, nu/2) scale variable (small for rows far from
    expert k's line, which its weighted least squares then down-weights;
    Peel & McLachlan 2000), returns ``(weighted, log_weight_sum, w_sum)``:
    W_ik u_ik (n, K) in X's dtype, and in float64 sum_i W_ik (log u_ik -
    u_ik) and sum_i W_ik, (K,) each. u is floored at the smallest normal
    number (a row infinitely far from an expert), so the log is finite.
    """
    n_experts, p = coef.shape[0], coef.shape[1]
    weighted = np.empty((X.shape[0], n_experts), dtype=X.dtype)
    log_weight_sum = np.zeros(n_experts)
    w_sum = np.zeros(n_experts)
    tiny = np.finfo(np.float64).tiny
    for k in range(n_experts):
        delta = _student_t_delta(X, Y, coef, intercept, variance, k)
        u = np.maximum((dof[k] + p) / (dof[k] + delta), tiny)
        w = W[:, k].astype(np.float64)
        weighted[:, k] = w * u
        log_weight_sum[k] = w @ (np.log(u) - u)
        w_sum[k] = w.sum()
    return weighted, log_weight_sum, w_sum
