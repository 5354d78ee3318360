"""Numba CPU kernels: the functions of ``_numpy`` compiled, fused and threaded.

Same names, signatures, shapes and semantics as :mod:`mixexp._kernels._numpy`
(the oracle they are tested against); see there for the meaning of each
argument. What differs is how the work is done:

* one pass over the rows of ``X`` per call. The E-step computes a block of
  rows' gate logits, expert log-densities, both log-normalisers and the
  responsibilities in small scratch arrays; the only (n, K) array it writes
  is ``resp``. The M-step statistics (weighted Gram matrices of all experts,
  the gate's gradient and Hessian) are accumulated block by block, so no
  (n, K, d) temporary exists;
* rows are processed in blocks of ``_BLOCK`` held transposed (quantity by
  row), so inner loops run over rows: long, contiguous, vectorised,
  including exp and log (:func:`_exp_shifted`, :func:`_log_block`; libm's
  are scalar);
* per-row arithmetic and every reduction are carried out in float64; arrays
  with a sample axis keep the dtype of ``X`` (float32 or float64), except
  the E-steps' per-sample log-likelihood, always float64 (see
  :func:`gaussian_e_step`); parameter arrays are read at the precision they
  are given in (the estimators keep them in float64);
* reductions split the rows into chunks fixed by ``n`` alone (not by the
  number of threads), sum each chunk into its own float64 partial, then add
  the partials in chunk order: results do not depend on the thread count;
* every kernel is one compiled function over a range of rows (``nogil``).
  Below ``_PARALLEL_MIN_WORK`` (n * K) it runs on all rows in the calling
  thread (the serial twin), so small fits pay no threading overhead; above,
  it runs on one range per thread (see the plumbing section). Row-wise
  results never depend on which twin ran, nor on the other rows.

No blanket ``fastmath``: -inf is a legal value in log space. Two flags are
used where they pay, neither of which assumes finite values: ``contract``
(fused multiply-add) in the exp and log polynomials, the linear maps and
the sums of products; ``reassoc`` only in :func:`_accumulate_products`, the sums of
products behind the M-step statistics, so that its dot products vectorise, and
in :func:`_dot_block` / :func:`_sum_block`, the Student-t pass's sums over a block.

Arrays with a sample axis are made C-contiguous (a copy only when they are
not already), which keeps the compiled specialisations to one per dtype.
"""

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache, partial

import numba
import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from ._numpy import student_t_log_constant

LOG_2PI = float(np.log(2.0 * np.pi))

# Per-sample work (n * K) below which the serial twin runs: threads pay from
# a few tens of thousands of row-expert pairs (a few hundred microseconds of
# work); below that, handing tasks to the pool costs more than it saves.
_PARALLEL_MIN_WORK = 20_000
# Rows per transposed block: its scratch stays in L1/L2 for K up to ~32.
_BLOCK = 128
# Parallel work is cut into pieces of at least _MIN_CHUNK_ROWS rows;
# reductions into at most _MAX_CHUNKS chunks, a number fixed by n alone
# (not by the thread count) so that their results are reproducible.
_MAX_CHUNKS = 64
_MIN_CHUNK_ROWS = 2048

# exp(x) = 2**k exp(r), x = k ln2 + r, |r| <= ln2 / 2 (Cody-Waite split of
# ln 2: k * _LN2_HI is exact for |k| < 2**11).
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
# log(x) = e ln2 + log m, m in [sqrt(1/2), sqrt(2)), from x's bit pattern.
_SQRT2 = 1.4142135623730951
_MANTISSA = 0x000FFFFFFFFFFFFF
_EXPONENT_OF_ONE = 0x3FF0000000000000
_SMALLEST_NORMAL = 2.2250738585072014e-308
_LOG_SMALLEST_NORMAL = math.log(_SMALLEST_NORMAL)

# Every kernel: no GIL (the parallel twin runs on threads), cached on disk,
# and IEEE division (x / 0 is inf or NaN as in NumPy, not an exception, which
# would also stop the loops from vectorising).
_JIT = {"nogil": True, "cache": True, "error_model": "numpy"}
# Fused multiply-adds (one rounding instead of two) in the polynomials, the
# linear maps and the sums of products: a fast-math flag that assumes
# nothing about infinities or NaN.
_FMA = {"contract"}


# ---------------------------------------------------------------------------
# Bit casts (free, and vectorised like any arithmetic), for exp and log.


@intrinsic
def _float_from_bits(typingctx, bits):
    """The float64 whose IEEE-754 bit pattern is the int64 ``bits``."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return types.float64(types.int64), codegen


@intrinsic
def _bits_of_float(typingctx, x):
    """The IEEE-754 bit pattern of the float64 ``x``, as an int64."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return types.int64(types.float64), codegen


# ---------------------------------------------------------------------------
# Block helpers. A block of nb <= _BLOCK rows is held transposed: a quantity
# with M components per row is an (M, _BLOCK) array, row i in column i.


@njit(**_JIT, fastmath=_FMA)
def _exp_shifted(z, shift, nb, out):
    """out[i] = exp(z[i] - shift[i]) for i < nb (1-D rows of a block), vectorised.

    Taylor polynomial of degree 13 on the reduced argument (truncation
    below 1e-17), then an exact scaling by 2**k as two powers of two built
    from their bit patterns, so that results underflowing into subnormals
    are rounded once. Within 1 ulp of libm's exp; exp(-inf) = 0. Arguments
    are clamped to [-746, 710], where exp is already 0 and inf.
    """
    for i in range(nb):
        x = z[i] - shift[i]
        x = -746.0 if x < -746.0 else x  # NaN passes both tests unchanged
        x = 710.0 if x > 710.0 else x
        kf = math.floor(x * _LOG2E + 0.5)
        r = (x - kf * _LN2_HI) - kf * _LN2_LO
        p = 1.0 / 6227020800.0
        p = p * r + 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        k = np.int64(kf)
        half = k >> 1
        p = p * _float_from_bits((half + 1023) << 52)  # exact: stays a normal number
        out[i] = p * _float_from_bits((k - half + 1023) << 52)  # the one rounding


@njit(**_JIT, fastmath=_FMA)
def _log_block(x, nb, out):
    """out[i] = log(x[i]) for i < nb, vectorised.

    x = 2**e m with m in [sqrt(1/2), sqrt(2)) (from the bit pattern), then
    log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172, by its series to
    s**23. Within 1 ulp of libm's log for positive normal x; anything else
    (0, subnormals, inf, negative, NaN) goes to libm in a second pass.
    """
    for i in range(nb):
        bits = _bits_of_float(x[i])
        m = _float_from_bits((bits & _MANTISSA) | _EXPONENT_OF_ONE)
        e = float((bits >> 52) - 1023)
        big = m > _SQRT2
        m = m * 0.5 if big else m
        e = e + 1.0 if big else e
        f = m - 1.0
        s = f / (2.0 + f)
        s2 = s * s
        p = 1.0 / 23.0
        p = p * s2 + 1.0 / 21.0
        p = p * s2 + 1.0 / 19.0
        p = p * s2 + 1.0 / 17.0
        p = p * s2 + 1.0 / 15.0
        p = p * s2 + 1.0 / 13.0
        p = p * s2 + 1.0 / 11.0
        p = p * s2 + 1.0 / 9.0
        p = p * s2 + 1.0 / 7.0
        p = p * s2 + 1.0 / 5.0
        p = p * s2 + 1.0 / 3.0
        # 2 atanh(s) = 2 s + 2 s^3 p(s^2), and 2 s = f - s f exactly in real arithmetic
        out[i] = e * _LN2_HI + ((e * _LN2_LO + 2.0 * s * s2 * p) + (f - s * f))
    for i in range(nb):
        v = x[i]
        if not (v >= _SMALLEST_NORMAL and v < np.inf):
            out[i] = math.log(v) if v > 0.0 else (-np.inf if v == 0.0 else np.nan)


@njit(**_JIT)
def _load_transposed(rows, out):
    """out[j, i] = rows[i, j] as float64 (rows: the block's (nb, m) view)."""
    for i in range(rows.shape[0]):
        for j in range(rows.shape[1]):
            out[j, i] = rows[i, j]


@njit(**_JIT, fastmath=_FMA)
def _linear_block(xt, nb, weights, bias, out):
    """out[m, i] = bias[m] + sum_j weights[m, j] xt[j, i], summed over j in order.

    The order is a row's own: its value does not depend on its block. Four
    features per sweep (left-to-right, so the same order) quarter the
    loads and stores of ``out``.
    """
    d = weights.shape[1]
    d_four = d - d % 4
    for m in range(weights.shape[0]):
        row, bm = out[m], bias[m]
        for i in range(nb):
            row[i] = bm
        for j in range(0, d_four, 4):
            w0, w1, w2, w3 = weights[m, j], weights[m, j + 1], weights[m, j + 2], weights[m, j + 3]
            x0, x1, x2, x3 = xt[j], xt[j + 1], xt[j + 2], xt[j + 3]
            for i in range(nb):
                row[i] = row[i] + w0 * x0[i] + w1 * x1[i] + w2 * x2[i] + w3 * x3[i]
        for j in range(d_four, d):
            w, xj = weights[m, j], xt[j]
            for i in range(nb):
                row[i] += w * xj[i]


@njit(**_JIT)
def _lse_block(z, nb, e, shift, total, norm):
    """Log-sum-exp over the rows of z (G, _BLOCK), per column i < nb.

    Leaves e = exp(z - shift), total[i] = sum_g e[g, i] (in g order) and the
    log-normaliser norm[i] = shift[i] + log(total[i]); shift[i] is the
    column's maximum, or 0 where that is not finite (the reference's
    convention: an all -inf column sums to 0 and gets -inf, not NaN).
    """
    for i in range(nb):
        shift[i] = z[0, i]
    for g in range(1, z.shape[0]):
        row = z[g]
        for i in range(nb):
            shift[i] = row[i] if row[i] > shift[i] else shift[i]
    for i in range(nb):
        s = shift[i]
        shift[i] = s if (s - s) == 0.0 else 0.0  # a finiteness test that vectorises
    for g in range(z.shape[0]):
        _exp_shifted(z[g], shift, nb, e[g])
    for i in range(nb):
        total[i] = e[0, i]
    for g in range(1, z.shape[0]):
        row = e[g]
        for i in range(nb):
            total[i] += row[i]
    _log_block(total, nb, norm)
    for i in range(nb):
        norm[i] += shift[i]


@njit(**_JIT)
def _gaussian_joint_block(yt, nb, mu, half_precision, log_const, z):
    """z[k, i] += log N(y_i; mu_k(x_i), diag(variance_k)) for a block; overwrites mu.

    The quadratic form is summed over targets into mu's first row of each
    expert, so that every loop runs over the rows of the block.
    """
    n_targets = yt.shape[0]
    for k in range(z.shape[0]):
        # 1-D row views keep the inner loops free of index arithmetic (vectorised)
        first = k * n_targets
        quad, y_row, h = mu[first], yt[0], half_precision[first]
        for i in range(nb):
            resid = y_row[i] - quad[i]
            quad[i] = resid * resid * h
        for s in range(1, n_targets):
            mu_row, y_row, h = mu[first + s], yt[s], half_precision[first + s]
            for i in range(nb):
                resid = y_row[i] - mu_row[i]
                quad[i] += resid * resid * h
        z_row, c = z[k], log_const[k]
        for i in range(nb):
            z_row[i] += c - quad[i]


@njit(**_JIT)
def _logistic_joint_block(yt, nb, logits, e, shift, total, norm, z):
    """z[k, i] += sum_c Y_ic log softmax_c(logits[k*C:(k+1)*C, i]) for a block."""
    n_classes = yt.shape[0]
    for k in range(z.shape[0]):
        group = logits[k * n_classes:(k + 1) * n_classes]
        _lse_block(group, nb, e, shift, total, norm)
        z_row = z[k]
        for c in range(n_classes):
            y_row, logit = yt[c], group[c]
            for i in range(nb):
                z_row[i] += y_row[i] * (logit[i] - norm[i])


@njit(**_JIT)
def _write_posterior(e, total, norm, gate_norm, nb, resp, log_norm):
    """resp[i] = e[:, i] / total[i] and log_norm[i] = norm[i] - gate_norm[i].

    ``resp`` and ``log_norm`` are the block's views. A row whose joint is
    -inf for every expert (total 0) gets zero responsibilities and -inf.
    """
    for i in range(nb):
        log_norm[i] = norm[i] - gate_norm[i]
        total[i] = 1.0 / total[i] if total[i] > 0.0 else 0.0  # now the inverse
    for i in range(nb):
        inverse = total[i]
        for k in range(resp.shape[1]):
            resp[i, k] = e[k, i] * inverse


@njit(**_JIT)
def _write_log_softmax(z, norm, nb, out):
    """out[i, g] = z[g, i] - norm[i] (out: the block's view)."""
    for i in range(nb):
        for g in range(z.shape[0]):
            out[i, g] = z[g, i] - norm[i]


@njit(**_JIT)
def _write_transposed(z, nb, out):
    for i in range(nb):
        for g in range(z.shape[0]):
            out[i, g] = z[g, i]


@njit(**_JIT, fastmath=_FMA | {"reassoc"})
def _accumulate_products(A, nb, B, acc):
    """acc[m, q] += sum_{i < nb} A[m, i] B[q, i]: a small A B^T over a block.

    Two by two outputs per sweep over i, so each loaded value feeds two
    products; the sums may be reassociated (vectorised over i).
    """
    n_a, n_b = A.shape[0], B.shape[0]
    m_even, q_even = n_a - n_a % 2, n_b - n_b % 2
    for m in range(0, m_even, 2):
        for q in range(0, q_even, 2):
            s00 = 0.0
            s01 = 0.0
            s10 = 0.0
            s11 = 0.0
            for i in range(nb):
                a0, a1, b0, b1 = A[m, i], A[m + 1, i], B[q, i], B[q + 1, i]
                s00 += a0 * b0
                s01 += a0 * b1
                s10 += a1 * b0
                s11 += a1 * b1
            acc[m, q] += s00
            acc[m, q + 1] += s01
            acc[m + 1, q] += s10
            acc[m + 1, q + 1] += s11
    for m in range(n_a):
        first_q = q_even if m < m_even else 0  # the odd last column, or the odd last row
        for q in range(first_q, n_b):
            s = 0.0
            for i in range(nb):
                s += A[m, i] * B[q, i]
            acc[m, q] += s


@njit(**_JIT, fastmath=_FMA | {"reassoc"})
def _dot_block(a, b, nb):
    """sum_{i < nb} a[i] b[i], reassociated (vectorised over i; the order is the
    compiled code's, never the data's or the threads')."""
    total = 0.0
    for i in range(nb):
        total += a[i] * b[i]
    return total


@njit(**_JIT, fastmath=_FMA | {"reassoc"})
def _sum_block(a, nb):
    """sum_{i < nb} a[i], reassociated as :func:`_dot_block`."""
    total = 0.0
    for i in range(nb):
        total += a[i]
    return total


@njit(**_JIT)
def _pair_products(zt, nb, out):
    """out[p(a, b), i] = zt[a, i] zt[b, i] for a <= b, row-major upper-triangle order."""
    p = 0
    for a in range(zt.shape[0]):
        za = zt[a]
        for b in range(a, zt.shape[0]):
            zb, row = zt[b], out[p]
            for i in range(nb):
                row[i] = za[i] * zb[i]
            p += 1
    return p


@njit(**_JIT)
def _new_features(d, n_extra):
    """(d + 1 + n_extra, _BLOCK) scratch whose row d is the constant 1 (the intercept)."""
    xt = np.empty((d + 1 + n_extra, _BLOCK))
    xt[d, :] = 1.0
    return xt


@njit(**_JIT)
def _new_lse_scratch():
    """shift, total and norm rows for :func:`_lse_block`."""
    return np.empty(_BLOCK), np.empty(_BLOCK), np.empty(_BLOCK)


# ---------------------------------------------------------------------------
# Row-wise kernels over rows start..stop (the plumbing below splits the rows
# among threads).


@njit(**_JIT)
def _log_gate_rows(X, gate_w, gate_b, out, start, stop):
    n_experts = gate_b.shape[0]
    xt = np.empty((X.shape[1], _BLOCK))
    z = np.empty((n_experts, _BLOCK))
    e = np.empty((n_experts, _BLOCK))
    shift, total, norm = _new_lse_scratch()
    for s0 in range(start, stop, _BLOCK):
        nb = min(_BLOCK, stop - s0)
        _load_transposed(X[s0:s0 + nb], xt)
        _linear_block(xt, nb, gate_w, gate_b, z)
        _lse_block(z, nb, e, shift, total, norm)
        _write_log_softmax(z, norm, nb, out[s0:s0 + nb])


@njit(**_JIT)
def _tree_log_gate_rows(X, node_w, node_b, branching, out, start, stop):
    """Leaves' log priors of a tree of softmax gates (see :func:`tree_log_gate`)."""
    n_leaves = out.shape[1]
    xt = np.empty((X.shape[1], _BLOCK))
    z = np.empty((node_b.shape[0], _BLOCK))
    e = np.empty((node_b.shape[0], _BLOCK))
    leaf = np.empty((n_leaves, _BLOCK))
    shift, total, norm = _new_lse_scratch()
    for s0 in range(start, stop, _BLOCK):
        nb = min(_BLOCK, stop - s0)
        _load_transposed(X[s0:s0 + nb], xt)
        _linear_block(xt, nb, node_w, node_b, z)  # every child's logit of every node
        leaf[:, :nb] = 0.0
        offset, n_nodes, below = 0, 1, n_leaves
        for level in range(branching.shape[0]):
            children = branching[level]
            below //= children  # leaves under each child of this level's nodes
            for j in range(n_nodes):
                first = offset + j * children
                _lse_block(z[first:first + children], nb, e[first:first + children], shift,
                           total, norm)
                for c in range(children):
                    logit = z[first + c]
                    for k in range((j * children + c) * below, (j * children + c + 1) * below):
                        row = leaf[k]
                        for i in range(nb):
                            row[i] += logit[i] - norm[i]
            offset += n_nodes * children
            n_nodes *= children
        _write_transposed(leaf, nb, out[s0:s0 + nb])


@njit(**_JIT)
def _gaussian_log_density_rows(X, Y, mean_w, mean_b, half_precision, log_const, out, start,
                               stop):
    xt = np.empty((X.shape[1], _BLOCK))
    yt = np.empty((Y.shape[1], _BLOCK))
    mu = np.empty((mean_b.shape[0], _BLOCK))
    z = np.empty((log_const.shape[0], _BLOCK))
    for s0 in range(start, stop, _BLOCK):
        nb = min(_BLOCK, stop - s0)
        _load_transposed(X[s0:s0 + nb], xt)
        _load_transposed(Y[s0:s0 + nb], yt)
        _linear_block(xt, nb, mean_w, mean_b, mu)
        z[:] = 0.0
        _gaussian_joint_block(yt, nb, mu, half_precision, log_const, z)
        _write_transposed(z, nb, out[s0:s0 + nb])


@njit(**_JIT)
def _logistic_log_density_rows(X, Y, class_w, class_b, out, start, stop):
    xt = np.empty((X.shape[1], _BLOCK))
    yt = np.empty((Y.shape[1], _BLOCK))
    logits = np.empty((class_b.shape[0], _BLOCK))
    e = np.empty((Y.shape[1], _BLOCK))
    z = np.empty((out.shape[1], _BLOCK))
    shift, total, norm = _new_lse_scratch()
    for s0 in range(start, stop, _BLOCK):
        nb = min(_BLOCK, stop - s0)
        _load_transposed(X[s0:s0 + nb], xt)
        _load_transposed(Y[s0:s0 + nb], yt)
        _linear_block(xt, nb, class_w, class_b, logits)
        z[:] = 0.0
        _logistic_joint_block(yt, nb, logits, e, shift, total, norm, z)
        _write_transposed(z, nb, out[s0:s0 + nb])


@njit(**_JIT)
def _normalize_rows(log_joint, log_norm, resp, start, stop):
    n_experts = log_joint.shape[1]
    z = np.empty((n_experts, _BLOCK))
    e = np.empty((n_experts, _BLOCK))
    shift, total, norm = _new_lse_scratch()
    zero = np.zeros(_BLOCK)
    for s0 in range(start, stop, _BLOCK):
        nb = min(_BLOCK, stop - s0)
        _load_transposed(log_joint[s0:s0 + nb], z)  # a copy: resp may be log_joint
        _lse_block(z, nb, e, shift, total, norm)
        _write_posterior(e, total, norm, zero, nb, resp[s0:s0 + nb], log_norm[s0:s0 + nb])


@njit(**_JIT)
def _gaussian_e_step_rows(X, Y, gate_w, gate_b, mean_w, mean_b, half_precision, log_const,
                          resp, log_norm, log_g, start, stop):
    n_experts = gate_b.shape[0]
    xt = np.empty((X.shape[1], _BLOCK))
    yt = np.empty((Y.shape[1], _BLOCK))
    mu = np.empty((mean_b.shape[0], _BLOCK))
    z = np.empty((n_experts, _BLOCK))
    e = np.empty((n_experts, _BLOCK))
    shift, total, norm = _new_lse_scratch()
    gate_norm = np.empty(_BLOCK)
    for s0 in range(start, stop, _BLOCK):
        nb = min(_BLOCK, stop - s0)
        _load_transposed(X[s0:s0 + nb], xt)
        _load_transposed(Y[s0:s0 + nb], yt)
        # log g_k = logit_k - G: the joint's log-sum-exp is taken on the raw
        # logits and G subtracted once at the end (equal up to rounding).
        _linear_block(xt, nb, gate_w, gate_b, z)
        _lse_block(z, nb, e, shift, total, gate_norm)
        if log_g.shape[0] > 0:  # the log gate too (log_gate's own arithmetic)
            _write_log_softmax(z, gate_norm, nb, log_g[s0:s0 + nb])
        _linear_block(xt, nb, mean_w, mean_b, mu)
        _gaussian_joint_block(yt, nb, mu, half_precision, log_const, z)
        _lse_block(z, nb, e, shift, total, norm)
        _write_posterior(e, total, norm, gate_norm, nb, resp[s0:s0 + nb],
                         log_norm[s0:s0 + nb])


@njit(**_JIT)
def _logistic_e_step_rows(X, Y, gate_w, gate_b, class_w, class_b, resp, log_norm, log_g,
                          start, stop):
    n_experts, n_classes = gate_b.shape[0], Y.shape[1]
    xt = np.empty((X.shape[1], _BLOCK))
    yt = np.empty((n_classes, _BLOCK))
    logits = np.empty((class_b.shape[0], _BLOCK))
    z = np.empty((n_experts, _BLOCK))
    e = np.empty((max(n_experts, n_classes), _BLOCK))
    shift, total, norm = _new_lse_scratch()
    gate_norm = np.empty(_BLOCK)
    for s0 in range(start, stop, _BLOCK):
        nb = min(_BLOCK, stop - s0)
        _load_transposed(X[s0:s0 + nb], xt)
        _load_transposed(Y[s0:s0 + nb], yt)
        _linear_block(xt, nb, gate_w, gate_b, z)
        _lse_block(z, nb, e[:n_experts], shift, total, gate_norm)
        if log_g.shape[0] > 0:
            _write_log_softmax(z, gate_norm, nb, log_g[s0:s0 + nb])
        _linear_block(xt, nb, class_w, class_b, logits)
        _logistic_joint_block(yt, nb, logits, e[:n_classes], shift, total, norm, z)
        _lse_block(z, nb, e[:n_experts], shift, total, norm)
        _write_posterior(e, total, norm, gate_norm, nb, resp[s0:s0 + nb],
                         log_norm[s0:s0 + nb])


@njit(**_JIT)
def _linear_rows(X, weights, bias, out, start, stop):
    """out[i] = weights @ X[i] + bias for rows start..stop; out is (n, M)."""
    xt = np.empty((X.shape[1], _BLOCK))
    z = np.empty((bias.shape[0], _BLOCK))
    for s0 in range(start, stop, _BLOCK):
        nb = min(_BLOCK, stop - s0)
        _load_transposed(X[s0:s0 + nb], xt)
        _linear_block(xt, nb, weights, bias, z)
        _write_transposed(z, nb, out[s0:s0 + nb])


@njit(**_JIT)
def _log_softmax_groups_rows(X, weights, bias, n_classes, out, start, stop):
    """Each expert's class log-softmax; out is (n, K*C), classes contiguous per expert."""
    n_out = bias.shape[0]
    xt = np.empty((X.shape[1], _BLOCK))
    logits = np.empty((n_out, _BLOCK))
    e = np.empty((n_classes, _BLOCK))
    shift, total, norm = _new_lse_scratch()
    for s0 in range(start, stop, _BLOCK):
        nb = min(_BLOCK, stop - s0)
        _load_transposed(X[s0:s0 + nb], xt)
        _linear_block(xt, nb, weights, bias, logits)
        for begin in range(0, n_out, n_classes):
            group = logits[begin:begin + n_classes]
            _lse_block(group, nb, e, shift, total, norm)
            _write_log_softmax(group, norm, nb, out[s0:s0 + nb, begin:begin + n_classes])


@njit(**_JIT)
def _top_k_rows(log_g, k, out, start, stop):
    """Per row: keep the k largest entries (lower index first on ties), renormalised."""
    n_experts = log_g.shape[1]
    row = np.empty(n_experts)
    kept = np.zeros(n_experts, np.bool_)
    for i in range(start, stop):
        for j in range(n_experts):
            row[j] = log_g[i, j]
            kept[j] = False
        # k sweeps of "first maximum among the rest": a stable descending order
        shift = 0.0
        for r in range(k):
            best = -1
            for j in range(n_experts):
                if not kept[j] and (best < 0 or row[j] > row[best]):
                    best = j
            kept[best] = True
            if r == 0:
                shift = row[best]
        if not math.isfinite(shift):
            shift = 0.0
        total = 0.0
        for j in range(n_experts):
            if kept[j]:
                total += math.exp(row[j] - shift)
        norm = shift + math.log(total)  # log(0) = -inf under the NumPy error model
        for j in range(n_experts):
            out[i, j] = row[j] - norm if kept[j] else -np.inf


@njit(**_JIT)
def _classify_rows(log_joint, best, resp, start, stop):
    """Per row: the first maximum; one-hot there (all zero if it is -inf)."""
    n_experts = log_joint.shape[1]
    for i in range(start, stop):
        winner = 0
        for j in range(1, n_experts):
            if log_joint[i, j] > log_joint[i, winner]:
                winner = j
        value = log_joint[i, winner]
        best[i] = value
        for j in range(n_experts):
            resp[i, j] = 0.0
        if value != -np.inf:
            resp[i, winner] = 1.0


# ---------------------------------------------------------------------------
# Reductions over chunks of rows: bounds (m, 2) holds each chunk's first and
# last + 1 row, and every accumulator has a leading chunk axis (m, ...): one
# float64 partial per chunk.


@njit(**_JIT)
def _moments_rows(X, Y, W, bounds, acc):
    """acc[k, :] += sum_i W[i, k] f_i, f_i = (upper triangle of z z^T, z y^T), z = (x_i, 1).

    The upper triangle holds X^T W X, X^T W and sum W at once; z y^T holds
    X^T W Y and Y^T W. acc is (m, K, F).
    """
    d, n_targets = X.shape[1], Y.shape[1]
    zt = _new_features(d, 0)
    yt = np.empty((n_targets, _BLOCK))
    wt = np.empty((W.shape[1], _BLOCK))
    f = np.empty((acc.shape[2], _BLOCK))
    for chunk in range(bounds.shape[0]):
        for s0 in range(bounds[chunk, 0], bounds[chunk, 1], _BLOCK):
            nb = min(_BLOCK, bounds[chunk, 1] - s0)
            _load_transposed(X[s0:s0 + nb], zt)
            _load_transposed(Y[s0:s0 + nb], yt)
            _load_transposed(W[s0:s0 + nb], wt)
            q = _pair_products(zt, nb, f)
            for a in range(d + 1):
                za = zt[a]
                for s in range(n_targets):
                    ys, row = yt[s], f[q]
                    for i in range(nb):
                        row[i] = za[i] * ys[i]
                    q += 1
            _accumulate_products(wt, nb, f, acc[chunk])


@njit(**_JIT)
def _weighted_rss_rows(X, Y, W, mean_w, mean_b, bounds, acc):
    """acc[k, s] += sum_i W[i, k] (Y[i, s] - mean_ks(x_i))^2; acc is (m, K, t)."""
    n_experts, n_targets = W.shape[1], Y.shape[1]
    xt = np.empty((X.shape[1], _BLOCK))
    yt = np.empty((n_targets, _BLOCK))
    wt = np.empty((n_experts, _BLOCK))
    sq = np.empty((mean_b.shape[0], _BLOCK))
    for chunk in range(bounds.shape[0]):
        for s0 in range(bounds[chunk, 0], bounds[chunk, 1], _BLOCK):
            nb = min(_BLOCK, bounds[chunk, 1] - s0)
            _load_transposed(X[s0:s0 + nb], xt)
            _load_transposed(Y[s0:s0 + nb], yt)
            _load_transposed(W[s0:s0 + nb], wt)
            _linear_block(xt, nb, mean_w, mean_b, sq)
            for k in range(n_experts):
                for s in range(n_targets):
                    m = k * n_targets + s
                    for i in range(nb):
                        resid = yt[s, i] - sq[m, i]
                        sq[m, i] = resid * resid
                _accumulate_products(wt[k:k + 1], nb, sq[k * n_targets:(k + 1) * n_targets],
                                     acc[chunk, k:k + 1])


@njit(**_JIT)
def _residual_moments_rows(X, Y, W, mean_w, mean_b, bounds, acc):
    """acc[k*t + s] += sum_i W_ik r_iks (x_i, 1, r_iks); acc is (m, K*t, d + 2)."""
    n_experts, n_targets, d = W.shape[1], Y.shape[1], X.shape[1]
    zt = _new_features(d, 1)  # rows: x, 1, then the residual of the current output
    yt = np.empty((n_targets, _BLOCK))
    wt = np.empty((n_experts, _BLOCK))
    mu = np.empty((mean_b.shape[0], _BLOCK))
    wr = np.empty((1, _BLOCK))
    for chunk in range(bounds.shape[0]):
        for s0 in range(bounds[chunk, 0], bounds[chunk, 1], _BLOCK):
            nb = min(_BLOCK, bounds[chunk, 1] - s0)
            _load_transposed(X[s0:s0 + nb], zt)
            _load_transposed(Y[s0:s0 + nb], yt)
            _load_transposed(W[s0:s0 + nb], wt)
            _linear_block(zt[:d], nb, mean_w, mean_b, mu)
            for m in range(mean_b.shape[0]):
                k, s = m // n_targets, m % n_targets
                for i in range(nb):
                    resid = yt[s, i] - mu[m, i]
                    zt[d + 1, i] = resid
                    wr[0, i] = wt[k, i] * resid
                _accumulate_products(wr, nb, zt, acc[chunk, m:m + 1])


@njit(**_JIT)
def _logistic_gradient_rows(X, Y, W, class_w, class_b, bounds, acc):
    """acc[k*C + c] += sum_i W_ik (Y_ic - p_ikc s_i) (x_i, 1); acc is (m, K*C, d + 1)."""
    n_experts, n_classes, d = W.shape[1], Y.shape[1], X.shape[1]
    zt = _new_features(d, 0)
    yt = np.empty((n_classes, _BLOCK))
    wt = np.empty((n_experts, _BLOCK))
    logits = np.empty((class_b.shape[0], _BLOCK))
    e = np.empty((n_classes, _BLOCK))
    resid = np.empty((n_classes, _BLOCK))
    s_row = np.empty(_BLOCK)
    shift, total, norm = _new_lse_scratch()
    for chunk in range(bounds.shape[0]):
        for s0 in range(bounds[chunk, 0], bounds[chunk, 1], _BLOCK):
            nb = min(_BLOCK, bounds[chunk, 1] - s0)
            _load_transposed(X[s0:s0 + nb], zt)
            _load_transposed(Y[s0:s0 + nb], yt)
            _load_transposed(W[s0:s0 + nb], wt)
            _linear_block(zt[:d], nb, class_w, class_b, logits)
            for i in range(nb):
                s_row[i] = yt[0, i]
            for c in range(1, n_classes):
                for i in range(nb):
                    s_row[i] += yt[c, i]
            for k in range(n_experts):
                group = logits[k * n_classes:(k + 1) * n_classes]
                _lse_block(group, nb, e, shift, total, norm)
                for c in range(n_classes):
                    e_row, y_row, w_row, r_row = e[c], yt[c], wt[k], resid[c]
                    for i in range(nb):
                        p = e_row[i] / total[i]
                        r_row[i] = (y_row[i] - p * s_row[i]) * w_row[i]
                rows = slice(k * n_classes, (k + 1) * n_classes)
                _accumulate_products(resid, nb, zt, acc[chunk, rows])


@njit(**_JIT)
def _gate_gradient_hessian_rows(X, W, log_g, bounds, grad, curv):
    """Gradient (m, K, d+1) and curvature sums (m, P, Q) of the gate over the chunks.

    curv[p(k, l), q(a, b)] += sum_i c_ikl z_ia z_ib over expert pairs k <= l
    and feature pairs a <= b of z = (x, 1), c_ikl = s_i g_ik ([k == l] -
    g_il): each distinct entry of the Hessian once, as a product of two
    (pairs by rows) blocks.
    """
    n_experts, d = W.shape[1], X.shape[1]
    zt = _new_features(d, 0)
    wt = np.empty((n_experts, _BLOCK))
    log_gt = np.empty((n_experts, _BLOCK))
    g = np.empty((n_experts, _BLOCK))
    resid = np.empty((n_experts, _BLOCK))
    f = np.empty((curv.shape[2], _BLOCK))
    curvature = np.empty((curv.shape[1], _BLOCK))
    s_row, zero = np.empty(_BLOCK), np.zeros(_BLOCK)
    for chunk in range(bounds.shape[0]):
        for s0 in range(bounds[chunk, 0], bounds[chunk, 1], _BLOCK):
            nb = min(_BLOCK, bounds[chunk, 1] - s0)
            _load_transposed(X[s0:s0 + nb], zt)
            _load_transposed(W[s0:s0 + nb], wt)
            _load_transposed(log_g[s0:s0 + nb], log_gt)
            for k in range(n_experts):
                _exp_shifted(log_gt[k], zero, nb, g[k])
            for i in range(nb):
                s_row[i] = wt[0, i]
            for k in range(1, n_experts):
                for i in range(nb):
                    s_row[i] += wt[k, i]
            for k in range(n_experts):
                for i in range(nb):
                    resid[k, i] = wt[k, i] - g[k, i] * s_row[i]
            _accumulate_products(resid, nb, zt, grad[chunk])
            _gate_curvature_block(zt, g, s_row, nb, f, curvature, curv[chunk])


# ---------------------------------------------------------------------------
# One-pass EM statistics (softmax gate, Gaussian experts): everything
# ``MixtureModel.pass_statistics`` composes from the kernels above, from one
# sweep over the rows. Each block is loaded and transposed once; the expert
# means feed both the densities and the residual moments, and the gate and
# posterior computed once feed the Gram matrices, the gate's gradient and
# (on the sampled rows) its Hessian. No (n, K) array is written.


@njit(**_JIT, fastmath=_FMA | {"reassoc"})
def _accumulate_products_4x2(A, nb, B, acc):
    """:func:`_accumulate_products` with four by two outputs per sweep over i.

    Each loaded B value feeds four products: about a third faster for the
    fused pass's Gram, gradient and Hessian sums (8 or 36 rows of A); the
    rows of A past the last multiple of four go to the two-by-two version.
    """
    n_a, n_b = A.shape[0], B.shape[0]
    m_four, q_even = n_a - n_a % 4, n_b - n_b % 2
    for m in range(0, m_four, 4):
        a0, a1, a2, a3 = A[m], A[m + 1], A[m + 2], A[m + 3]
        for q in range(0, q_even, 2):
            b0, b1 = B[q], B[q + 1]
            s00 = 0.0
            s01 = 0.0
            s10 = 0.0
            s11 = 0.0
            s20 = 0.0
            s21 = 0.0
            s30 = 0.0
            s31 = 0.0
            for i in range(nb):
                s00 += a0[i] * b0[i]
                s01 += a0[i] * b1[i]
                s10 += a1[i] * b0[i]
                s11 += a1[i] * b1[i]
                s20 += a2[i] * b0[i]
                s21 += a2[i] * b1[i]
                s30 += a3[i] * b0[i]
                s31 += a3[i] * b1[i]
            acc[m, q] += s00
            acc[m, q + 1] += s01
            acc[m + 1, q] += s10
            acc[m + 1, q + 1] += s11
            acc[m + 2, q] += s20
            acc[m + 2, q + 1] += s21
            acc[m + 3, q] += s30
            acc[m + 3, q + 1] += s31
        if q_even < n_b:  # the odd last column
            b0 = B[q_even]
            s0 = 0.0
            s1 = 0.0
            s2 = 0.0
            s3 = 0.0
            for i in range(nb):
                s0 += a0[i] * b0[i]
                s1 += a1[i] * b0[i]
                s2 += a2[i] * b0[i]
                s3 += a3[i] * b0[i]
            acc[m, q_even] += s0
            acc[m + 1, q_even] += s1
            acc[m + 2, q_even] += s2
            acc[m + 3, q_even] += s3
    if m_four < n_a:
        _accumulate_products(A[m_four:], nb, B, acc[m_four:])


@njit(**_JIT)
def _gaussian_joint_from_residuals(rt, nb, half_precision, log_const, quad, z):
    """z[k, i] += log_const[k] - sum_s rt[k*t + s, i]^2 half_precision[k*t + s].

    :func:`_gaussian_joint_block`'s arithmetic from residuals already formed
    (they are kept for the residual moments).
    """
    n_experts = z.shape[0]
    n_targets = rt.shape[0] // n_experts
    for k in range(n_experts):
        first = k * n_targets
        r_row, h = rt[first], half_precision[first]
        for i in range(nb):
            quad[i] = r_row[i] * r_row[i] * h
        for s in range(1, n_targets):
            r_row, h = rt[first + s], half_precision[first + s]
            for i in range(nb):
                quad[i] += r_row[i] * r_row[i] * h
        z_row, c = z[k], log_const[k]
        for i in range(nb):
            z_row[i] += c - quad[i]


@njit(**_JIT)
def _softmax_curvature_weights(g, s_row, nb, curvature):
    """curvature[p(k, l), i] = s_i g_ik ([k == l] - g_il) for k <= l, i < nb: the
    weights of a softmax's Hessian (row-major upper-triangle order of the pairs)."""
    n_experts = g.shape[0]
    p = 0
    for k in range(n_experts):
        gk, row = g[k], curvature[p]
        for i in range(nb):
            sg = s_row[i] * gk[i]
            row[i] = sg - sg * gk[i]
        p += 1
        for other in range(k + 1, n_experts):
            gl, row = g[other], curvature[p]
            for i in range(nb):
                row[i] = -(s_row[i] * gk[i]) * gl[i]
            p += 1


@njit(**_JIT)
def _gate_curvature_block(zt, g, s_row, nb, f, curvature, curv):
    """curv[p(k, l), q(a, b)] += sum_{i < nb} s_i g_ik ([k == l] - g_il) z_ia z_ib.

    :func:`_gate_gradient_hessian_rows`'s curvature sums for a block of
    (gathered) rows; ``f`` and ``curvature`` are scratch.
    """
    _softmax_curvature_weights(g, s_row, nb, curvature)
    _pair_products(zt, nb, f)
    _accumulate_products_4x2(curvature, nb, f, curv)


@njit(**_JIT)
def _gate_probabilities(zt, nb, gate_w, gate_b, z, e, shift, total, gate_norm, g):
    """The gate of a block: raw logits into z, their log-sum-exp G into gate_norm,
    the probabilities into g (``e``, ``shift`` and ``total`` are scratch)."""
    _linear_block(zt, nb, gate_w, gate_b, z)
    _lse_block(z, nb, e, shift, total, gate_norm)
    for i in range(nb):
        total[i] = 1.0 / total[i]
    for k in range(g.shape[0]):
        for i in range(nb):
            g[k, i] = e[k, i] * total[i]


@njit(**_JIT)
def _posterior_weights(e, total, s_row, g, nb, wt, w_row, weighted):
    """W = s h of a block into wt (h = e * total, the normalised posterior), their
    row sums s' into w_row, and the gate's residuals W - g s' into weighted[:K]."""
    n_experts = wt.shape[0]
    for k in range(n_experts):
        for i in range(nb):
            w = (e[k, i] * total[i]) * s_row[i]
            # subnormal weights (peaked posteriors) would stall every
            # product they enter: flushed, the pass took half the time
            wt[k, i] = w if w >= _SMALLEST_NORMAL else 0.0
    for i in range(nb):
        w_row[i] = wt[0, i]
    for k in range(1, n_experts):
        for i in range(nb):
            w_row[i] += wt[k, i]
    for k in range(n_experts):
        for i in range(nb):
            weighted[k, i] = wt[k, i] - g[k, i] * w_row[i]


@njit(**_JIT)
def _block_posterior(z, nb, e, shift, total, norm, s_row, gate_norm, g, wt, w_row, weighted):
    """From a block's joint log g_k + log p_k in z: the posterior weights, as
    :func:`_posterior_weights` leaves them, and the block's weighted
    log-likelihood sum_i s_i (log-sum-exp_k z_ki - gate_norm_i), returned."""
    _lse_block(z, nb, e, shift, total, norm)
    log_lik = 0.0
    for i in range(nb):
        log_lik += s_row[i] * (norm[i] - gate_norm[i])
        # an impossible row (total 0) gets no responsibility
        total[i] = 1.0 / total[i] if total[i] > 0.0 else 0.0
    _posterior_weights(e, total, s_row, g, nb, wt, w_row, weighted)
    return log_lik


@njit(**_JIT)
def _sample_hessian_rows(zt, g, w_row, s0, nb, stride, d, hz, hg, hs, n_held, f, curvature,
                         curv, hessian_weight, chunk):
    """Gather the block's rows i % stride == 0 (i counted from X's first row) for the
    gate's subsampled curvature, summed into curv whenever _BLOCK are held; returns
    how many are held. ``f`` holds the block's pair products of ``zt`` on entry.

    With stride 1 nothing is gathered: the block is what would be held (none
    is held before it, as blocks of a chunk are full but its last), so its
    curvature is summed from ``zt``, ``g`` and ``f`` as they are, in the
    same order (the same sums as gathering them; the pairs are not formed twice).
    """
    if stride == 1 and n_held == 0:
        for i in range(nb):
            hessian_weight[chunk] += w_row[i]
        _softmax_curvature_weights(g, w_row, nb, curvature)
        _accumulate_products_4x2(curvature, nb, f, curv)
        return 0
    for i in range((stride - s0 % stride) % stride, nb, stride):
        for a in range(d):
            hz[a, n_held] = zt[a, i]
        for k in range(g.shape[0]):
            hg[k, n_held] = g[k, i]
        hs[n_held] = w_row[i]
        hessian_weight[chunk] += w_row[i]
        n_held += 1
        if n_held == _BLOCK:
            _gate_curvature_block(hz, hg, hs, n_held, f, curvature, curv)
            n_held = 0
    return n_held


@njit(**_JIT)
def _gaussian_pass_rows(X, Y, S, gate_w, gate_b, mean_w, mean_b, half_precision, log_const,
                        stride, bounds, log_lik, moments, linear, rss, curv, hessian_weight):
    """One-pass EM statistics of the chunks of rows in ``bounds``.

    Per chunk c: log_lik[c] = sum_i s_i log p(y_i | x_i); with W = s h and
    z = (x, 1), moments[c, k] the upper triangle of sum_i W_ik z z^T;
    linear[c, k] = sum_i (W_ik - g_ik s'_i) z_i (the gate's gradient) and
    linear[c, K + k*t + s] = sum_i W_ik r_iks z_i; rss[c, k*t + s, 0] =
    sum_i W_ik r_iks^2; curv[c] and hessian_weight[c] the gate's curvature
    sums and sum_i s'_i over rows i % stride == 0 (s'_i = sum_k W_ik).
    """
    n_experts, n_targets, d = gate_b.shape[0], Y.shape[1], X.shape[1]
    n_means = mean_b.shape[0]
    zt = _new_features(d, 0)
    yt = np.empty((n_targets, _BLOCK))
    z = np.empty((n_experts, _BLOCK))
    e = np.empty((n_experts, _BLOCK))
    g = np.empty((n_experts, _BLOCK))
    shift, total, norm = _new_lse_scratch()
    gate_norm, quad, s_row, w_row = (np.empty(_BLOCK), np.empty(_BLOCK), np.empty(_BLOCK),
                                     np.empty(_BLOCK))
    # the gate's residuals W - g s' (K rows), then W r per output: one product with z
    weighted = np.empty((n_experts + n_means, _BLOCK))
    wt = np.empty((n_experts, _BLOCK))
    rt = np.empty((n_means, _BLOCK))
    f = np.empty((moments.shape[2], _BLOCK))
    # the Hessian's sampled rows, gathered until a block is full
    hz = _new_features(d, 0)
    hg = np.empty((n_experts, _BLOCK))
    hs = np.empty(_BLOCK)
    curvature = np.empty((curv.shape[1], _BLOCK))
    for chunk in range(bounds.shape[0]):
        n_held = 0
        for s0 in range(bounds[chunk, 0], bounds[chunk, 1], _BLOCK):
            nb = min(_BLOCK, bounds[chunk, 1] - s0)
            _load_transposed(X[s0:s0 + nb], zt)
            _load_transposed(Y[s0:s0 + nb], yt)
            for i in range(nb):
                s_row[i] = S[s0 + i]
            # gate: raw logits, their log-sum-exp G and the probabilities
            _gate_probabilities(zt, nb, gate_w, gate_b, z, e, shift, total, gate_norm, g)
            # residuals at the current means, then the joint and the posterior
            _linear_block(zt, nb, mean_w, mean_b, rt)
            for m in range(n_means):
                y_row, r_row = yt[m % n_targets], rt[m]
                for i in range(nb):
                    r_row[i] = y_row[i] - r_row[i]
            _gaussian_joint_from_residuals(rt, nb, half_precision, log_const, quad, z)
            # W = s h (h as the E-step computes it), s' = sum_k W_k, W - g s'
            log_lik[chunk] += _block_posterior(z, nb, e, shift, total, norm, s_row, gate_norm, g,
                                               wt, w_row, weighted)
            for m in range(n_means):
                w_k, r_row, out = wt[m // n_targets], rt[m], weighted[n_experts + m]
                for i in range(nb):
                    out[i] = w_k[i] * r_row[i]
            _pair_products(zt, nb, f)
            _accumulate_products_4x2(wt, nb, f, moments[chunk])
            _accumulate_products(weighted, nb, zt, linear[chunk])
            for m in range(n_means):
                _accumulate_products(weighted[n_experts + m:n_experts + m + 1], nb,
                                     rt[m:m + 1], rss[chunk, m:m + 1])
            n_held = _sample_hessian_rows(zt, g, w_row, s0, nb, stride, d, hz, hg, hs, n_held,
                                          f, curvature, curv[chunk], hessian_weight, chunk)
        if n_held > 0:
            _gate_curvature_block(hz, hg, hs, n_held, f, curvature, curv[chunk])


@njit(**_JIT)
def _student_t_pass_rows(X, Y, S, gate_w, gate_b, mean_w, mean_b, half_precision,
                         two_over_dof, half_power, log_const, two_over_dofs, stride, bounds,
                         log_lik, moments, linear, rss, curv, hessian_weight, log_sum, w_sum,
                         dof_sums):
    """:func:`_gaussian_pass_rows` with Student-t experts: the joint from the t
    densities, and the experts' moments at the weights W u (u the latent
    weights at the given parameters); per chunk also log_sum[c, k] = sum_i
    W_ik (log u_ik - u_ik), w_sum[c, k] = sum_i W_ik and dof_sums[c, k, j] =
    sum_i W_ik log1p(delta_ik / nu_kj) at the candidates 2 / two_over_dofs."""
    n_experts, n_targets, d = gate_b.shape[0], Y.shape[1], X.shape[1]
    n_means = mean_b.shape[0]
    zt = _new_features(d, 0)
    yt = np.empty((n_targets, _BLOCK))
    z = np.empty((n_experts, _BLOCK))
    e = np.empty((n_experts, _BLOCK))
    g = np.empty((n_experts, _BLOCK))
    shift, total, norm = _new_lse_scratch()
    gate_norm, s_row, w_row = np.empty(_BLOCK), np.empty(_BLOCK), np.empty(_BLOCK)
    arg, lg = np.empty(_BLOCK), np.empty(_BLOCK)
    quad = np.empty((n_experts, _BLOCK))
    # log1p(delta / nu) per expert: the joint's, and log u = log1p(p / nu) - it
    l1p = np.empty((n_experts, _BLOCK))
    cand = np.empty(_BLOCK)
    weighted = np.empty((n_experts + n_means, _BLOCK))
    wt = np.empty((n_experts, _BLOCK))
    rt = np.empty((n_means, _BLOCK))
    f = np.empty((moments.shape[2], _BLOCK))
    hz = _new_features(d, 0)
    hg = np.empty((n_experts, _BLOCK))
    hs = np.empty(_BLOCK)
    curvature = np.empty((curv.shape[1], _BLOCK))
    for chunk in range(bounds.shape[0]):
        n_held = 0
        for s0 in range(bounds[chunk, 0], bounds[chunk, 1], _BLOCK):
            nb = min(_BLOCK, bounds[chunk, 1] - s0)
            _load_transposed(X[s0:s0 + nb], zt)
            _load_transposed(Y[s0:s0 + nb], yt)
            for i in range(nb):
                s_row[i] = S[s0 + i]
            _gate_probabilities(zt, nb, gate_w, gate_b, z, e, shift, total, gate_norm, g)
            _linear_block(zt, nb, mean_w, mean_b, rt)
            for m in range(n_means):
                y_row, r_row = yt[m % n_targets], rt[m]
                for i in range(nb):
                    r_row[i] = y_row[i] - r_row[i]
            # delta / 2 per expert, then the t joint (as _student_t_joint_block)
            for k in range(n_experts):
                first = k * n_targets
                q_row, r_row, h = quad[k], rt[first], half_precision[first]
                for i in range(nb):
                    q_row[i] = r_row[i] * r_row[i] * h
                for s in range(1, n_targets):
                    r_row, h = rt[first + s], half_precision[first + s]
                    for i in range(nb):
                        q_row[i] += r_row[i] * r_row[i] * h
                b = two_over_dof[k]
                for i in range(nb):
                    arg[i] = 1.0 + q_row[i] * b
                _log_block(arg, nb, lg)
                z_row, c, a, l_row = z[k], log_const[k], half_power[k], l1p[k]
                for i in range(nb):
                    u = arg[i]
                    x = q_row[i] * b
                    fix = ((u - 1.0) - x) / u if u < np.inf else 0.0
                    l_row[i] = lg[i] - fix
                    z_row[i] += c - a * l_row[i]
            # W = s h; the gate's residuals W - g s' (from W, not W u)
            log_lik[chunk] += _block_posterior(z, nb, e, shift, total, norm, s_row, gate_norm, g,
                                               wt, w_row, weighted)
            # the nu step's candidates (the current nu's log1p is the joint's)
            for k in range(n_experts):
                q_row, w_k = quad[k], wt[k]
                for j in range(two_over_dofs.shape[1]):
                    b = two_over_dofs[k, j]
                    if b == two_over_dof[k]:
                        l_row = l1p[k]
                    else:
                        _log1p_of_quad(q_row, nb, b, arg, lg, cand)
                        l_row = cand
                    dof_sums[chunk, k, j] += _dot_block(w_k, l_row, nb)
            # the latent weights: W u replaces W for the experts' moments (the
            # sums apart, so that the loop over rows vectorises)
            for k in range(n_experts):
                q_row, w_k, l_row = quad[k], wt[k], l1p[k]
                nu, power = 2.0 / two_over_dof[k], 2.0 * half_power[k]
                log_ratio = math.log1p(n_targets / nu)
                w_sum[chunk, k] += _sum_block(w_k, nb)
                for i in range(nb):
                    v = power / (nu + 2.0 * q_row[i])
                    small = v < _SMALLEST_NORMAL  # (floored, as the reference)
                    u = _SMALLEST_NORMAL if small else v
                    log_u = _LOG_SMALLEST_NORMAL if small else log_ratio - l_row[i]
                    cand[i] = log_u - u
                    arg[i] = u
                log_sum[chunk, k] += _dot_block(w_k, cand, nb)
                for i in range(nb):
                    wu = w_k[i] * arg[i]
                    w_k[i] = wu if wu >= _SMALLEST_NORMAL else 0.0
            for m in range(n_means):
                w_k, r_row, out = wt[m // n_targets], rt[m], weighted[n_experts + m]
                for i in range(nb):
                    out[i] = w_k[i] * r_row[i]
            _pair_products(zt, nb, f)
            _accumulate_products_4x2(wt, nb, f, moments[chunk])
            _accumulate_products(weighted, nb, zt, linear[chunk])
            for m in range(n_means):
                _accumulate_products(weighted[n_experts + m:n_experts + m + 1], nb,
                                     rt[m:m + 1], rss[chunk, m:m + 1])
            n_held = _sample_hessian_rows(zt, g, w_row, s0, nb, stride, d, hz, hg, hs, n_held,
                                          f, curvature, curv[chunk], hessian_weight, chunk)
        if n_held > 0:
            _gate_curvature_block(hz, hg, hs, n_held, f, curvature, curv[chunk])


# ---------------------------------------------------------------------------
# Poisson experts (log link): the E-step fused as the Gaussian one, and the
# Newton moments of the M-step. Rates are exp(min(eta, _POISSON_MAX_ETA)), as
# in the reference; log(y!) comes from a table for the usual small counts.

_POISSON_MAX_ETA = 700.0
# log(y!) for y < this, looked up; larger counts call lgamma.
_LOG_FACTORIAL = np.array([math.lgamma(y + 1.0) for y in range(4096)])


@njit(**_JIT)
def _log_factorial_block(yt, nb, table, out):
    """out[s, i] = log(yt[s, i]!) = lgamma(y + 1), from ``table`` for small integers."""
    size = table.shape[0]
    for s in range(yt.shape[0]):
        y_row, row = yt[s], out[s]
        for i in range(nb):
            y = y_row[i]
            j = int(y) if 0.0 <= y < size else -1
            row[i] = table[j] if j >= 0 and j == y else math.lgamma(y + 1.0)


@njit(**_JIT)
def _poisson_joint_block(yt, nb, eta, log_factorial, zero, rate, z):
    """z[k, i] += sum_s y_is eta_iks - exp(eta_iks) - log(y_is!) for a block; caps eta."""
    n_targets = yt.shape[0]
    for m in range(eta.shape[0]):
        k, s = m // n_targets, m % n_targets
        eta_row, y_row, lf, z_row = eta[m], yt[s], log_factorial[s], z[k]
        for i in range(nb):
            e = eta_row[i]
            eta_row[i] = _POISSON_MAX_ETA if e > _POISSON_MAX_ETA else e
        _exp_shifted(eta_row, zero, nb, rate)
        for i in range(nb):
            z_row[i] += y_row[i] * eta_row[i] - rate[i] - lf[i]


@njit(**_JIT)
def _poisson_log_density_rows(X, Y, mean_w, mean_b, table, out, start, stop):
    n_targets = Y.shape[1]
    xt = np.empty((X.shape[1], _BLOCK))
    yt = np.empty((n_targets, _BLOCK))
    lf = np.empty((n_targets, _BLOCK))
    eta = np.empty((mean_b.shape[0], _BLOCK))
    z = np.empty((out.shape[1], _BLOCK))
    zero = np.zeros(_BLOCK)
    rate = np.empty(_BLOCK)
    for s0 in range(start, stop, _BLOCK):
        nb = min(_BLOCK, stop - s0)
        _load_transposed(X[s0:s0 + nb], xt)
        _load_transposed(Y[s0:s0 + nb], yt)
        _log_factorial_block(yt, nb, table, lf)
        _linear_block(xt, nb, mean_w, mean_b, eta)
        z[:] = 0.0
        _poisson_joint_block(yt, nb, eta, lf, zero, rate, z)
        _write_transposed(z, nb, out[s0:s0 + nb])


@njit(**_JIT)
def _poisson_e_step_rows(X, Y, gate_w, gate_b, mean_w, mean_b, table, resp, log_norm, log_g,
                         start, stop):
    n_experts, n_targets = gate_b.shape[0], Y.shape[1]
    xt = np.empty((X.shape[1], _BLOCK))
    yt = np.empty((n_targets, _BLOCK))
    lf = np.empty((n_targets, _BLOCK))
    eta = np.empty((mean_b.shape[0], _BLOCK))
    z = np.empty((n_experts, _BLOCK))
    e = np.empty((n_experts, _BLOCK))
    shift, total, norm = _new_lse_scratch()
    gate_norm = np.empty(_BLOCK)
    zero = np.zeros(_BLOCK)
    rate = np.empty(_BLOCK)
    for s0 in range(start, stop, _BLOCK):
        nb = min(_BLOCK, stop - s0)
        _load_transposed(X[s0:s0 + nb], xt)
        _load_transposed(Y[s0:s0 + nb], yt)
        # as the Gaussian E-step: the joint's log-sum-exp on the raw logits
        _linear_block(xt, nb, gate_w, gate_b, z)
        _lse_block(z, nb, e, shift, total, gate_norm)
        if log_g.shape[0] > 0:
            _write_log_softmax(z, gate_norm, nb, log_g[s0:s0 + nb])
        _log_factorial_block(yt, nb, table, lf)
        _linear_block(xt, nb, mean_w, mean_b, eta)
        _poisson_joint_block(yt, nb, eta, lf, zero, rate, z)
        _lse_block(z, nb, e, shift, total, norm)
        _write_posterior(e, total, norm, gate_norm, nb, resp[s0:s0 + nb],
                         log_norm[s0:s0 + nb])


@njit(**_JIT)
def _poisson_moments_rows(X, Y, W, mean_w, mean_b, hessian, bounds, value, grad, curv):
    """Per chunk, for every expert-target m = k*t + s: value[m] += sum_i W_ik (y eta - mu),
    grad[m] += sum_i W_ik (y - mu) z_i and (with ``hessian``) curv[m, q(a, b)] +=
    sum_i W_ik mu z_ia z_ib, z = (x, 1), mu = exp(eta) (eta capped)."""
    n_experts, n_targets, d = W.shape[1], Y.shape[1], X.shape[1]
    n_means = mean_b.shape[0]
    zt = _new_features(d, 0)
    yt = np.empty((n_targets, _BLOCK))
    wt = np.empty((n_experts, _BLOCK))
    eta = np.empty((n_means, _BLOCK))
    residual = np.empty((n_means, _BLOCK))
    weight = np.empty((n_means, _BLOCK))
    pairs = np.empty((curv.shape[2] if hessian else 1, _BLOCK))
    zero = np.zeros(_BLOCK)
    rate = np.empty(_BLOCK)
    for chunk in range(bounds.shape[0]):
        for s0 in range(bounds[chunk, 0], bounds[chunk, 1], _BLOCK):
            nb = min(_BLOCK, bounds[chunk, 1] - s0)
            _load_transposed(X[s0:s0 + nb], zt)
            _load_transposed(Y[s0:s0 + nb], yt)
            _load_transposed(W[s0:s0 + nb], wt)
            _linear_block(zt[:d], nb, mean_w, mean_b, eta)
            for m in range(n_means):
                k, s = m // n_targets, m % n_targets
                eta_row, y_row, w_row = eta[m], yt[s], wt[k]
                for i in range(nb):
                    e = eta_row[i]
                    eta_row[i] = _POISSON_MAX_ETA if e > _POISSON_MAX_ETA else e
                _exp_shifted(eta_row, zero, nb, rate)
                total = 0.0
                r_row, c_row = residual[m], weight[m]
                for i in range(nb):
                    total += w_row[i] * (y_row[i] * eta_row[i] - rate[i])
                    r_row[i] = w_row[i] * (y_row[i] - rate[i])
                    c_row[i] = w_row[i] * rate[i]
                value[chunk, m] += total
            _accumulate_products(residual, nb, zt, grad[chunk])
            if hessian:
                _pair_products(zt, nb, pairs)
                _accumulate_products(weight, nb, pairs, curv[chunk])


@njit(**_JIT)
def _poisson_pass_rows(X, Y, S, gate_w, gate_b, mean_w, mean_b, table, stride, bounds,
                       log_lik, value, linear, hess, w_sum, curv, hessian_weight):
    """One-pass EM statistics of Poisson experts over the chunks of rows in ``bounds``.

    :func:`_gaussian_pass_rows` with Poisson experts: per chunk c, log_lik[c]
    = sum_i s_i log p(y_i | x_i); with W = s h, z = (x, 1), eta capped and
    mu = exp(eta): value[c, m] = sum_i W_ik (y_is eta_ims - mu_im) (m = k*t +
    s), linear[c, k] the gate's gradient sum_i (W_ik - g_ik s'_i) z_i and
    linear[c, K + m] = sum_i W_ik (y_is - mu_im) z_i, hess[c, m] the upper
    triangle of sum_i W_ik mu_im z z^T, w_sum[c, k] = sum_i W_ik; curv[c] and
    hessian_weight[c] the gate's, over rows i % stride == 0.
    """
    n_experts, n_targets, d = gate_b.shape[0], Y.shape[1], X.shape[1]
    n_means = mean_b.shape[0]
    zt = _new_features(d, 0)
    yt = np.empty((n_targets, _BLOCK))
    lf = np.empty((n_targets, _BLOCK))
    z = np.empty((n_experts, _BLOCK))
    e = np.empty((n_experts, _BLOCK))
    g = np.empty((n_experts, _BLOCK))
    shift, total, norm = _new_lse_scratch()
    gate_norm, s_row, w_row = np.empty(_BLOCK), np.empty(_BLOCK), np.empty(_BLOCK)
    zero = np.zeros(_BLOCK)
    eta = np.empty((n_means, _BLOCK))
    mu = np.empty((n_means, _BLOCK))
    weighted = np.empty((n_experts + n_means, _BLOCK))
    wmu = np.empty((n_means, _BLOCK))
    wt = np.empty((n_experts, _BLOCK))
    f = np.empty((hess.shape[2], _BLOCK))
    hz = _new_features(d, 0)
    hg = np.empty((n_experts, _BLOCK))
    hs = np.empty(_BLOCK)
    curvature = np.empty((curv.shape[1], _BLOCK))
    for chunk in range(bounds.shape[0]):
        n_held = 0
        for s0 in range(bounds[chunk, 0], bounds[chunk, 1], _BLOCK):
            nb = min(_BLOCK, bounds[chunk, 1] - s0)
            _load_transposed(X[s0:s0 + nb], zt)
            _load_transposed(Y[s0:s0 + nb], yt)
            for i in range(nb):
                s_row[i] = S[s0 + i]
            _gate_probabilities(zt, nb, gate_w, gate_b, z, e, shift, total, gate_norm, g)
            # the experts' log-densities, keeping the capped eta and the rates
            _log_factorial_block(yt, nb, table, lf)
            _linear_block(zt, nb, mean_w, mean_b, eta)
            for m in range(n_means):
                k, s = m // n_targets, m % n_targets
                eta_row, y_row, lf_row, z_row = eta[m], yt[s], lf[s], z[k]
                for i in range(nb):
                    v = eta_row[i]
                    eta_row[i] = _POISSON_MAX_ETA if v > _POISSON_MAX_ETA else v
                _exp_shifted(eta_row, zero, nb, mu[m])
                mu_row = mu[m]
                for i in range(nb):
                    z_row[i] += y_row[i] * eta_row[i] - mu_row[i] - lf_row[i]
            log_lik[chunk] += _block_posterior(z, nb, e, shift, total, norm, s_row, gate_norm, g,
                                               wt, w_row, weighted)
            for k in range(n_experts):
                acc = 0.0
                for i in range(nb):
                    acc += wt[k, i]
                w_sum[chunk, k] += acc
            for m in range(n_means):
                k, s = m // n_targets, m % n_targets
                w_k, y_row, eta_row, mu_row = wt[k], yt[s], eta[m], mu[m]
                out, c_row = weighted[n_experts + m], wmu[m]
                acc = 0.0
                for i in range(nb):
                    acc += w_k[i] * (y_row[i] * eta_row[i] - mu_row[i])
                    out[i] = w_k[i] * (y_row[i] - mu_row[i])
                    c_row[i] = w_k[i] * mu_row[i]
                value[chunk, m] += acc
            _pair_products(zt, nb, f)
            _accumulate_products_4x2(wmu, nb, f, hess[chunk])
            _accumulate_products(weighted, nb, zt, linear[chunk])
            n_held = _sample_hessian_rows(zt, g, w_row, s0, nb, stride, d, hz, hg, hs, n_held,
                                          f, curvature, curv[chunk], hessian_weight, chunk)
        if n_held > 0:
            _gate_curvature_block(hz, hg, hs, n_held, f, curvature, curv[chunk])


@njit(**_JIT)
def _logistic_curvature_block(hz, hg, hs, hp, hw, nb, f, curvature, curv):
    """The gate's curvature sums (:func:`_gate_curvature_block`, pairs of experts)
    into curv's first K (K + 1) / 2 rows, then each expert k's over pairs of its
    classes (probabilities hp[k*C:(k+1)*C], row weights hw[k]): one product with the
    block's pairs of features for all of them."""
    n_experts = hg.shape[0]
    n_classes = hp.shape[0] // n_experts
    n_pairs = n_experts * (n_experts + 1) // 2
    c_pairs = n_classes * (n_classes + 1) // 2
    _softmax_curvature_weights(hg, hs, nb, curvature[:n_pairs])
    for k in range(n_experts):
        first = n_pairs + k * c_pairs
        _softmax_curvature_weights(hp[k * n_classes:(k + 1) * n_classes], hw[k], nb,
                                   curvature[first:first + c_pairs])
    _pair_products(hz, nb, f)
    _accumulate_products_4x2(curvature, nb, f, curv)


@njit(**_JIT)
def _logistic_pass_rows(X, Y, S, gate_w, gate_b, class_w, class_b, stride, bounds,
                        log_lik, value, linear, w_sum, expert_weight, curv, hessian_weight):
    """One-pass EM statistics of multinomial logistic experts over the chunks in ``bounds``.

    :func:`_gaussian_pass_rows` with logistic experts: per chunk c, log_lik[c]
    = sum_i s_i log p(y_i | x_i); with W = s h, z = (x, 1), p_ik the classes'
    probabilities under expert k and u_i = sum_c y_ic: value[c, k] = sum_i
    W_ik sum_c y_ic log p_ikc; linear[c, k] the gate's gradient sum_i (W_ik -
    g_ik s'_i) z_i and linear[c, K + k*C + a] = sum_i W_ik (y_ia - p_ika u_i)
    z_i; w_sum[c, k] = sum_i W_ik. Over the rows i % stride == 0: curv[c]'s
    first K (K + 1) / 2 rows and hessian_weight[c] the gate's, as in
    :func:`_gaussian_pass_rows`; then for each expert k its curvature sums
    sum_i W_ik u_i p_ika ([a == b] - p_ikb) z_i z_i^T over class pairs a <= b,
    and expert_weight[c, k] = sum_i W_ik.
    """
    n_experts, n_classes, d = gate_b.shape[0], Y.shape[1], X.shape[1]
    n_logits = class_b.shape[0]
    zt = _new_features(d, 0)
    yt = np.empty((n_classes, _BLOCK))
    z = np.empty((n_experts, _BLOCK))
    e = np.empty((max(n_experts, n_classes), _BLOCK))
    g = np.empty((n_experts, _BLOCK))
    shift, total, norm = _new_lse_scratch()
    gate_norm, s_row, w_row, u_row = (np.empty(_BLOCK), np.empty(_BLOCK), np.empty(_BLOCK),
                                      np.empty(_BLOCK))
    # the experts' logits, then their class probabilities; log p(y | x) per expert
    proba = np.empty((n_logits, _BLOCK))
    log_py = np.empty((n_experts, _BLOCK))
    # the gate's residuals W - g s' (K rows), then W (y - p u) per class: one product with z
    weighted = np.empty((n_experts + n_logits, _BLOCK))
    wt = np.empty((n_experts, _BLOCK))
    f = np.empty(((d + 1) * (d + 2) // 2, _BLOCK))
    # the Hessians' sampled rows, gathered until a block is full
    hz = _new_features(d, 0)
    hg = np.empty((n_experts, _BLOCK))
    hs = np.empty(_BLOCK)
    hp = np.empty((n_logits, _BLOCK))
    hw = np.empty((n_experts, _BLOCK))
    curvature = np.empty((curv.shape[1], _BLOCK))
    for chunk in range(bounds.shape[0]):
        n_held = 0
        for s0 in range(bounds[chunk, 0], bounds[chunk, 1], _BLOCK):
            nb = min(_BLOCK, bounds[chunk, 1] - s0)
            _load_transposed(X[s0:s0 + nb], zt)
            _load_transposed(Y[s0:s0 + nb], yt)
            for i in range(nb):
                s_row[i] = S[s0 + i]
                u_row[i] = yt[0, i]
            for c in range(1, n_classes):
                for i in range(nb):
                    u_row[i] += yt[c, i]
            _gate_probabilities(zt, nb, gate_w, gate_b, z, e, shift, total, gate_norm, g)
            # each expert's log-probability of the observed class (into the joint, as
            # _logistic_joint_block adds it) and its class probabilities
            _linear_block(zt, nb, class_w, class_b, proba)
            for k in range(n_experts):
                group = proba[k * n_classes:(k + 1) * n_classes]
                _lse_block(group, nb, e, shift, total, norm)
                z_row, lp = z[k], log_py[k]
                for i in range(nb):
                    lp[i] = 0.0
                for c in range(n_classes):
                    y_row, row, e_row = yt[c], group[c], e[c]
                    for i in range(nb):
                        term = y_row[i] * (row[i] - norm[i])
                        z_row[i] += term
                        lp[i] += term
                        row[i] = e_row[i] / total[i]
            log_lik[chunk] += _block_posterior(z, nb, e, shift, total, norm, s_row, gate_norm, g,
                                               wt, w_row, weighted)
            for k in range(n_experts):
                w_k, lp = wt[k], log_py[k]
                acc_w = 0.0
                acc_v = 0.0
                for i in range(nb):
                    acc_w += w_k[i]
                    acc_v += w_k[i] * lp[i]
                w_sum[chunk, k] += acc_w
                value[chunk, k] += acc_v
                for c in range(n_classes):
                    out, p_row, y_row = weighted[n_experts + k * n_classes + c], \
                        proba[k * n_classes + c], yt[c]
                    for i in range(nb):
                        out[i] = w_k[i] * (y_row[i] - p_row[i] * u_row[i])
            _accumulate_products(weighted, nb, zt, linear[chunk])
            for i in range((stride - s0 % stride) % stride, nb, stride):
                for a in range(d):
                    hz[a, n_held] = zt[a, i]
                for k in range(n_experts):
                    hg[k, n_held] = g[k, i]
                    hw[k, n_held] = wt[k, i] * u_row[i]
                    expert_weight[chunk, k] += wt[k, i]
                for m in range(n_logits):
                    hp[m, n_held] = proba[m, i]
                hs[n_held] = w_row[i]
                hessian_weight[chunk] += w_row[i]
                n_held += 1
                if n_held == _BLOCK:
                    _logistic_curvature_block(hz, hg, hs, hp, hw, n_held, f, curvature,
                                              curv[chunk])
                    n_held = 0
        if n_held > 0:
            _logistic_curvature_block(hz, hg, hs, hp, hw, n_held, f, curvature, curv[chunk])


# ---------------------------------------------------------------------------
# Python-level plumbing: serial/parallel dispatch, layouts, dtypes.
#
# The parallel twin runs the same compiled row kernel (nogil) on contiguous
# ranges of rows from a small thread pool, one task per thread. A prange
# driver per kernel does the same, but compiling it cost two to three times
# as much as the kernel itself (2-7 s per kernel and dtype here): with
# fifteen kernels and two dtypes, over a minute of every cold start.


# ---------------------------------------------------------------------------
# Student-t experts: the E-step fused as the Gaussian one (the quadratic form
# delta / 2 of each expert, then its log1p), and the ECM's latent weights.


@njit(**_JIT)
def _student_t_quad_block(yt, nb, mu, half_precision):
    """mu[k * t, i] = delta_ik / 2 = sum_s r_iks^2 / (2 sigma2_ks) for a block; overwrites mu."""
    n_targets = yt.shape[0]
    for k in range(mu.shape[0] // n_targets):
        first = k * n_targets
        quad, y_row, h = mu[first], yt[0], half_precision[first]
        for i in range(nb):
            resid = y_row[i] - quad[i]
            quad[i] = resid * resid * h
        for s in range(1, n_targets):
            mu_row, y_row, h = mu[first + s], yt[s], half_precision[first + s]
            for i in range(nb):
                resid = y_row[i] - mu_row[i]
                quad[i] += resid * resid * h


@njit(**_JIT)
def _student_t_joint_block(yt, nb, mu, half_precision, two_over_dof, half_power, log_const,
                           arg, lg, z):
    """z[k, i] += log_const_k - (nu_k + p) / 2 log1p(delta_ik / nu_k) for a block.

    log1p(x) as log(u) - ((u - 1) - x) / u with u = 1 + x (vectorised log;
    the correction restores the bits of x lost in forming u); overwrites mu.
    """
    n_targets = yt.shape[0]
    _student_t_quad_block(yt, nb, mu, half_precision)
    for k in range(z.shape[0]):
        quad, b = mu[k * n_targets], two_over_dof[k]
        for i in range(nb):
            arg[i] = 1.0 + quad[i] * b
        _log_block(arg, nb, lg)
        z_row, c, a = z[k], log_const[k], half_power[k]
        for i in range(nb):
            u = arg[i]
            x = quad[i] * b
            fix = ((u - 1.0) - x) / u if u < np.inf else 0.0
            z_row[i] += c - a * (lg[i] - fix)


@njit(**_JIT)
def _student_t_log_density_rows(X, Y, mean_w, mean_b, half_precision, two_over_dof, half_power,
                                log_const, out, start, stop):
    xt = np.empty((X.shape[1], _BLOCK))
    yt = np.empty((Y.shape[1], _BLOCK))
    mu = np.empty((mean_b.shape[0], _BLOCK))
    z = np.empty((log_const.shape[0], _BLOCK))
    arg = np.empty(_BLOCK)
    lg = np.empty(_BLOCK)
    for s0 in range(start, stop, _BLOCK):
        nb = min(_BLOCK, stop - s0)
        _load_transposed(X[s0:s0 + nb], xt)
        _load_transposed(Y[s0:s0 + nb], yt)
        _linear_block(xt, nb, mean_w, mean_b, mu)
        z[:] = 0.0
        _student_t_joint_block(yt, nb, mu, half_precision, two_over_dof, half_power, log_const,
                               arg, lg, z)
        _write_transposed(z, nb, out[s0:s0 + nb])


@njit(**_JIT)
def _student_t_e_step_rows(X, Y, gate_w, gate_b, mean_w, mean_b, half_precision, two_over_dof,
                           half_power, log_const, resp, log_norm, log_g, start, stop):
    n_experts = gate_b.shape[0]
    xt = np.empty((X.shape[1], _BLOCK))
    yt = np.empty((Y.shape[1], _BLOCK))
    mu = np.empty((mean_b.shape[0], _BLOCK))
    z = np.empty((n_experts, _BLOCK))
    e = np.empty((n_experts, _BLOCK))
    arg = np.empty(_BLOCK)
    lg = np.empty(_BLOCK)
    shift, total, norm = _new_lse_scratch()
    gate_norm = np.empty(_BLOCK)
    for s0 in range(start, stop, _BLOCK):
        nb = min(_BLOCK, stop - s0)
        _load_transposed(X[s0:s0 + nb], xt)
        _load_transposed(Y[s0:s0 + nb], yt)
        # as the Gaussian E-step: the joint's log-sum-exp on the raw logits
        _linear_block(xt, nb, gate_w, gate_b, z)
        _lse_block(z, nb, e, shift, total, gate_norm)
        if log_g.shape[0] > 0:
            _write_log_softmax(z, gate_norm, nb, log_g[s0:s0 + nb])
        _linear_block(xt, nb, mean_w, mean_b, mu)
        _student_t_joint_block(yt, nb, mu, half_precision, two_over_dof, half_power, log_const,
                               arg, lg, z)
        _lse_block(z, nb, e, shift, total, norm)
        _write_posterior(e, total, norm, gate_norm, nb, resp[s0:s0 + nb],
                         log_norm[s0:s0 + nb])


@njit(**_JIT)
def _student_t_weights_rows(X, Y, W, mean_w, mean_b, half_precision, dof, power, out, bounds,
                            log_sum, w_sum):
    """out[i, k] = W_ik u_ik, u_ik = (nu_k + p) / (nu_k + delta_ik) (floored at the
    smallest normal), and per chunk c log_sum[c, k] += W_ik (log u_ik - u_ik),
    w_sum[c, k] += W_ik."""
    n_targets = Y.shape[1]
    n_experts = dof.shape[0]
    xt = np.empty((X.shape[1], _BLOCK))
    yt = np.empty((n_targets, _BLOCK))
    wt = np.empty((n_experts, _BLOCK))
    mu = np.empty((mean_b.shape[0], _BLOCK))
    u = np.empty((n_experts, _BLOCK))
    lg = np.empty(_BLOCK)
    for chunk in range(bounds.shape[0]):
        for s0 in range(bounds[chunk, 0], bounds[chunk, 1], _BLOCK):
            nb = min(_BLOCK, bounds[chunk, 1] - s0)
            _load_transposed(X[s0:s0 + nb], xt)
            _load_transposed(Y[s0:s0 + nb], yt)
            _load_transposed(W[s0:s0 + nb], wt)
            _linear_block(xt, nb, mean_w, mean_b, mu)
            _student_t_quad_block(yt, nb, mu, half_precision)
            for k in range(n_experts):
                quad, u_row, w_row, nu, a = mu[k * n_targets], u[k], wt[k], dof[k], power[k]
                for i in range(nb):
                    v = a / (nu + 2.0 * quad[i])
                    u_row[i] = v if v > _SMALLEST_NORMAL else _SMALLEST_NORMAL
                _log_block(u_row, nb, lg)
                total, log_total = 0.0, 0.0
                for i in range(nb):
                    w = w_row[i]
                    total += w
                    log_total += w * (lg[i] - u_row[i])
                    u_row[i] = w * u_row[i]
                w_sum[chunk, k] += total
                log_sum[chunk, k] += log_total
            _write_transposed(u, nb, out[s0:s0 + nb])


@njit(**_JIT)
def _log1p_of_quad(q_row, nb, b, arg, lg, out):
    """out[i] = log1p(q_row[i] * b) for i < nb: log(1 + x), then corrected for the
    rounding of 1 + x (as the t joint's)."""
    for i in range(nb):
        arg[i] = 1.0 + q_row[i] * b
    _log_block(arg, nb, lg)
    for i in range(nb):
        u = arg[i]
        x = q_row[i] * b
        out[i] = lg[i] - (((u - 1.0) - x) / u if u < np.inf else 0.0)


@njit(**_JIT)
def _student_t_log1p_sums_rows(X, Y, W, mean_w, mean_b, half_precision, two_over_dofs, bounds,
                               sums):
    """Per chunk c, sums[c, k, j] += W_ik log1p(delta_ik / nu_kj), two_over_dofs = 2 / nu."""
    n_targets = Y.shape[1]
    n_experts, n_candidates = two_over_dofs.shape
    xt = np.empty((X.shape[1], _BLOCK))
    yt = np.empty((n_targets, _BLOCK))
    wt = np.empty((n_experts, _BLOCK))
    mu = np.empty((mean_b.shape[0], _BLOCK))
    arg, lg, l1p = np.empty(_BLOCK), np.empty(_BLOCK), np.empty(_BLOCK)
    for chunk in range(bounds.shape[0]):
        for s0 in range(bounds[chunk, 0], bounds[chunk, 1], _BLOCK):
            nb = min(_BLOCK, bounds[chunk, 1] - s0)
            _load_transposed(X[s0:s0 + nb], xt)
            _load_transposed(Y[s0:s0 + nb], yt)
            _load_transposed(W[s0:s0 + nb], wt)
            _linear_block(xt, nb, mean_w, mean_b, mu)
            _student_t_quad_block(yt, nb, mu, half_precision)
            for k in range(n_experts):
                quad, w_row = mu[k * n_targets], wt[k]
                for j in range(n_candidates):
                    _log1p_of_quad(quad, nb, two_over_dofs[k, j], arg, lg, l1p)
                    total = 0.0
                    for i in range(nb):
                        total += w_row[i] * l1p[i]
                    sums[chunk, k, j] += total


def _n_threads():
    """Threads of the parallel twin: NUMBA_NUM_THREADS (all cores by default)."""
    return max(1, int(numba.config.NUMBA_NUM_THREADS))


_POOL = None
_POOL_PID = None
_POOL_LOCK = threading.Lock()


def _pool():
    """The shared thread pool, re-created in a forked child (threads are not inherited)."""
    global _POOL, _POOL_PID
    with _POOL_LOCK:
        if _POOL is None or _POOL_PID != os.getpid():
            _POOL = ThreadPoolExecutor(max_workers=_n_threads(), thread_name_prefix="mixexp")
            _POOL_PID = os.getpid()
        return _POOL


def _large(n_samples, n_experts):
    """Enough work for threads: the parallel twin, and reductions in several chunks."""
    return n_samples * n_experts >= _PARALLEL_MIN_WORK


def _split(n_items, n_parts):
    """Bounds of ``n_parts`` contiguous, nearly equal ranges of ``n_items``."""
    edges = (np.arange(n_parts + 1) * n_items) // n_parts
    return list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))


def _run(tasks):
    """Run the callables, all but the first on the pool; re-raise their errors."""
    futures = [_pool().submit(task) for task in tasks[1:]]
    tasks[0]()
    for future in futures:
        future.result()


def _row_wise(rows_kernel, n_experts, *args):
    """Run a row-wise kernel on all rows of ``args[0]``: serial twin, or a range per thread."""
    n_samples = args[0].shape[0]
    if not _large(n_samples, n_experts) or _n_threads() == 1:
        rows_kernel(*args, 0, n_samples)
        return
    n_tasks = min(_n_threads(), max(1, n_samples // _MIN_CHUNK_ROWS))
    _run([partial(rows_kernel, *args, start, stop) for start, stop in _split(n_samples, n_tasks)])


def _reduce(rows_kernel, n_experts, arrays, params, shapes):
    """Sum a reduction over the rows of ``arrays``: one float64 array per entry of ``shapes``.

    The rows are cut into chunks fixed by their number alone (one chunk for
    small work); each chunk sums into its own float64 partial and the
    partials are added in chunk order, so the result does not depend on the
    number of threads nor on how the chunks were shared among them.
    """
    n_samples = arrays[0].shape[0]
    n_chunks = 1
    if _large(n_samples, n_experts):
        n_chunks = int(min(_MAX_CHUNKS, max(1, n_samples // _MIN_CHUNK_ROWS)))
    bounds = np.array(_split(n_samples, n_chunks), dtype=np.int64).reshape(n_chunks, 2)
    partials = [np.zeros((n_chunks, *shape)) for shape in shapes]
    _run([
        partial(rows_kernel, *arrays, *params, bounds[first:last],
                *(p[first:last] for p in partials))
        for first, last in _split(n_chunks, min(_n_threads(), n_chunks))
    ])
    return [p.sum(axis=0) for p in partials]


def _rows(a, dtype):
    """An array with a sample axis, C-contiguous in ``dtype`` (copied only if needed)."""
    return np.ascontiguousarray(a, dtype=dtype)


def _f64(a):
    """A small parameter array as contiguous float64, for the per-row arithmetic."""
    return np.ascontiguousarray(a, dtype=np.float64)


def _output(out, shape, dtype):
    """The array to write into: ``out`` itself when the kernels can, else a fresh one."""
    if out is not None and out.flags.c_contiguous and out.dtype == dtype:
        return out
    return np.empty(shape, dtype=dtype)


def _fused_e_step(rows_kernel, X, Y, gate_coef, gate_intercept, expert, resp, log_gate_out):
    """Run a fused E-step row kernel: fills ``resp`` (and ``log_gate_out``), returns log p.

    ``expert`` holds the family's parameter arrays as its row kernel takes them.
    """
    X = _rows(X, X.dtype)
    Y = _rows(Y, X.dtype)
    out = _output(resp, resp.shape, X.dtype)
    log_norm = np.empty(X.shape[0])  # float64 whatever X's dtype: it feeds EM's sums
    log_g = _gate_output(log_gate_out, out.shape, X.dtype)
    _row_wise(rows_kernel, out.shape[1], X, Y, _f64(gate_coef), _f64(gate_intercept),
              *expert, out, log_norm, log_g)
    _deliver(out, resp)
    if log_gate_out is not None:
        _deliver(log_g, log_gate_out)
    return log_norm


def _gate_output(log_gate_out, shape, dtype):
    """Where an E-step writes the log gate: ``log_gate_out`` (or a stand-in to
    copy into it), or an empty (0, K) array, which tells the kernel not to."""
    if log_gate_out is None:
        return np.empty((0, shape[1]), dtype=dtype)
    return _output(log_gate_out, shape, dtype)


def _deliver(result, out):
    """Copy ``result`` into ``out`` if it is not already there; return what the caller gets."""
    if out is None:
        return result
    if result is not out:
        out[...] = result
    return out


def _stacked_linear_params(coef, intercept):
    """(K, M, d) weights and (K, M) biases as one (K*M, d) map and (K*M,) biases."""
    n_experts, n_out, d = coef.shape
    return _f64(np.reshape(coef, (n_experts * n_out, d))), _f64(np.ravel(intercept))


def _gaussian_params(coef, intercept, variance):
    mean_w, mean_b = _stacked_linear_params(coef, intercept)
    variance = _f64(variance)
    half_precision = np.ravel(0.5 / variance)
    log_const = -0.5 * np.sum(LOG_2PI + np.log(variance), axis=1)
    return mean_w, mean_b, half_precision, log_const


@lru_cache(maxsize=64)
def _triangle_index(size):
    """(size, size) map from (a, b) to the index of (min, max) in row-major upper triangles."""
    rows, cols = np.triu_indices(size)
    index = np.empty((size, size), dtype=np.intp)
    index[rows, cols] = np.arange(rows.size)
    index[cols, rows] = np.arange(rows.size)
    index.setflags(write=False)
    return index


# ---------------------------------------------------------------------------
# Wide data: the Gram reductions through BLAS.
#
# The row kernels above form every product z_a z_b of a row's F = d + 1
# features in an (F (F + 1) / 2, _BLOCK) scratch before weighting it: its
# size grows as F^2 (16M doubles a block at d = 500), it leaves the caches
# from d ~ 40 on, and each product is loaded and stored once per expert.
# From a width measured per kernel on, weighted_moments and
# gate_gradient_hessian take each block of rows to float64 and let BLAS
# form z^T diag(c) z as the symmetric product (syrk: half a gemm's work) of
# sqrt(|c|) z, accumulating block by block into float64 partials.
#
# The thresholds (in features of z = (x, 1)) were measured kernel against
# kernel with BLAS on one thread, as in a fit, on a 2-core machine, at
# n = 3e3 to 3e5 and K = 1 to 8. weighted_moments: the row kernel wins below
# d ~ 40, the two are even at d ~ 48 for K = 3 (d ~ 32 for K = 1, d ~ 56 for
# K = 8), BLAS wins by 1.5-5x at d = 64 and 8x at d = 500.
# gate_gradient_hessian (K (K + 1) / 2 products, one per expert pair): even
# at d ~ 56 for K = 3 (d ~ 32 for K = 1, d ~ 64 for K = 8), BLAS wins by 1.3-4x
# at d = 64 and 11x at d = 500.
_BLAS_MIN_FEATURES_MOMENTS = 48
_BLAS_MIN_FEATURES_GATE = 64
# Rows per BLAS block: about 2 MB of float64 features, so the scratch stays
# in L2/L3, and at least 256 rows, so each product is long enough for BLAS.
_BLAS_BLOCK_VALUES = 1 << 18
_BLAS_MIN_BLOCK_ROWS = 256
# Bound on the float64 partials of all chunks together (32 MB): at d = 500
# one partial of the Gram matrices of K experts is K * 2 MB.
_BLAS_PARTIAL_VALUES = 1 << 22


def _reduce_blocks(chunk_kernel, n_samples, n_columns, shapes):
    """Sum ``chunk_kernel(start, stop, block_rows, *partials)`` over chunks of rows.

    ``_reduce`` for the BLAS kernels: blocks of ``block_rows`` rows (fixed by
    the width alone) are grouped into chunks fixed by ``n_samples`` and the
    shapes (the partials' memory is bounded), each chunk summed into its own
    float64 partials, the partials added in chunk order: the result does not
    depend on the number of threads. Threads take the chunks one at a time
    (they may take very different times on a shared machine).
    """
    block_rows = max(_BLAS_MIN_BLOCK_ROWS, _BLAS_BLOCK_VALUES // n_columns)
    n_blocks = -(-n_samples // block_rows)
    values = sum(math.prod(shape) for shape in shapes)
    n_chunks = max(1, min(n_blocks, _MAX_CHUNKS, _BLAS_PARTIAL_VALUES // values))
    bounds = [(first * block_rows, min(last * block_rows, n_samples))
              for first, last in _split(n_blocks, n_chunks)]
    partials = [np.zeros((n_chunks, *shape)) for shape in shapes]
    chunks = iter(range(n_chunks))  # shared: next() on it is atomic under the GIL

    def worker():
        for chunk in chunks:
            chunk_kernel(*bounds[chunk], block_rows, *(p[chunk] for p in partials))

    _run([worker] * min(_n_threads(), n_chunks))
    return [p.sum(axis=0) for p in partials]


def _add_weighted_gram(z, c, scratch, product, acc):
    """acc += z^T diag(c) z for a float64 block z (nb, F), c (nb,).

    ``scratch`` (nb, F) and ``product`` (F, F) are float64 work arrays. Where
    all weights have one sign, NumPy hands ``a.T @ a`` (one buffer) to BLAS's
    syrk with a = sqrt(|c|) z; otherwise (or with NaN) a gemm of c z by z.
    """
    low, high = c.min(), c.max()
    if low >= 0.0 or high <= 0.0:
        np.multiply(z, np.sqrt(c if low >= 0.0 else -c)[:, None], out=scratch)
        np.matmul(scratch.T, scratch, out=product)
        if low >= 0.0:
            acc += product
        else:
            acc -= product
    else:
        np.multiply(z, c[:, None], out=scratch)
        np.matmul(scratch.T, z, out=product)
        acc += product


def _symmetrised(acc):
    """(..., F, F) matrices with the lower triangle copied from the upper one.

    syrk's results are symmetric already; a gemm's (mixed-sign weights) are
    only up to rounding, while the row kernels' are exactly.
    """
    upper = np.triu(np.ones(acc.shape[-2:], dtype=bool))
    return np.where(upper, acc, np.swapaxes(acc, -1, -2))


def _weighted_moments_blas(X, Y, W):
    """:func:`weighted_moments` for wide X: per expert, z^T diag(W_k) z with z = (x, 1, y)."""
    n_samples, d = X.shape
    n_targets, n_experts = Y.shape[1], W.shape[1]
    n_z = d + 1 + n_targets

    def chunk_moments(start, stop, block_rows, acc):
        z = np.empty((block_rows, n_z))
        z[:, d] = 1.0
        scratch = np.empty((block_rows, n_z))
        product = np.empty((n_z, n_z))
        for s0 in range(start, stop, block_rows):
            nb = min(block_rows, stop - s0)
            zb = z[:nb]
            zb[:, :d] = X[s0:s0 + nb]  # float32 blocks become float64 here
            zb[:, d + 1:] = Y[s0:s0 + nb]
            w = W[s0:s0 + nb].astype(np.float64)
            for k in range(n_experts):
                _add_weighted_gram(zb, w[:, k], scratch[:nb], product, acc[k])

    (acc,) = _reduce_blocks(chunk_moments, n_samples, n_z, [(n_experts, n_z, n_z)])
    acc = _symmetrised(acc)
    return (
        acc[:, :d, :d].copy(),
        acc[:, d, :d].copy(),
        acc[:, :d, d + 1:].copy(),
        acc[:, d, d + 1:].copy(),
        acc[:, d, d].copy(),
    )


def _gate_gradient_hessian_blas(X, W, log_g):
    """:func:`gate_gradient_hessian` for wide X: the curvature of each expert pair by BLAS."""
    n_samples, d = X.shape
    n_experts = W.shape[1]
    n_pairs = n_experts * (n_experts + 1) // 2

    def chunk_gradient_hessian(start, stop, block_rows, grad, curv):
        z = np.empty((block_rows, d + 1))
        z[:, d] = 1.0
        scratch = np.empty((block_rows, d + 1))
        product = np.empty((d + 1, d + 1))
        for s0 in range(start, stop, block_rows):
            nb = min(block_rows, stop - s0)
            zb = z[:nb]
            zb[:, :d] = X[s0:s0 + nb]
            w = W[s0:s0 + nb].astype(np.float64)
            g = np.exp(log_g[s0:s0 + nb].astype(np.float64))
            s = w.sum(axis=1)
            grad += (w - g * s[:, None]).T @ zb
            # curvature weights c_ikl = s_i g_ik ([k == l] - g_il), as the row kernel
            p = 0
            for k in range(n_experts):
                sg = s * g[:, k]
                for other in range(k, n_experts):
                    c = sg - sg * g[:, k] if other == k else -sg * g[:, other]
                    _add_weighted_gram(zb, c, scratch[:nb], product, curv[p])
                    p += 1

    grad, curv = _reduce_blocks(chunk_gradient_hessian, n_samples, d + 1,
                                [(n_experts, d + 1), (n_pairs, d + 1, d + 1)])
    # hess[k, :, l, :] = -curv[pair(k, l)], each block symmetric
    hess = -_symmetrised(curv)[_triangle_index(n_experts)].transpose(0, 2, 1, 3)
    return grad, np.ascontiguousarray(hess)


# ---------------------------------------------------------------------------
# The kernels (signatures of ``_numpy``)


def log_gate(X, gate_coef, gate_intercept, out=None):
    """Log-softmax gate, log g_k(x_i): (n, K)."""
    X = _rows(X, X.dtype)
    gate_w, gate_b = _f64(gate_coef), _f64(gate_intercept)
    result = _output(out, (X.shape[0], gate_b.shape[0]), X.dtype)
    _row_wise(_log_gate_rows, gate_b.shape[0], X, gate_w, gate_b, result)
    return _deliver(result, out)


def tree_log_gate(X, node_coef, node_intercept, branching, out=None):
    """Log priors of the leaves of a uniform tree of softmax gates: (n, K), one pass.

    ``node_coef`` (M, d) and ``node_intercept`` (M,) stack every child's
    logit of every node, level by level and node by node (M = sum_l N_l
    b_l); ``branching`` (L,) the children per node of each level; K the
    product of ``branching``, leaves numbered depth first. Leaf k's log
    prior is the sum over levels of its node's log-softmax at the child on
    its path (``mixexp._gates._tree``, whose composition of ``log_gate``
    calls is this kernel's oracle). An optional fast path: other backends
    compose.
    """
    X = _rows(X, X.dtype)
    node_w, node_b = _f64(node_coef), _f64(node_intercept)
    branching = np.ascontiguousarray(branching, dtype=np.int64)
    n_leaves = int(np.prod(branching))
    result = _output(out, (X.shape[0], n_leaves), X.dtype)
    _row_wise(_tree_log_gate_rows, n_leaves, X, node_w, node_b, branching, result)
    return _deliver(result, out)


def gaussian_log_density(X, Y, coef, intercept, variance, out=None):
    """log N(y_i; x_i w_k + c_k, diag(variance_k)), summed over targets: (n, K)."""
    X = _rows(X, X.dtype)
    Y = _rows(Y, X.dtype)
    params = _gaussian_params(coef, intercept, variance)
    result = _output(out, (X.shape[0], coef.shape[0]), X.dtype)
    _row_wise(_gaussian_log_density_rows, coef.shape[0],
              X, Y, *params, result)
    return _deliver(result, out)


def normalize_log_joint(log_joint, resp_out=None):
    """Responsibilities from log g + log p: ``(log_norm (n,), resp (n, K))``.

    A row whose joint is -inf for every expert gets zero responsibilities.
    ``resp_out`` may be ``log_joint`` itself.
    """
    dtype = log_joint.dtype
    log_joint = _rows(log_joint, dtype)
    resp = _output(resp_out, log_joint.shape, dtype)
    log_norm = np.empty(log_joint.shape[0], dtype=dtype)
    _row_wise(_normalize_rows, log_joint.shape[1], log_joint, log_norm,
              resp)
    return log_norm, _deliver(resp, resp_out)


def gaussian_e_step(X, Y, gate_coef, gate_intercept, coef, intercept, variance, resp,
                    log_gate_out=None):
    """Whole fused E-step for Gaussian experts.

    Writes the responsibilities into ``resp`` (n, K) and returns the
    per-sample log-likelihood log p(y_i | x_i), shape (n,), in float64 for
    float32 input too: rounded to float32, its noise (1e-8 relative) would
    swamp EM's last gains and make the objective appear to decrease. With
    ``log_gate_out`` (n, K), the log gate is written there in the same pass
    (bit-identical to :func:`log_gate`).
    """
    return _fused_e_step(_gaussian_e_step_rows, X, Y, gate_coef, gate_intercept,
                         _gaussian_params(coef, intercept, variance), resp, log_gate_out)


def gaussian_predict(X, coef, intercept):
    """Each expert's mean: (n, K, t)."""
    X = _rows(X, X.dtype)
    n_experts, n_targets, _ = coef.shape
    weights, bias = _stacked_linear_params(coef, intercept)
    out = np.empty((X.shape[0], n_experts * n_targets), dtype=X.dtype)
    _row_wise(_linear_rows, n_experts, X, weights, bias, out)
    return out.reshape(X.shape[0], n_experts, n_targets)


def weighted_moments(X, Y, W):
    """Sufficient statistics of a weighted least-squares fit per expert.

    Returns ``(gram, x_sum, xy, y_sum, w_sum)`` with shapes (K, d, d),
    (K, d), (K, d, t), (K, t), (K,): X^T diag(W_k) X, X^T W_k,
    X^T diag(W_k) Y, Y^T W_k and sum W_k (one pass over the rows).
    """
    if X.shape[1] + 1 >= _BLAS_MIN_FEATURES_MOMENTS:
        return _weighted_moments_blas(X, Y, W)
    X = _rows(X, X.dtype)
    Y = _rows(Y, X.dtype)
    W = _rows(W, X.dtype)
    d, n_targets, n_experts = X.shape[1], Y.shape[1], W.shape[1]
    n_tri = (d + 1) * (d + 2) // 2
    (acc,) = _reduce(_moments_rows, n_experts, (X, Y, W), (),
                     [(n_experts, n_tri + (d + 1) * n_targets)])
    tri = acc[:, _triangle_index(d + 1)]  # (K, d+1, d+1), symmetric
    cross = acc[:, n_tri:].reshape(n_experts, d + 1, n_targets)
    return (
        tri[:, :d, :d].copy(),
        tri[:, d, :d].copy(),
        cross[:, :d, :].copy(),
        cross[:, d, :].copy(),
        tri[:, d, d].copy(),
    )


def gaussian_weighted_rss(X, Y, W, coef, intercept):
    """Weighted residual sum of squares per expert and target: (K, t)."""
    X = _rows(X, X.dtype)
    Y = _rows(Y, X.dtype)
    W = _rows(W, X.dtype)
    n_experts, n_targets, _ = coef.shape
    (rss,) = _reduce(_weighted_rss_rows, n_experts, (X, Y, W),
                     _stacked_linear_params(coef, intercept), [(n_experts, n_targets)])
    return rss


def gate_gradient_hessian(X, W, log_g):
    """Gradient and Hessian of sum_ik W_ik log g_ik in the gate parameters.

    Parameters are ordered (K, d + 1): the d weights then the intercept of
    each expert. Returns the gradient (K, d + 1) and the Hessian
    (K, d + 1, K, d + 1) (negative semi-definite), from one pass over the
    rows.
    """
    if X.shape[1] + 1 >= _BLAS_MIN_FEATURES_GATE:
        return _gate_gradient_hessian_blas(X, W, log_g)
    X = _rows(X, X.dtype)
    W = _rows(W, X.dtype)
    log_g = _rows(log_g, X.dtype)
    d, n_experts = X.shape[1], W.shape[1]
    n_pairs = n_experts * (n_experts + 1) // 2
    n_tri = (d + 1) * (d + 2) // 2
    grad, curv = _reduce(_gate_gradient_hessian_rows, n_experts, (X, W, log_g), (),
                         [(n_experts, d + 1), (n_pairs, n_tri)])
    # Unfold the distinct entries: hess[k, a, l, b] = -curv[pair(k, l), pair(a, b)].
    pair = _triangle_index(n_experts)
    feature_pair = _triangle_index(d + 1)
    hess = -curv[pair[:, None, :, None], feature_pair[None, :, None, :]]
    return grad, hess


def logistic_log_density(X, Y, coef, intercept, out=None):
    """log p_k(y_i | x_i) of multinomial logistic experts: (n, K).

    ``coef`` (K, C, d), ``intercept`` (K, C), ``Y`` (n, C) one-hot classes:
    sum_c Y_ic log softmax_c(x_i . w_kc + b_kc).
    """
    X = _rows(X, X.dtype)
    Y = _rows(Y, X.dtype)
    class_w, class_b = _stacked_linear_params(coef, intercept)
    result = _output(out, (X.shape[0], coef.shape[0]), X.dtype)
    _row_wise(_logistic_log_density_rows, coef.shape[0],
              X, Y, class_w, class_b, result)
    return _deliver(result, out)


def logistic_e_step(X, Y, gate_coef, gate_intercept, coef, intercept, resp, log_gate_out=None):
    """Whole fused E-step for logistic experts: fills ``resp`` (n, K), returns log p(y_i | x_i).

    The log-likelihood (n,) is float64 whatever X's dtype; ``log_gate_out``
    as in :func:`gaussian_e_step`.
    """
    return _fused_e_step(_logistic_e_step_rows, X, Y, gate_coef, gate_intercept,
                         _stacked_linear_params(coef, intercept), resp, log_gate_out)


def logistic_predict_log_proba(X, coef, intercept):
    """Each expert's class log-probabilities: (n, K, C)."""
    X = _rows(X, X.dtype)
    n_experts, n_classes, _ = coef.shape
    weights, bias = _stacked_linear_params(coef, intercept)
    out = np.empty((X.shape[0], n_experts * n_classes), dtype=X.dtype)
    _row_wise(_log_softmax_groups_rows, n_experts,
              X, weights, bias, n_classes, out)
    return out.reshape(X.shape[0], n_experts, n_classes)


def top_k_log_gate(log_g, k, out=None):
    """Log gate restricted to each row's ``k`` largest entries, renormalised: (n, K).

    Entries outside the top ``k`` are -inf; ties go to the lower expert
    index. ``k=1`` is the hard gate.
    """
    dtype = log_g.dtype
    log_g = _rows(log_g, dtype)
    result = _output(out, log_g.shape, dtype)
    if k < 1:
        raise ValueError(f"top_k must be at least 1, got {k}.")
    # rows are copied before being written, so ``out`` may be ``log_g`` itself
    k = min(int(k), log_g.shape[1])
    _row_wise(_top_k_rows, log_g.shape[1], log_g, k, result)
    return _deliver(result, out)


def classify_log_joint(log_joint, resp_out=None):
    """Classification E-step: ``(best (n,), resp (n, K))``, one-hot at each row's argmax.

    Ties go to the lower index; a row that is -inf everywhere gets zero
    responsibilities.
    """
    dtype = log_joint.dtype
    log_joint = _rows(log_joint, dtype)
    resp = _output(resp_out, log_joint.shape, dtype)
    best = np.empty(log_joint.shape[0], dtype=dtype)
    if resp is log_joint:  # argmax needs the whole row first: work on a copy
        log_joint = log_joint.copy()
    _row_wise(_classify_rows, log_joint.shape[1], log_joint, best, resp)
    return best, _deliver(resp, resp_out)


def gaussian_residual_moments(X, Y, W, coef, intercept):
    """Weighted residual moments behind the gradient of Gaussian experts.

    With r_ikt = y_it - (x_i w_kt + c_kt), returns ``(xr, r_sum, rss)`` of
    shapes (K, t, d), (K, t), (K, t): sum_i W_ik r_ikt x_i, sum_i W_ik r_ikt
    and sum_i W_ik r_ikt^2.
    """
    X = _rows(X, X.dtype)
    Y = _rows(Y, X.dtype)
    W = _rows(W, X.dtype)
    n_experts, n_targets, d = coef.shape
    (acc,) = _reduce(_residual_moments_rows, n_experts, (X, Y, W),
                     _stacked_linear_params(coef, intercept),
                     [(n_experts * n_targets, d + 2)])
    acc = acc.reshape(n_experts, n_targets, d + 2)
    return acc[:, :, :d].copy(), acc[:, :, d].copy(), acc[:, :, d + 1].copy()


def logistic_gradient(X, Y, W, coef, intercept):
    """Gradient of sum_ik W_ik sum_c Y_ic log softmax_c(x_i w_kc + b_kc).

    Returns the gradient in the weights (K, C, d) and in the intercepts
    (K, C): sum_i W_ik (Y_ic - p_ikc s_i) x_i with s_i = sum_c Y_ic.
    """
    X = _rows(X, X.dtype)
    Y = _rows(Y, X.dtype)
    W = _rows(W, X.dtype)
    n_experts, n_classes, d = coef.shape
    (acc,) = _reduce(_logistic_gradient_rows, n_experts, (X, Y, W),
                     _stacked_linear_params(coef, intercept),
                     [(n_experts * n_classes, d + 1)])
    acc = acc.reshape(n_experts, n_classes, d + 1)
    return acc[:, :, :d].copy(), acc[:, :, d].copy()


def gaussian_pass(X, Y, sample_weight, gate_coef, gate_intercept, coef, intercept, variance,
                  hessian_stride):
    """One-pass EM statistics of a softmax gate over Gaussian experts, from one sweep.

    With the posterior h at the given parameters, W = s h (s: ``sample_weight``),
    s'_i = sum_k W_ik and r_ikt = y_it - (x_i w_kt + c_kt), returns float64
    ``(log_likelihood, gram, x_sum, w_sum, xr, r_sum, rss, gate_gradient,
    gate_hessian, hessian_weight)``: sum_i s_i log p(y_i | x_i); sums of
    W_ik (x x^T, x, 1) (K, d, d), (K, d), (K,); sums of W_ik r_ikt (x, 1,
    r_ikt) (K, t, d), (K, t), (K, t); the gate's gradient sum_i (W_ik - g_ik
    s'_i) (x_i, 1) (K, d + 1); its Hessian as :func:`gate_gradient_hessian`'s
    (K, d + 1, K, d + 1) and sum_i s'_i, both over the rows i with
    i % hessian_stride == 0. What ``MixtureModel.pass_statistics`` composes
    from :func:`gaussian_e_step`, :func:`weighted_moments`,
    :func:`gaussian_residual_moments`, :func:`logistic_gradient` and
    :func:`gate_gradient_hessian`.
    """
    X = _rows(X, X.dtype)
    Y = _rows(Y, X.dtype)
    S = _rows(sample_weight, np.float64)
    n_experts, n_targets, d = coef.shape
    stride = int(hessian_stride)
    if stride < 1:
        raise ValueError(f"hessian_stride must be at least 1, got {hessian_stride}.")
    mean_w, mean_b, half_precision, log_const = _gaussian_params(coef, intercept, variance)
    n_means = n_experts * n_targets
    n_tri = (d + 1) * (d + 2) // 2
    n_pairs = n_experts * (n_experts + 1) // 2
    log_lik, moments, linear, rss, curv, hessian_weight = _reduce(
        _gaussian_pass_rows, n_experts, (X, Y, S),
        (_f64(gate_coef), _f64(gate_intercept), mean_w, mean_b, half_precision, log_const,
         stride),
        [(), (n_experts, n_tri), (n_experts + n_means, d + 1), (n_means, 1), (n_pairs, n_tri),
         ()])
    tri = moments[:, _triangle_index(d + 1)]  # (K, d+1, d+1), symmetric
    moving = linear[n_experts:].reshape(n_experts, n_targets, d + 1)
    pair = _triangle_index(n_experts)
    hessian = -curv[pair[:, None, :, None], _triangle_index(d + 1)[None, :, None, :]]
    return (float(log_lik), tri[:, :d, :d].copy(), tri[:, d, :d].copy(), tri[:, d, d].copy(),
            moving[:, :, :d].copy(), moving[:, :, d].copy(), rss.reshape(n_experts, n_targets),
            linear[:n_experts].copy(), hessian, float(hessian_weight))


def _poisson_params(coef, intercept):
    mean_w, mean_b = _stacked_linear_params(coef, intercept)
    return mean_w, mean_b, _LOG_FACTORIAL


def poisson_log_density(X, Y, coef, intercept, out=None):
    """log Poisson(y_i; exp(x_i w_k + c_k)), summed over targets: (n, K)."""
    X = _rows(X, X.dtype)
    Y = _rows(Y, X.dtype)
    result = _output(out, (X.shape[0], coef.shape[0]), X.dtype)
    _row_wise(_poisson_log_density_rows, coef.shape[0], X, Y, *_poisson_params(coef, intercept),
              result)
    return _deliver(result, out)


def poisson_e_step(X, Y, gate_coef, gate_intercept, coef, intercept, resp, log_gate_out=None):
    """Whole fused E-step for Poisson experts: fills ``resp`` (n, K), returns log p(y_i | x_i).

    The log-likelihood (n,) is float64 whatever X's dtype; ``log_gate_out``
    as in :func:`gaussian_e_step`.
    """
    return _fused_e_step(_poisson_e_step_rows, X, Y, gate_coef, gate_intercept,
                         _poisson_params(coef, intercept), resp, log_gate_out)


def poisson_newton_moments(X, Y, W, coef, intercept, hessian=True):
    """Value, gradient and Hessian of each Poisson expert's weighted data term.

    ``(value (K, t), gradient (K, t, d + 1), hessian (K, t, d + 1, d + 1) or
    None)``, float64, from one pass over the rows; see the reference.
    """
    X = _rows(X, X.dtype)
    Y = _rows(Y, X.dtype)
    W = _rows(W, X.dtype)
    n_experts, n_targets, d = coef.shape
    n_means = n_experts * n_targets
    n_tri = (d + 1) * (d + 2) // 2
    mean_w, mean_b = _stacked_linear_params(coef, intercept)
    value, grad, curv = _reduce(_poisson_moments_rows, n_experts, (X, Y, W),
                                (mean_w, mean_b, bool(hessian)),
                                [(n_means,), (n_means, d + 1), (n_means, n_tri if hessian else 1)])
    hess = None
    if hessian:
        hess = curv[:, _triangle_index(d + 1)].reshape(n_experts, n_targets, d + 1, d + 1)
    return (value.reshape(n_experts, n_targets), grad.reshape(n_experts, n_targets, d + 1),
            hess)


def poisson_pass(X, Y, sample_weight, gate_coef, gate_intercept, coef, intercept,
                 hessian_stride):
    """One-pass EM statistics of a softmax gate over Poisson experts, from one sweep.

    Returns float64 ``(log_likelihood, value, gradient, hessian, w_sum,
    gate_gradient, gate_hessian, hessian_weight)``: sum_i s_i log p(y_i |
    x_i); :func:`poisson_newton_moments` at W = s h ((K, t), (K, t, d + 1),
    (K, t, d + 1, d + 1)); sum_i W_ik (K,); and the gate's gradient, Hessian
    and Hessian weight as :func:`gaussian_pass` returns them. What
    ``MixtureModel.pass_statistics`` composes from :func:`poisson_e_step`,
    :func:`poisson_newton_moments` and :func:`gate_gradient_hessian`.
    """
    X = _rows(X, X.dtype)
    Y = _rows(Y, X.dtype)
    S = _rows(sample_weight, np.float64)
    n_experts, n_targets, d = coef.shape
    stride = int(hessian_stride)
    if stride < 1:
        raise ValueError(f"hessian_stride must be at least 1, got {hessian_stride}.")
    mean_w, mean_b, table = _poisson_params(coef, intercept)
    n_means = n_experts * n_targets
    n_tri = (d + 1) * (d + 2) // 2
    n_pairs = n_experts * (n_experts + 1) // 2
    log_lik, value, linear, hess, w_sum, curv, hessian_weight = _reduce(
        _poisson_pass_rows, n_experts, (X, Y, S),
        (_f64(gate_coef), _f64(gate_intercept), mean_w, mean_b, table, stride),
        [(), (n_means,), (n_experts + n_means, d + 1), (n_means, n_tri), (n_experts,),
         (n_pairs, n_tri), ()])
    pair = _triangle_index(n_experts)
    gate_hessian = -curv[pair[:, None, :, None], _triangle_index(d + 1)[None, :, None, :]]
    return (float(log_lik), value.reshape(n_experts, n_targets),
            linear[n_experts:].reshape(n_experts, n_targets, d + 1),
            hess[:, _triangle_index(d + 1)].reshape(n_experts, n_targets, d + 1, d + 1),
            w_sum, linear[:n_experts].copy(), gate_hessian, float(hessian_weight))


def _student_t_params(coef, intercept, variance, dof):
    """Row-kernel parameters: the stacked linear map, 1 / (2 sigma2), 2 / nu,
    (nu + p) / 2 and the log normaliser per expert."""
    mean_w, mean_b = _stacked_linear_params(coef, intercept)
    variance, dof = _f64(variance), _f64(dof)
    half_precision = np.ravel(0.5 / variance)
    half_power = 0.5 * (dof + variance.shape[1])
    return (mean_w, mean_b, half_precision, 2.0 / dof, half_power,
            student_t_log_constant(variance, dof))


def student_t_log_density(X, Y, coef, intercept, variance, dof, out=None):
    """log t_p(y_i; x_i w_k + c_k, diag(variance_k), dof_k): (n, K)."""
    X = _rows(X, X.dtype)
    Y = _rows(Y, X.dtype)
    result = _output(out, (X.shape[0], coef.shape[0]), X.dtype)
    _row_wise(_student_t_log_density_rows, coef.shape[0], X, Y,
              *_student_t_params(coef, intercept, variance, dof), result)
    return _deliver(result, out)


def student_t_e_step(X, Y, gate_coef, gate_intercept, coef, intercept, variance, dof, resp,
                     log_gate_out=None):
    """Whole fused E-step for Student-t experts: fills ``resp`` (n, K), returns log p(y_i | x_i).

    The log-likelihood (n,) is float64 whatever X's dtype; ``log_gate_out``
    as in :func:`gaussian_e_step`.
    """
    return _fused_e_step(_student_t_e_step_rows, X, Y, gate_coef, gate_intercept,
                         _student_t_params(coef, intercept, variance, dof), resp, log_gate_out)


def student_t_weights(X, Y, W, coef, intercept, variance, dof):
    """The ECM's latent weights applied to ``W``, and the nu step's sums, in one pass:
    ``(weighted (n, K) in X's dtype, log_weight_sum (K,), w_sum (K,))`` as the reference."""
    X = _rows(X, X.dtype)
    Y = _rows(Y, X.dtype)
    W = _rows(W, X.dtype)
    n_experts = coef.shape[0]
    weighted = np.empty((X.shape[0], n_experts), dtype=X.dtype)
    mean_w, mean_b, half_precision, _, half_power, _ = _student_t_params(
        coef, intercept, variance, dof)
    log_sum, w_sum = _reduce(_student_t_weights_rows, n_experts, (X, Y, W),
                             (mean_w, mean_b, half_precision, _f64(dof), 2.0 * half_power,
                              weighted),
                             [(n_experts,), (n_experts,)])
    return weighted, log_sum, w_sum


def student_t_log1p_sums(X, Y, W, coef, intercept, variance, dofs):
    """sum_i W_ik log1p(delta_ik / nu_kj) at candidate degrees of freedom ``dofs`` (K, J):
    float64 (K, J), as the reference."""
    X = _rows(X, X.dtype)
    Y = _rows(Y, X.dtype)
    W = _rows(W, X.dtype)
    dofs = _f64(dofs)
    mean_w, mean_b, half_precision, _, _, _ = _student_t_params(coef, intercept, variance,
                                                                dofs[:, 0])
    return _reduce(_student_t_log1p_sums_rows, coef.shape[0], (X, Y, W),
                   (mean_w, mean_b, half_precision, 2.0 / dofs), [dofs.shape])[0]


def student_t_pass(X, Y, sample_weight, gate_coef, gate_intercept, coef, intercept, variance,
                   dof, hessian_stride, dofs):
    """One-pass EM statistics of a softmax gate over Student-t experts, from one sweep.

    As :func:`gaussian_pass`, with the experts' sums at the weights W u (u the
    ECM's latent weights at the given parameters, see
    :func:`student_t_weights`): returns float64 ``(log_likelihood, gram,
    x_sum, wu_sum, xr, r_sum, rss, gate_gradient, gate_hessian,
    hessian_weight, log_weight_sum, w_sum, log1p_sums)``, log_weight_sum and
    w_sum sum_i W_ik (log u_ik - u_ik) and sum_i W_ik (K,), log1p_sums (K, J)
    :func:`student_t_log1p_sums` at the candidates ``dofs`` (K, J). What
    ``MixtureModel.pass_statistics`` composes from :func:`student_t_e_step`,
    :func:`student_t_weights`, :func:`weighted_moments`,
    :func:`gaussian_residual_moments`, :func:`student_t_log1p_sums` and
    :func:`gate_gradient_hessian`.
    """
    X = _rows(X, X.dtype)
    Y = _rows(Y, X.dtype)
    S = _rows(sample_weight, np.float64)
    n_experts, n_targets, d = coef.shape
    stride = int(hessian_stride)
    if stride < 1:
        raise ValueError(f"hessian_stride must be at least 1, got {hessian_stride}.")
    params = _student_t_params(coef, intercept, variance, dof)
    n_means = n_experts * n_targets
    n_tri = (d + 1) * (d + 2) // 2
    n_pairs = n_experts * (n_experts + 1) // 2
    dofs = _f64(dofs)
    log_lik, moments, linear, rss, curv, hessian_weight, log_sum, w_sum, dof_sums = _reduce(
        _student_t_pass_rows, n_experts, (X, Y, S),
        (_f64(gate_coef), _f64(gate_intercept), *params, 2.0 / dofs, stride),
        [(), (n_experts, n_tri), (n_experts + n_means, d + 1), (n_means, 1), (n_pairs, n_tri),
         (), (n_experts,), (n_experts,), dofs.shape])
    tri = moments[:, _triangle_index(d + 1)]
    moving = linear[n_experts:].reshape(n_experts, n_targets, d + 1)
    pair = _triangle_index(n_experts)
    hessian = -curv[pair[:, None, :, None], _triangle_index(d + 1)[None, :, None, :]]
    return (float(log_lik), tri[:, :d, :d].copy(), tri[:, d, :d].copy(), tri[:, d, d].copy(),
            moving[:, :, :d].copy(), moving[:, :, d].copy(), rss.reshape(n_experts, n_targets),
            linear[:n_experts].copy(), hessian, float(hessian_weight), log_sum, w_sum,
            dof_sums)


def logistic_pass(X, Y, sample_weight, gate_coef, gate_intercept, coef, intercept,
                  hessian_stride):
    """One-pass EM statistics of a softmax gate over multinomial logistic experts.

    With the posterior h at the given parameters, W = s h (s:
    ``sample_weight``), T_k = W[:, k] Y and p_k expert k's class
    probabilities, returns float64 ``(log_likelihood, value, gradient,
    hessian, w_sum, expert_weight, gate_gradient, gate_hessian,
    hessian_weight)``: sum_i s_i log p(y_i | x_i); sum_ic T_kic log p_kic
    (K,); the gradient (K, C, d + 1) and Hessian (K, C, d + 1, C, d + 1) of
    that sum in each expert's class weights and intercepts, as
    :func:`gate_gradient_hessian` gives them for soft targets T_k, the
    Hessian over the rows i % hessian_stride == 0 only; sum_i W_ik (K,) over
    all rows and over those rows; the gate's gradient, Hessian and Hessian
    weight as :func:`gaussian_pass` returns them. What
    ``LogisticExperts.statistics`` and ``SoftmaxGate.statistics`` compose
    from :func:`logistic_e_step`, :func:`log_gate`, :func:`logistic_gradient`
    and :func:`gate_gradient_hessian`.
    """
    X = _rows(X, X.dtype)
    Y = _rows(Y, X.dtype)
    S = _rows(sample_weight, np.float64)
    n_experts, n_classes, d = coef.shape
    stride = int(hessian_stride)
    if stride < 1:
        raise ValueError(f"hessian_stride must be at least 1, got {hessian_stride}.")
    class_w, class_b = _stacked_linear_params(coef, intercept)
    n_logits = n_experts * n_classes
    n_tri = (d + 1) * (d + 2) // 2
    n_pairs = n_experts * (n_experts + 1) // 2
    class_pairs = n_classes * (n_classes + 1) // 2
    log_lik, value, linear, w_sum, expert_weight, curv, hessian_weight = _reduce(
        _logistic_pass_rows, n_experts, (X, Y, S),
        (_f64(gate_coef), _f64(gate_intercept), class_w, class_b, stride),
        [(), (n_experts,), (n_experts + n_logits, d + 1), (n_experts,), (n_experts,),
         (n_pairs + n_experts * class_pairs, n_tri), ()])
    feature_pair = _triangle_index(d + 1)[None, :, None, :]
    gate_hessian = -curv[:n_pairs][_triangle_index(n_experts)[:, None, :, None], feature_pair]
    expert_curv = curv[n_pairs:].reshape(n_experts, class_pairs, n_tri)
    hessian = -expert_curv[:, _triangle_index(n_classes)[:, None, :, None], feature_pair]
    return (float(log_lik), value, linear[n_experts:].reshape(n_experts, n_classes, d + 1),
            hessian, w_sum, expert_weight, linear[:n_experts].copy(), gate_hessian,
            float(hessian_weight))
