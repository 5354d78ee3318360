"""NumPy reference kernels: the oracle every fast backend is tested against.

Shapes: ``X`` (n, d) standardised inputs, ``Y`` (n, t) targets, ``K``
experts. Gate parameters ``gate_coef`` (K, d), ``gate_intercept`` (K,).
Gaussian expert parameters ``coef`` (K, t, d), ``intercept`` (K, t),
``variance`` (K, t). ``W`` (n, K) holds non-negative per-sample weights of
each expert (responsibilities times sample weights).

These functions favour clarity over speed; they may allocate, but never an
(n, K, d) temporary.
"""

import numpy as np

LOG_2PI = float(np.log(2.0 * np.pi))


def row_logsumexp(a):
    """log sum_k exp(a[:, k]) per row, shape (n,); -inf where a row is all -inf.

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
    with np.errstate(divide="ignore"):
        return shift + np.log(total)


def row_sum(a):
    """sum_k a[:, k] per row, shape (n,) (column loop, see row_logsumexp)."""
    total = a[:, 0].copy()
    for k in range(1, a.shape[1]):
        total += a[:, k]
    return total


def log_gate(X, gate_coef, gate_intercept, out=None):
    """Log-softmax gate, log g_k(x_i): (n, K)."""
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
    log_norm = row_logsumexp(log_joint)
    with np.errstate(invalid="ignore"):
        resp = np.exp(log_joint - log_norm[:, None], out=resp_out)
    impossible = np.isneginf(log_norm)
    if impossible.any():
        resp[impossible] = 0.0
    return log_norm, resp


def gaussian_e_step(X, Y, gate_coef, gate_intercept, coef, intercept, variance, resp):
    """Whole E-step for Gaussian experts.

    Writes the responsibilities into ``resp`` (n, K) and returns the
    per-sample log-likelihood log p(y_i | x_i), shape (n,).
    """
    log_joint = log_gate(X, gate_coef, gate_intercept)
    log_joint += gaussian_log_density(X, Y, coef, intercept, variance)
    log_norm, _ = normalize_log_joint(log_joint, resp_out=resp)
    return log_norm


def gaussian_predict(X, coef, intercept):
    """Each expert's mean: (n, K, t)."""
    n_experts, n_targets, d = coef.shape
    means = X @ coef.reshape(n_experts * n_targets, d).T + intercept.ravel()
    return means.reshape(X.shape[0], n_experts, n_targets)


def weighted_moments(X, Y, W):
    """Sufficient statistics of a weighted least-squares fit per expert.

    Returns ``(gram, x_sum, xy, y_sum, w_sum)`` with shapes (K, d, d),
    (K, d), (K, d, t), (K, t), (K,): X^T diag(W_k) X, X^T W_k,
    X^T diag(W_k) Y, Y^T W_k and sum W_k.
    """
    n_experts = W.shape[1]
    d = X.shape[1]
    gram = np.empty((n_experts, d, d), dtype=X.dtype)
    xy = np.empty((n_experts, d, Y.shape[1]), dtype=X.dtype)
    for k in range(n_experts):
        weighted_X = X * W[:, k : k + 1]
        gram[k] = weighted_X.T @ X
        xy[k] = weighted_X.T @ Y
    return gram, (X.T @ W).T, xy, (Y.T @ W).T, W.sum(axis=0)


def gaussian_weighted_rss(X, Y, W, coef, intercept):
    """Weighted residual sum of squares per expert and target: (K, t)."""
    n_experts = W.shape[1]
    rss = np.empty((n_experts, Y.shape[1]), dtype=X.dtype)
    for k in range(n_experts):
        resid = Y - (X @ coef[k].T + intercept[k])
        rss[k] = W[:, k] @ resid**2
    return rss


def gate_gradient_hessian(X, W, log_g):
    """Gradient and Hessian of sum_ik W_ik log g_ik in the gate parameters.

    Parameters are ordered (K, d + 1): the d weights then the intercept of
    each expert. Returns the gradient (K, d + 1) and the Hessian
    (K, d + 1, K, d + 1) (negative semi-definite). ``W`` rows sum to the
    sample weight, ``log_g`` is the current log gate.
    """
    n_experts = W.shape[1]
    d = X.shape[1]
    g = np.exp(log_g)
    s = row_sum(W)
    residual = W - g * s[:, None]
    grad = np.empty((n_experts, d + 1), dtype=X.dtype)
    grad[:, :d] = residual.T @ X
    grad[:, d] = residual.sum(axis=0)

    hess = np.empty((n_experts, d + 1, n_experts, d + 1), dtype=X.dtype)
    for k in range(n_experts):
        for j in range(k, n_experts):
            # curvature weights s_i (g_ik [k == j] - g_ik g_ij)
            c = -s * g[:, k] * g[:, j]
            if k == j:
                c += s * g[:, k]
            block = np.empty((d + 1, d + 1), dtype=X.dtype)
            weighted_X = X * c[:, None]
            block[:d, :d] = weighted_X.T @ X
            block[:d, d] = block[d, :d] = weighted_X.sum(axis=0)
            block[d, d] = c.sum()
            hess[k, :, j, :] = -block
            hess[j, :, k, :] = -block.T
    return grad, hess


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


def logistic_e_step(X, Y, gate_coef, gate_intercept, coef, intercept, resp):
    """Whole E-step for logistic experts: fills ``resp`` (n, K), returns log p(y_i | x_i)."""
    log_joint = log_gate(X, gate_coef, gate_intercept)
    log_joint += logistic_log_density(X, Y, coef, intercept)
    log_norm, _ = normalize_log_joint(log_joint, resp_out=resp)
    return log_norm


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
    shapes (K, t, d), (K, t), (K, t): sum_i W_ik r_ikt x_i,
    sum_i W_ik r_ikt and sum_i W_ik r_ikt^2.
    """
    n_experts, n_targets, d = coef.shape
    xr = np.empty((n_experts, n_targets, d), dtype=X.dtype)
    r_sum = np.empty((n_experts, n_targets), dtype=X.dtype)
    rss = np.empty((n_experts, n_targets), dtype=X.dtype)
    for k in range(n_experts):
        resid = Y - (X @ coef[k].T + intercept[k])
        weighted = resid * W[:, k : k + 1]
        xr[k] = weighted.T @ X
        r_sum[k] = weighted.sum(axis=0)
        rss[k] = (weighted * resid).sum(axis=0)
    return xr, r_sum, rss


def logistic_gradient(X, Y, W, coef, intercept):
    """Gradient of sum_ik W_ik sum_c Y_ic log softmax_c(x_i w_kc + b_kc).

    Returns the gradient in the weights (K, C, d) and in the intercepts
    (K, C): sum_i W_ik (Y_ic - p_ikc s_i) x_i with s_i = sum_c Y_ic.
    """
    n_experts, n_classes, d = coef.shape
    grad_coef = np.empty((n_experts, n_classes, d), dtype=X.dtype)
    grad_intercept = np.empty((n_experts, n_classes), dtype=X.dtype)
    s = row_sum(Y)
    for k in range(n_experts):
        p = np.exp(log_gate(X, coef[k], intercept[k]))
        residual = (Y - p * s[:, None]) * W[:, k : k + 1]
        grad_coef[k] = residual.T @ X
        grad_intercept[k] = residual.sum(axis=0)
    return grad_coef, grad_intercept
