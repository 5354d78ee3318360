"""The kernels of ``_numpy`` written once against an array namespace ``xp``.

:class:`ArrayKernels` holds the fifteen kernels of the seam as methods; it
is instantiated with a namespace that has NumPy's API (``numpy`` itself in
the CPU tests, ``cupy`` in :mod:`mixexp._kernels._cupy`, whose fused CUDA
kernels override the row-wise methods). Only operations that NumPy and CuPy
both have, with the same semantics, are used, and no code relies on
``np.errstate``: every log of zero and division by zero is masked first,
so NumPy emits no warning where CuPy would silently give inf or NaN.

Contract (shapes and precision as in ``_numpy``):

* per-sample arrays (``X``, ``Y``, ``W``, ``log_g``, ``log_joint``) are
  arrays of ``xp``; float32 stays float32, any other dtype is computed in
  float64 (``Y`` and ``W`` take the dtype of ``X``). Per-sample outputs are
  arrays of ``xp`` in that dtype, except the E-steps' log-likelihood,
  always float64;
* parameter arrays (``gate_coef``, ``coef``, ...) may be host NumPy arrays:
  they are tiny and are moved (``xp.asarray``) inside each call;
* reductions whose size does not depend on n (``weighted_moments``,
  ``gaussian_weighted_rss``, ``gate_gradient_hessian``,
  ``gaussian_residual_moments``, ``logistic_gradient``) return host NumPy
  arrays in float64: the M-step solves small systems on the host.

The reductions and the E-steps run over blocks of rows, each cast to
float64 (float32 data gets float64 arithmetic, and no float64 copy is
larger than a block); a reduction is one matrix product over all experts
per block. No temporary exceeds about ``block_elements`` entries and no
(n, K, d) array exists. The other row-wise kernels compute in the data's
dtype.
"""

import numpy as np

from ._numpy import student_t_log_constant

LOG_2PI = float(np.log(2.0 * np.pi))


def _triangle_index(size):
    """(size, size) map from (a, b) to the index of (min, max) in row-major upper triangles."""
    rows, cols = np.triu_indices(size)
    index = np.empty((size, size), dtype=np.intp)
    index[rows, cols] = np.arange(rows.size)
    index[cols, rows] = np.arange(rows.size)
    return index


class ArrayKernels:
    """The kernel bundle of ``_numpy`` for arrays of the namespace ``xp``.

    Parameters
    ----------
    xp : module
        An array namespace with NumPy's API (``numpy``, ``cupy``).
    block_elements : int, default=2**23
        Size of the largest temporaries of the blocked kernels, in array
        entries: rows are processed in blocks small enough for it (64 MiB
        in float64).
    """

    def __init__(self, xp, *, block_elements=2**23):
        self.xp = xp
        self.block_elements = block_elements

    # -----------------------------------------------------------------------
    # Plumbing: dtypes, moving arrays, blocks of rows.

    def to_host(self, a):
        """``a`` as a host NumPy array (a copy only when it lives elsewhere)."""
        return getattr(self.xp, "asnumpy", np.asarray)(a)

    @staticmethod
    def _data_dtype(a):
        """float32 stays float32; anything else is computed in float64."""
        return np.dtype(np.float32) if a.dtype == np.float32 else np.dtype(np.float64)

    @staticmethod
    def _f64(a):
        """An array as float64 (no copy when it already is)."""
        return a.astype(np.float64, copy=False)

    def _rows(self, a, dtype):
        """A per-sample array as an ``xp`` array of ``dtype`` (copied only if needed)."""
        return self.xp.asarray(a, dtype=dtype)

    def _param(self, a, dtype):
        """A small parameter array (host or device) on the device, in ``dtype``."""
        return self.xp.asarray(a, dtype=dtype)

    def _stacked(self, coef, intercept, dtype):
        """(K, M, d) weights and (K, M) biases as one (K*M, d) map and (K*M,) biases."""
        n_experts, n_out, d = coef.shape
        weights = self._param(coef, dtype).reshape(n_experts * n_out, d)
        return weights, self._param(intercept, dtype).reshape(n_experts * n_out)

    def _output(self, out, shape, dtype):
        """``out`` when kernels can write into it directly, else a fresh array."""
        xp = self.xp
        if (isinstance(out, xp.ndarray) and out.flags.c_contiguous and out.dtype == dtype
                and out.shape == tuple(shape)):
            return out
        return xp.empty(shape, dtype=dtype)

    def _deliver(self, result, out):
        """Copy ``result`` into ``out`` (host or device) unless it is there; return ``out``."""
        if out is None:
            return result
        if result is not out:
            if isinstance(out, np.ndarray) and not isinstance(result, np.ndarray):
                out[...] = self.to_host(result)
            else:
                out[...] = result
        return out

    def _blocks(self, n_samples, width):
        """Row slices with at most ``block_elements`` entries for ``width`` entries per row."""
        step = max(1, self.block_elements // max(1, width))
        return [slice(start, min(start + step, n_samples)) for start in range(0, n_samples, step)]

    def _with_ones(self, X, *more):
        """[X, 1, *more] (rows, d + 1 + ...): the intercept as a constant feature."""
        xp = self.xp
        ones = xp.ones((X.shape[0], 1), dtype=X.dtype)
        return xp.concatenate((X, ones, *more), axis=1)

    def _upper_pairs(self, size):
        """Row-major upper-triangle pairs (a <= b) of ``size`` items, on the device."""
        left, right = np.triu_indices(size)
        return self.xp.asarray(left), self.xp.asarray(right)

    def _pair_products(self, Z, left, right):
        """Z[:, a] * Z[:, b] for the feature pairs (a, b) = (left, right)."""
        xp = self.xp
        return xp.take(Z, left, axis=1) * xp.take(Z, right, axis=1)

    # -----------------------------------------------------------------------
    # Log-sum-exp and posteriors without warnings.

    def _log(self, total):
        """log(total) for total >= 0; -inf at zero without NumPy's divide warning."""
        xp = self.xp
        zero = total == 0
        safe = xp.where(zero, xp.ones_like(total), total)
        return xp.where(zero, xp.full_like(total, -np.inf), xp.log(safe))

    def _lse_parts(self, a, axis):
        """``(shift, e, total)`` along ``axis`` (kept): e = exp(a - shift), total = sum e.

        The shift is the maximum, or 0 where that is not finite: an all -inf
        row sums to 0 (log -inf) rather than NaN, as in the reference.
        """
        xp = self.xp
        shift = xp.max(a, axis=axis, keepdims=True)
        shift = xp.where(xp.isfinite(shift), shift, xp.zeros_like(shift))
        e = xp.exp(a - shift)
        return shift, e, xp.sum(e, axis=axis, keepdims=True)

    def _logsumexp(self, a, axis):
        shift, _, total = self._lse_parts(a, axis)
        return shift + self._log(total)

    def _posterior(self, a):
        """``(log_norm (n,), resp (n, K))`` of a log joint (n, K), in its dtype."""
        xp = self.xp
        shift, e, total = self._lse_parts(a, axis=1)
        log_norm = (shift + self._log(total))[:, 0]
        # e / total, not exp(a - log_norm): log(total) can be lost in the
        # rounding of a huge log_norm. An impossible row (total 0) gets zeros.
        zero = total == 0
        inverse = 1 / xp.where(zero, xp.ones_like(total), total)
        return log_norm, e * xp.where(zero, xp.zeros_like(total), inverse)

    def _log_softmax_groups(self, X, weights, bias, shape):
        """log softmax_c(x_i w_kc + b_kc) of every expert: (n, K, C) for ``shape`` (K, C)."""
        logits = (X @ weights.T + bias).reshape(X.shape[0], *shape)
        return logits - self._logsumexp(logits, axis=2)

    def _gaussian_log_density(self, X, Y, weights, bias, variance):
        """(n, K) log-densities, in the dtype of the arguments."""
        xp = self.xp
        n_experts, n_targets = variance.shape
        # (n, K, t): the size of the output times t, never times d
        mean = (X @ weights.T + bias).reshape(X.shape[0], n_experts, n_targets)
        resid = Y[:, None, :] - mean
        quad = xp.sum(resid * resid / variance, axis=2)
        return -0.5 * (quad + xp.sum(LOG_2PI + xp.log(variance), axis=1))

    def _student_t_parts(self, coef, intercept, variance, dof):
        """Float64 device parameters of Student-t experts: the stacked linear map, the
        scales, nu, (nu + p) / 2 and the log normaliser (computed on the host)."""
        variance_host = np.asarray(self.to_host(variance), dtype=np.float64)
        dof_host = np.asarray(self.to_host(dof), dtype=np.float64)
        weights, bias = self._stacked(coef, intercept, np.float64)
        return (weights, bias, self._param(variance_host, np.float64),
                self._param(dof_host, np.float64),
                self._param(0.5 * (dof_host + variance_host.shape[1]), np.float64),
                self._param(student_t_log_constant(variance_host, dof_host), np.float64))

    def _student_t_delta(self, X64, Y64, weights, bias, variance):
        """Squared Mahalanobis residuals of every expert, float64: (n, K)."""
        n_experts, n_targets = variance.shape
        mean = (X64 @ weights.T + bias).reshape(X64.shape[0], n_experts, n_targets)
        resid = Y64[:, None, :] - mean
        return self.xp.sum(resid * resid / variance, axis=2)

    def _student_t_rows(self, X, Y, parts):
        """Log-densities of every expert, float64, block by block: (n, K)."""
        xp = self.xp
        weights, bias, variance, dof, half_power, log_const = parts
        n_experts, n_targets = variance.shape
        result = xp.empty((X.shape[0], n_experts), dtype=np.float64)
        width = X.shape[1] + n_targets + n_experts * (3 * n_targets + 6)
        for rows in self._blocks(X.shape[0], width):
            delta = self._student_t_delta(self._f64(X[rows]), self._f64(Y[rows]), weights, bias,
                                          variance)
            result[rows] = log_const - half_power * xp.log1p(delta / dof)
        return result

    def _e_step(self, X, expert_log_density, gate_coef, gate_intercept, width, resp,
                log_gate_out=None):
        """Fill ``resp`` from float64 log joints, block by block; return the log-likelihood.

        ``expert_log_density(rows, X64)`` gives the experts' float64
        log-densities (rows, K) of a block of rows; ``width`` bounds the
        block's temporaries per row. With ``log_gate_out``, the log gate is
        written there too.
        """
        xp = self.xp
        n = X.shape[0]
        gate_w = self._param(gate_coef, np.float64)
        gate_b = self._param(gate_intercept, np.float64)
        out = self._output(resp, (n, gate_b.shape[0]), X.dtype)
        gate_out = (None if log_gate_out is None
                    else self._output(log_gate_out, (n, gate_b.shape[0]), X.dtype))
        log_norm = xp.empty(n, dtype=np.float64)
        for rows in self._blocks(n, width):
            X64 = self._f64(X[rows])
            logits = X64 @ gate_w.T + gate_b
            log_joint = logits - self._logsumexp(logits, axis=1)
            if gate_out is not None:
                gate_out[rows] = log_joint
            log_joint += expert_log_density(rows, X64)
            log_norm[rows], out[rows] = self._posterior(log_joint)
        self._deliver(out, resp)
        if gate_out is not None:
            self._deliver(gate_out, log_gate_out)
        return log_norm

    # -----------------------------------------------------------------------
    # The kernels (signatures of ``_numpy``).

    def log_gate(self, X, gate_coef, gate_intercept, out=None):
        """Log-softmax gate, log g_k(x_i): (n, K)."""
        dtype = self._data_dtype(X)
        X = self._rows(X, dtype)
        logits = X @ self._param(gate_coef, dtype).T + self._param(gate_intercept, dtype)
        return self._deliver(logits - self._logsumexp(logits, axis=1), out)

    def gaussian_log_density(self, X, Y, coef, intercept, variance, out=None):
        """log N(y_i; x_i w_k + c_k, diag(variance_k)), summed over targets: (n, K)."""
        dtype = self._data_dtype(X)
        X, Y = self._rows(X, dtype), self._rows(Y, dtype)
        weights, bias = self._stacked(coef, intercept, dtype)
        result = self._gaussian_log_density(X, Y, weights, bias, self._param(variance, dtype))
        return self._deliver(result, out)

    def normalize_log_joint(self, log_joint, resp_out=None):
        """Responsibilities from log g + log p: ``(log_norm (n,), resp (n, K))``.

        A row whose joint is -inf for every expert gets zero responsibilities
        and log_norm -inf. ``resp_out`` may be ``log_joint`` itself.
        """
        log_norm, resp = self._posterior(self._rows(log_joint, self._data_dtype(log_joint)))
        return log_norm, self._deliver(resp, resp_out)

    def gaussian_e_step(self, X, Y, gate_coef, gate_intercept, coef, intercept, variance, resp,
                        log_gate_out=None):
        """Whole E-step for Gaussian experts: fills ``resp`` (n, K), returns log p(y_i | x_i).

        The log-likelihood (n,) is float64, and so is the arithmetic, for
        float32 data too. With ``log_gate_out`` (n, K), the log gate is
        written there as well.
        """
        dtype = self._data_dtype(X)
        X, Y = self._rows(X, dtype), self._rows(Y, dtype)
        weights, bias = self._stacked(coef, intercept, np.float64)
        variance = self._param(variance, np.float64)

        def log_density(rows, X64):
            return self._gaussian_log_density(X64, self._f64(Y[rows]), weights, bias, variance)

        n_experts, n_targets = variance.shape
        width = X.shape[1] + n_targets + n_experts * (3 * n_targets + 6)
        return self._e_step(X, log_density, gate_coef, gate_intercept, width, resp,
                            log_gate_out)

    def student_t_log_density(self, X, Y, coef, intercept, variance, dof, out=None):
        """log t_p(y_i; x_i w_k + c_k, diag(variance_k), dof_k): (n, K), float64 arithmetic."""
        dtype = self._data_dtype(X)
        X, Y = self._rows(X, dtype), self._rows(Y, dtype)
        result = self._student_t_rows(X, Y, self._student_t_parts(coef, intercept, variance, dof))
        return self._deliver(result.astype(dtype, copy=False), out)

    def student_t_e_step(self, X, Y, gate_coef, gate_intercept, coef, intercept, variance, dof,
                         resp, log_gate_out=None):
        """Whole E-step for Student-t experts: fills ``resp`` (n, K), returns log p(y_i | x_i)."""
        dtype = self._data_dtype(X)
        X, Y = self._rows(X, dtype), self._rows(Y, dtype)
        weights, bias, variance, dof, half_power, log_const = self._student_t_parts(
            coef, intercept, variance, dof)

        def log_density(rows, X64):
            delta = self._student_t_delta(X64, self._f64(Y[rows]), weights, bias, variance)
            return log_const - half_power * self.xp.log1p(delta / dof)

        n_experts, n_targets = variance.shape
        width = X.shape[1] + n_targets + n_experts * (3 * n_targets + 6)
        return self._e_step(X, log_density, gate_coef, gate_intercept, width, resp,
                            log_gate_out)

    def student_t_weights(self, X, Y, W, coef, intercept, variance, dof):
        """The ECM's latent weights applied to ``W``, and the nu step's sums:
        ``(weighted (n, K) in X's dtype, log_weight_sum (K,), w_sum (K,))``, the sums
        float64 on the host."""
        xp = self.xp
        dtype = self._data_dtype(X)
        X, Y, W = self._rows(X, dtype), self._rows(Y, dtype), self._rows(W, dtype)
        weights, bias, variance, dof, half_power, _ = self._student_t_parts(
            coef, intercept, variance, dof)
        n_experts, n_targets = variance.shape
        weighted = xp.empty((X.shape[0], n_experts), dtype=dtype)
        log_weight_sum = xp.zeros(n_experts, dtype=np.float64)
        w_sum = xp.zeros(n_experts, dtype=np.float64)
        tiny = float(np.finfo(np.float64).tiny)
        width = X.shape[1] + n_targets + n_experts * (3 * n_targets + 6)
        for rows in self._blocks(X.shape[0], width):
            delta = self._student_t_delta(self._f64(X[rows]), self._f64(Y[rows]), weights, bias,
                                          variance)
            u = xp.maximum(2.0 * half_power / (dof + delta), tiny)
            w = self._f64(W[rows])
            weighted[rows] = w * u
            log_weight_sum += xp.sum(w * (xp.log(u) - u), axis=0)
            w_sum += xp.sum(w, axis=0)
        return weighted, self.to_host(log_weight_sum), self.to_host(w_sum)

    def gaussian_predict(self, X, coef, intercept):
        """Each expert's mean: (n, K, t)."""
        dtype = self._data_dtype(X)
        X = self._rows(X, dtype)
        weights, bias = self._stacked(coef, intercept, dtype)
        return (X @ weights.T + bias).reshape(X.shape[0], *coef.shape[:2])

    def weighted_moments(self, X, Y, W):
        """Sufficient statistics of a weighted least-squares fit per expert (host, float64).

        Returns ``(gram, x_sum, xy, y_sum, w_sum)`` with shapes (K, d, d),
        (K, d), (K, d, t), (K, t), (K,). With z_i = (x_i, 1, y_i), every
        statistic is an entry of sum_i W_ik z_i z_i^T: per block, one (K, n)
        by (n, Q) product over the Q distinct products z_ia z_ib.
        """
        xp = self.xp
        dtype = self._data_dtype(X)
        X, Y, W = self._rows(X, dtype), self._rows(Y, dtype), self._rows(W, dtype)
        d, n_experts = X.shape[1], W.shape[1]
        size = d + 1 + Y.shape[1]
        left, right = self._upper_pairs(size)
        acc = xp.zeros((n_experts, left.shape[0]), dtype=np.float64)
        for rows in self._blocks(X.shape[0], 3 * left.shape[0] + 2 * size + n_experts):
            Z = self._with_ones(self._f64(X[rows]), self._f64(Y[rows]))
            acc += self._f64(W[rows]).T @ self._pair_products(Z, left, right)
        moments = self.to_host(acc)[:, _triangle_index(size)]  # (K, D, D), symmetric
        return (
            moments[:, :d, :d].copy(),
            moments[:, d, :d].copy(),
            moments[:, :d, d + 1:].copy(),
            moments[:, d, d + 1:].copy(),
            moments[:, d, d].copy(),
        )

    def gaussian_weighted_rss(self, X, Y, W, coef, intercept):
        """Weighted residual sum of squares per expert and target: (K, t), host float64."""
        xp = self.xp
        dtype = self._data_dtype(X)
        X, Y, W = self._rows(X, dtype), self._rows(Y, dtype), self._rows(W, dtype)
        n_experts, n_targets, d = coef.shape
        weights, bias = self._stacked(coef, intercept, np.float64)
        rss = xp.zeros((n_experts, n_targets), dtype=np.float64)
        width = d + n_targets + n_experts * (1 + 3 * n_targets)
        for rows in self._blocks(X.shape[0], width):
            mean = self._f64(X[rows]) @ weights.T + bias
            resid = self._f64(Y[rows])[:, None, :] - mean.reshape(-1, n_experts, n_targets)
            rss += xp.sum(self._f64(W[rows])[:, :, None] * (resid * resid), axis=0)
        return self.to_host(rss)

    def gate_gradient_hessian(self, X, W, log_g):
        """Gradient (K, d + 1) and Hessian (K, d + 1, K, d + 1) of sum_ik W_ik log g_ik.

        Host float64 arrays. The Hessian's distinct entries are sum_i c_ikl
        z_ia z_ib over expert pairs k <= l and feature pairs a <= b of
        z = (x, 1), with curvature weights c_ikl = s_i g_ik ([k == l] - g_il):
        per block, one (P, n) by (n, Q) product, no (n, K, d) temporary.
        """
        xp = self.xp
        dtype = self._data_dtype(X)
        X, W, log_g = self._rows(X, dtype), self._rows(W, dtype), self._rows(log_g, dtype)
        d, n_experts = X.shape[1], W.shape[1]
        expert_k, expert_l = np.triu_indices(n_experts)
        on_diagonal = xp.asarray((expert_k == expert_l).astype(np.float64))
        expert_k, expert_l = xp.asarray(expert_k), xp.asarray(expert_l)
        left, right = self._upper_pairs(d + 1)
        n_pairs, n_features = expert_k.shape[0], left.shape[0]
        grad = xp.zeros((n_experts, d + 1), dtype=np.float64)
        curv = xp.zeros((n_pairs, n_features), dtype=np.float64)
        width = 2 * d + 4 * n_experts + 3 * (n_pairs + n_features)
        for rows in self._blocks(X.shape[0], width):
            Z = self._with_ones(self._f64(X[rows]))
            g = xp.exp(self._f64(log_g[rows]))
            w = self._f64(W[rows])
            s = xp.sum(w, axis=1, keepdims=True)
            grad += (w - g * s).T @ Z
            g_k = xp.take(g, expert_k, axis=1)
            # the reference's order: -s g_k g_l, plus s g_k on the diagonal pairs
            c = -s * g_k * xp.take(g, expert_l, axis=1) + on_diagonal * (s * g_k)
            curv += c.T @ self._pair_products(Z, left, right)
        curv = self.to_host(curv)
        # hess[k, a, l, b] = -curv[pair(k, l), pair(a, b)]
        pair, feature_pair = _triangle_index(n_experts), _triangle_index(d + 1)
        hess = -curv[pair[:, None, :, None], feature_pair[None, :, None, :]]
        return self.to_host(grad), hess

    def logistic_log_density(self, X, Y, coef, intercept, out=None):
        """log p_k(y_i | x_i) of multinomial logistic experts: (n, K)."""
        dtype = self._data_dtype(X)
        X, Y = self._rows(X, dtype), self._rows(Y, dtype)
        weights, bias = self._stacked(coef, intercept, dtype)
        log_p = self._log_softmax_groups(X, weights, bias, coef.shape[:2])
        return self._deliver(self.xp.sum(Y[:, None, :] * log_p, axis=2), out)

    def logistic_e_step(self, X, Y, gate_coef, gate_intercept, coef, intercept, resp,
                        log_gate_out=None):
        """Whole E-step for logistic experts: fills ``resp`` (n, K), returns log p(y_i | x_i).

        The log-likelihood (n,) is float64, and so is the arithmetic;
        ``log_gate_out`` as in :meth:`gaussian_e_step`.
        """
        xp = self.xp
        dtype = self._data_dtype(X)
        X, Y = self._rows(X, dtype), self._rows(Y, dtype)
        weights, bias = self._stacked(coef, intercept, np.float64)

        def log_density(rows, X64):
            log_p = self._log_softmax_groups(X64, weights, bias, coef.shape[:2])
            return xp.sum(self._f64(Y[rows])[:, None, :] * log_p, axis=2)

        n_experts, n_classes, d = coef.shape
        width = d + n_classes + n_experts * (4 * n_classes + 6)
        return self._e_step(X, log_density, gate_coef, gate_intercept, width, resp,
                            log_gate_out)

    def logistic_predict_log_proba(self, X, coef, intercept):
        """Each expert's class log-probabilities: (n, K, C)."""
        dtype = self._data_dtype(X)
        weights, bias = self._stacked(coef, intercept, dtype)
        return self._log_softmax_groups(self._rows(X, dtype), weights, bias, coef.shape[:2])

    def top_k_log_gate(self, log_g, k, out=None):
        """Log gate restricted to each row's ``k`` largest entries, renormalised: (n, K).

        Entries outside the top ``k`` are -inf; ties go to the lower expert
        index (a row that is -inf everywhere gets NaN where kept, as in the
        reference). ``out`` may be ``log_g`` itself.
        """
        if k < 1:
            raise ValueError(f"top_k must be at least 1, got {k}.")
        xp = self.xp
        a = self._rows(log_g, self._data_dtype(log_g))
        n_experts = a.shape[1]
        k = min(int(k), n_experts)
        # Rank of each entry in its row's stable descending order: the entries
        # above it, counting equal ones of lower index. No sort: K comparisons.
        index = xp.arange(n_experts)
        rank = xp.zeros(a.shape, dtype=np.int32)
        for j in range(n_experts):
            column = a[:, j:j + 1]
            rank += (column > a) | ((column == a) & (index > j))
        kept = rank < k
        minus_inf = xp.full_like(a, -np.inf)
        norm = self._logsumexp(xp.where(kept, a, minus_inf), axis=1)
        # -inf - -inf is NaN in the reference; give it without NumPy's warning
        norm = xp.where(xp.isneginf(norm), xp.full_like(norm, np.nan), norm)
        return self._deliver(xp.where(kept, a - norm, minus_inf), out)

    def classify_log_joint(self, log_joint, resp_out=None):
        """Classification E-step: ``(best (n,), resp (n, K))``, one-hot at each row's argmax.

        Ties go to the lower index; a row that is -inf everywhere gets zero
        responsibilities.
        """
        xp = self.xp
        dtype = self._data_dtype(log_joint)
        a = self._rows(log_joint, dtype)
        winner = xp.argmax(a, axis=1)
        best = xp.take_along_axis(a, winner[:, None], axis=1)[:, 0]
        one_hot = (xp.arange(a.shape[1])[None, :] == winner[:, None]) & ~xp.isneginf(best)[:, None]
        return best, self._deliver(one_hot.astype(dtype), resp_out)

    def gaussian_residual_moments(self, X, Y, W, coef, intercept):
        """Weighted residual moments of Gaussian experts: ``(xr, r_sum, rss)``, host float64.

        Shapes (K, t, d), (K, t), (K, t): sum_i W_ik r_ikt x_i, sum_i W_ik
        r_ikt and sum_i W_ik r_ikt^2, with r_ikt = y_it - (x_i w_kt + c_kt).
        """
        xp = self.xp
        dtype = self._data_dtype(X)
        X, Y, W = self._rows(X, dtype), self._rows(Y, dtype), self._rows(W, dtype)
        n_experts, n_targets, d = coef.shape
        n_out = n_experts * n_targets
        weights, bias = self._stacked(coef, intercept, np.float64)
        xr = xp.zeros((n_out, d), dtype=np.float64)
        r_sum = xp.zeros(n_out, dtype=np.float64)
        rss = xp.zeros(n_out, dtype=np.float64)
        for rows in self._blocks(X.shape[0], d + n_targets + n_experts + 4 * n_out):
            X64 = self._f64(X[rows])
            mean = (X64 @ weights.T + bias).reshape(-1, n_experts, n_targets)
            resid = self._f64(Y[rows])[:, None, :] - mean
            weighted = (resid * self._f64(W[rows])[:, :, None]).reshape(-1, n_out)
            xr += weighted.T @ X64
            r_sum += xp.sum(weighted, axis=0)
            rss += xp.sum(weighted * resid.reshape(-1, n_out), axis=0)
        shape = (n_experts, n_targets)
        return (
            self.to_host(xr).reshape(*shape, d),
            self.to_host(r_sum).reshape(shape),
            self.to_host(rss).reshape(shape),
        )

    def poisson_newton_moments(self, X, Y, W, coef, intercept, hessian=True):
        """Value, gradient and Hessian of each Poisson expert's weighted data term, host float64.

        ``(value (K, t), gradient (K, t, d + 1), hessian (K, t, d + 1, d + 1)
        or None)``: sum_i W_ik (y eta - mu), sum_i W_ik (y - mu) z_i and
        sum_i W_ik mu z_i z_i^T with z = (x, 1), eta capped at 700, mu =
        exp(eta) (see the reference). One matrix product per block for the
        gradients of all experts, one per expert and target for the Hessians.
        """
        xp = self.xp
        dtype = self._data_dtype(X)
        X, Y, W = self._rows(X, dtype), self._rows(Y, dtype), self._rows(W, dtype)
        n_experts, n_targets, d = coef.shape
        n_out = n_experts * n_targets
        weights, bias = self._stacked(coef, intercept, np.float64)
        value = xp.zeros(n_out, dtype=np.float64)
        grad = xp.zeros((n_out, d + 1), dtype=np.float64)
        hess = xp.zeros((n_out, d + 1, d + 1), dtype=np.float64) if hessian else None
        for rows in self._blocks(X.shape[0], 2 * (d + 1) + n_targets + n_experts + 4 * n_out):
            Z = self._with_ones(self._f64(X[rows]))
            eta = xp.minimum(Z[:, :d] @ weights.T + bias, 700.0)  # (nb, K*t)
            mu = xp.exp(eta)
            y = xp.tile(self._f64(Y[rows]), (1, n_experts))  # y_s in column k*t + s
            w = xp.repeat(self._f64(W[rows]), n_targets, axis=1)
            value += xp.sum(w * (y * eta - mu), axis=0)
            grad += (w * (y - mu)).T @ Z
            if hessian:
                curvature = w * mu
                for m in range(n_out):
                    hess[m] += (Z * curvature[:, m:m + 1]).T @ Z
        shape = (n_experts, n_targets)
        return (self.to_host(value).reshape(shape), self.to_host(grad).reshape(*shape, d + 1),
                None if hess is None else self.to_host(hess).reshape(*shape, d + 1, d + 1))

    def logistic_gradient(self, X, Y, W, coef, intercept):
        """Gradient of sum_ik W_ik sum_c Y_ic log softmax_c(x_i w_kc + b_kc), host float64.

        Returns the gradient in the weights (K, C, d) and in the intercepts
        (K, C): sum_i W_ik (Y_ic - p_ikc s_i) x_i with s_i = sum_c Y_ic.
        """
        xp = self.xp
        dtype = self._data_dtype(X)
        X, Y, W = self._rows(X, dtype), self._rows(Y, dtype), self._rows(W, dtype)
        n_experts, n_classes, d = coef.shape
        n_out = n_experts * n_classes
        weights, bias = self._stacked(coef, intercept, np.float64)
        grad_coef = xp.zeros((n_out, d), dtype=np.float64)
        grad_intercept = xp.zeros(n_out, dtype=np.float64)
        for rows in self._blocks(X.shape[0], d + n_classes + n_experts + 5 * n_out):
            X64 = self._f64(X[rows])
            p = xp.exp(self._log_softmax_groups(X64, weights, bias, coef.shape[:2]))
            y = self._f64(Y[rows])
            s = xp.sum(y, axis=1)
            resid = (y[:, None, :] - p * s[:, None, None]) * self._f64(W[rows])[:, :, None]
            resid = resid.reshape(-1, n_out)
            grad_coef += resid.T @ X64
            grad_intercept += xp.sum(resid, axis=0)
        return (
            self.to_host(grad_coef).reshape(n_experts, n_classes, d),
            self.to_host(grad_intercept).reshape(n_experts, n_classes),
        )
