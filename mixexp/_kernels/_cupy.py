"""CuPy GPU kernels: the functions of ``_numpy`` for arrays on a CUDA device.

Same names, signatures, shapes and semantics as :mod:`mixexp._kernels._numpy`
(the oracle they are tested against). Importing this module imports CuPy,
so ``get_kernels("cupy")`` raises ImportError where CuPy is missing.

Data contract:

* per-sample arrays (``X``, ``Y``, ``W``, ``resp``, ``log_g``,
  ``log_joint`` and every output of shape (n, ...)) live on the device as
  CuPy arrays. Host arrays are accepted and copied to the device, at the
  cost of a transfer per call. Outputs keep the data's dtype (float32 stays
  float32, anything else becomes float64), except the E-steps'
  log-likelihood, always float64 as in ``_numba``: rounded to float32 its
  noise would swamp EM's last gains;
* parameter arrays (``gate_coef``, ``gate_intercept``, ``coef``,
  ``intercept``, ``variance``) may be host NumPy arrays: they are tiny and
  are moved to the device inside each call (one transfer per call);
* reductions whose size does not depend on n (``weighted_moments``,
  ``gaussian_weighted_rss``, ``gate_gradient_hessian``,
  ``gaussian_residual_moments``, ``logistic_gradient``) return host NumPy
  arrays in float64: the M-step solves small systems on the host;
* ``out``/``resp``/``resp_out`` arguments are written in place. A
  C-contiguous device array of the right dtype is written by the kernel
  itself; anything else (including a host array) receives a copy.

How the work is done:

* the row-wise kernels (``log_gate``, ``gaussian_log_density``,
  ``logistic_log_density``, ``normalize_log_joint``, the E-steps,
  ``top_k_log_gate``, ``classify_log_joint``, and the optional
  ``tree_log_gate`` of hierarchical mixtures) are CUDA kernels with one
  thread per row (grid-stride loop). The E-step computes a row's K gate
  logits, the K expert log-densities, both log-normalisers and the
  responsibilities in per-thread scratch (registers and L1-cached local
  memory); the only (n, K) arrays it touches are ``resp`` and, when asked
  for, the log gate, each written once. A row of up to 64 features is
  copied once into per-thread storage before the 2K dot products that read
  it: on an H200 the E-step re-reading each row from global memory 2K
  times ran at 13-17% of the memory bandwidth (n=1e7, d=10, K=8);
  As in ``_numba``, per-row arithmetic is float64 whatever the data's
  dtype (cheap on data-centre GPUs; on consumer GPUs, whose float64 rate
  is 1/32 to 1/64, the float32 kernels become compute-bound);
* the kernels are compiled by NVRTC on first use, once per data dtype,
  size of their per-row scratch (the next power of two >= K, at least 8)
  and size of the row copy (the next power of two >= d, at least 8; none
  above 64 features), then cached by CuPy;
* predictions and the M-step reductions are the generic code of
  :mod:`mixexp._kernels._array_api` on CuPy arrays: a prediction is one
  cuBLAS product; a reduction runs over blocks of rows cast to float64,
  with one cuBLAS product per block for all experts at once.
"""

from functools import lru_cache

import cupy
import numpy as np

from ._array_api import LOG_2PI, ArrayKernels

# Threads per block of the row-wise kernels, and the most blocks launched:
# a grid-stride loop covers the rest (65535 blocks are many waves on any GPU).
_THREADS = 128
_MAX_BLOCKS = 65535

# One thread per row. Prepended by _compiled: ``typedef float T;`` or
# ``typedef double T;`` (the storage type of per-sample arrays) and
# ``#define MAX_K ...`` (the capacity of the per-row scratch, >= K).
# Parameters arrive as contiguous float64 arrays; sizes as long long (n) and
# int. Only plain C++ with exp and log: no headers, no shared memory.
_SOURCE = r"""
#define NEG_INF (-__longlong_as_double(0x7ff0000000000000LL))
#define FOR_EACH_ROW(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)

__device__ __forceinline__ bool is_finite(double v) { return v - v == 0.0; }

/* A row's features where the kernels read them d times per expert:
   copied once into per-thread storage (MAX_D >= d; local memory is
   interleaved across threads, so a warp's reads of feature j coalesce,
   where 2K strided re-reads of the row from global memory did not), or,
   for rows wider than the cache (MAX_D == 0), read in place. */
#if MAX_D > 0
#define ROW(name, x, d) double name[MAX_D]; \
    for (int j_ = 0; j_ < (d); ++j_) name[j_] = (double)(x)[j_];
#else
#define ROW(name, x, d) const T* name = (x);
#endif

/* bias + sum_j w[j] x[j], summed in feature order. */
template <typename S>
__device__ __forceinline__ double linear(const S* x, const double* w, double bias, int d) {
    double acc = bias;
    for (int j = 0; j < d; ++j) acc += w[j] * (double)x[j];
    return acc;
}

/* log sum_k exp(z[k]). The shift is the maximum, or 0 where that is not
   finite: an all -inf row gives log 0 = -inf rather than NaN (the
   reference's convention). Leaves the shift and sum_k exp(z[k] - shift). */
__device__ double log_sum_exp(const double* z, int count, double* shift_out, double* total_out) {
    double shift = z[0];
    for (int k = 1; k < count; ++k) shift = z[k] > shift ? z[k] : shift;
    if (!is_finite(shift)) shift = 0.0;
    double total = 0.0;
    for (int k = 0; k < count; ++k) total += exp(z[k] - shift);
    *shift_out = shift;
    *total_out = total;
    return shift + log(total);
}

/* resp[k] = softmax(z)[k], zero for a row impossible under every expert;
   returns the log-normaliser. */
__device__ double write_posterior(const double* z, int K, T* resp) {
    double shift, total;
    double norm = log_sum_exp(z, K, &shift, &total);
    double inverse = total > 0.0 ? 1.0 / total : 0.0;
    for (int k = 0; k < K; ++k) resp[k] = (T)(exp(z[k] - shift) * inverse);
    return norm;
}

/* Gate logits of a row into z[0..K); returns their log-normaliser. */
template <typename S>
__device__ double gate_logits(const S* x, const double* gate_w, const double* gate_b,
                              int d, int K, double* z) {
    double shift, total;
    for (int k = 0; k < K; ++k) z[k] = linear(x, gate_w + k * d, gate_b[k], d);
    return log_sum_exp(z, K, &shift, &total);
}

/* log N(y; mean_k(x), diag(variance_k)) summed over the t targets. */
template <typename S>
__device__ double gaussian_term(const S* x, const T* y, int k, const double* mean_w,
                                const double* mean_b, const double* half_precision,
                                const double* log_const, int d, int t) {
    double quad = 0.0;
    for (int s = 0; s < t; ++s) {
        int m = k * t + s;
        double resid = (double)y[s] - linear(x, mean_w + m * d, mean_b[m], d);
        quad += resid * resid * half_precision[m];
    }
    return log_const[k] - quad;
}

/* sum_c y_c log softmax_c(x w_kc + b_kc) of expert k. */
template <typename S>
__device__ double logistic_term(const S* x, const T* y, int k, const double* class_w,
                                const double* class_b, int d, int C) {
    const double* w = class_w + k * C * d;
    const double* b = class_b + k * C;
    // online log-sum-exp over the classes: no per-class scratch
    double shift = NEG_INF, total = 0.0;
    for (int c = 0; c < C; ++c) {
        double v = linear(x, w + c * d, b[c], d);
        if (v > shift) {
            total = total * exp(shift - v) + 1.0;
            shift = v;
        } else if (v != NEG_INF) {
            total += exp(v - shift);
        }
    }
    double norm = shift + log(total);
    double acc = 0.0;
    for (int c = 0; c < C; ++c) {
        double yc = (double)y[c];
        if (yc != 0.0) acc += yc * (linear(x, w + c * d, b[c], d) - norm);
    }
    return acc;
}

/* sum_s y_s eta_ks - exp(eta_ks) of Poisson expert k, eta capped at 700 (as
   the reference); the row's log(y!) is subtracted by the caller, once. */
template <typename S>
__device__ double poisson_term(const S* x, const T* y, int k, const double* mean_w,
                               const double* mean_b, int d, int t) {
    double acc = 0.0;
    for (int s = 0; s < t; ++s) {
        int m = k * t + s;
        double eta = linear(x, mean_w + m * d, mean_b[m], d);
        eta = eta > 700.0 ? 700.0 : eta;
        acc += (double)y[s] * eta - exp(eta);
    }
    return acc;
}

/* sum_s log(y_s!) of a row. */
__device__ double log_factorial(const T* y, int t) {
    double acc = 0.0;
    for (int s = 0; s < t; ++s) acc += lgamma((double)y[s] + 1.0);
    return acc;
}

extern "C" __global__ void log_gate(const T* __restrict__ X, const double* __restrict__ gate_w,
                                    const double* __restrict__ gate_b, T* __restrict__ out,
                                    long long n, int d, int K) {
    double z[MAX_K];
    FOR_EACH_ROW(i, n) {
        ROW(x, X + i * d, d)
        double norm = gate_logits(x, gate_w, gate_b, d, K, z);
        for (int k = 0; k < K; ++k) out[i * K + k] = (T)(z[k] - norm);
    }
}

/* Leaves' log priors of a uniform tree of softmax gates (see
   _numba.tree_log_gate): node_w (M, d) and node_b (M,) stack every child's
   logit of every node, level by level; branching (depth,) the children per
   node of each level (at most MAX_K); out (n, K) in double, leaves depth
   first. Each node's log-softmax is added to the leaves below each child. */
extern "C" __global__ void tree_log_gate(
        const T* __restrict__ X, const double* __restrict__ node_w,
        const double* __restrict__ node_b, const long long* __restrict__ branching,
        double* __restrict__ out, long long n, int d, int depth, int K) {
    double z[MAX_K];
    FOR_EACH_ROW(i, n) {
        ROW(x, X + i * d, d)
        double* leaf = out + i * K;
        for (int k = 0; k < K; ++k) leaf[k] = 0.0;
        int offset = 0, n_nodes = 1, below = K;
        for (int level = 0; level < depth; ++level) {
            int children = (int)branching[level];
            below /= children;
            for (int j = 0; j < n_nodes; ++j) {
                int first = offset + j * children;
                double norm = gate_logits(x, node_w + first * d, node_b + first, d, children, z);
                for (int c = 0; c < children; ++c) {
                    double value = z[c] - norm;
                    int start = (j * children + c) * below;
                    for (int k = start; k < start + below; ++k) leaf[k] += value;
                }
            }
            offset += n_nodes * children;
            n_nodes *= children;
        }
    }
}

extern "C" __global__ void gaussian_log_density(
        const T* __restrict__ X, const T* __restrict__ Y, const double* __restrict__ mean_w,
        const double* __restrict__ mean_b, const double* __restrict__ half_precision,
        const double* __restrict__ log_const, T* __restrict__ out, long long n, int d, int t,
        int K) {
    FOR_EACH_ROW(i, n) {
        ROW(x, X + i * d, d)
        for (int k = 0; k < K; ++k)
            out[i * K + k] = (T)gaussian_term(x, Y + i * t, k, mean_w, mean_b,
                                              half_precision, log_const, d, t);
    }
}

extern "C" __global__ void logistic_log_density(
        const T* __restrict__ X, const T* __restrict__ Y, const double* __restrict__ class_w,
        const double* __restrict__ class_b, T* __restrict__ out, long long n, int d, int C,
        int K) {
    FOR_EACH_ROW(i, n) {
        ROW(x, X + i * d, d)
        for (int k = 0; k < K; ++k)
            out[i * K + k] = (T)logistic_term(x, Y + i * C, k, class_w, class_b, d, C);
    }
}

extern "C" __global__ void poisson_log_density(
        const T* __restrict__ X, const T* __restrict__ Y, const double* __restrict__ mean_w,
        const double* __restrict__ mean_b, T* __restrict__ out, long long n, int d, int t,
        int K) {
    FOR_EACH_ROW(i, n) {
        ROW(x, X + i * d, d)
        double lf = log_factorial(Y + i * t, t);
        for (int k = 0; k < K; ++k)
            out[i * K + k] = (T)(poisson_term(x, Y + i * t, k, mean_w, mean_b, d, t) - lf);
    }
}

/* log_joint and resp may be the same array: a row is copied before it is written. */
extern "C" __global__ void normalize_log_joint(const T* log_joint, T* resp, T* log_norm,
                                               long long n, int K) {
    double z[MAX_K];
    FOR_EACH_ROW(i, n) {
        for (int k = 0; k < K; ++k) z[k] = (double)log_joint[i * K + k];
        log_norm[i] = (T)write_posterior(z, K, resp + i * K);
    }
}

/* The joint's log-sum-exp is taken on the raw gate logits and the gate's
   normaliser subtracted once at the end (equal to log g + log p up to
   rounding); the log-likelihood is written in double. With write_gate,
   log_gate (n, K) also receives the log gate (z - gate_norm, as the
   log_gate kernel computes it), in the same pass over the rows. */
extern "C" __global__ void gaussian_e_step(
        const T* __restrict__ X, const T* __restrict__ Y, const double* __restrict__ gate_w,
        const double* __restrict__ gate_b, const double* __restrict__ mean_w,
        const double* __restrict__ mean_b, const double* __restrict__ half_precision,
        const double* __restrict__ log_const, T* __restrict__ resp,
        double* __restrict__ log_norm, T* __restrict__ log_gate, int write_gate, long long n,
        int d, int t, int K) {
    double z[MAX_K];
    FOR_EACH_ROW(i, n) {
        ROW(x, X + i * d, d)
        double gate_norm = gate_logits(x, gate_w, gate_b, d, K, z);
        if (write_gate)
            for (int k = 0; k < K; ++k) log_gate[i * K + k] = (T)(z[k] - gate_norm);
        for (int k = 0; k < K; ++k)
            z[k] += gaussian_term(x, Y + i * t, k, mean_w, mean_b, half_precision, log_const,
                                  d, t);
        log_norm[i] = write_posterior(z, K, resp + i * K) - gate_norm;
    }
}

extern "C" __global__ void poisson_e_step(
        const T* __restrict__ X, const T* __restrict__ Y, const double* __restrict__ gate_w,
        const double* __restrict__ gate_b, const double* __restrict__ mean_w,
        const double* __restrict__ mean_b, T* __restrict__ resp,
        double* __restrict__ log_norm, T* __restrict__ log_gate, int write_gate, long long n,
        int d, int t, int K) {
    double z[MAX_K];
    FOR_EACH_ROW(i, n) {
        ROW(x, X + i * d, d)
        double gate_norm = gate_logits(x, gate_w, gate_b, d, K, z);
        if (write_gate)
            for (int k = 0; k < K; ++k) log_gate[i * K + k] = (T)(z[k] - gate_norm);
        double lf = log_factorial(Y + i * t, t);
        for (int k = 0; k < K; ++k)
            z[k] += poisson_term(x, Y + i * t, k, mean_w, mean_b, d, t) - lf;
        log_norm[i] = write_posterior(z, K, resp + i * K) - gate_norm;
    }
}

extern "C" __global__ void logistic_e_step(
        const T* __restrict__ X, const T* __restrict__ Y, const double* __restrict__ gate_w,
        const double* __restrict__ gate_b, const double* __restrict__ class_w,
        const double* __restrict__ class_b, T* __restrict__ resp,
        double* __restrict__ log_norm, T* __restrict__ log_gate, int write_gate, long long n,
        int d, int C, int K) {
    double z[MAX_K];
    FOR_EACH_ROW(i, n) {
        ROW(x, X + i * d, d)
        double gate_norm = gate_logits(x, gate_w, gate_b, d, K, z);
        if (write_gate)
            for (int k = 0; k < K; ++k) log_gate[i * K + k] = (T)(z[k] - gate_norm);
        for (int k = 0; k < K; ++k)
            z[k] += logistic_term(x, Y + i * C, k, class_w, class_b, d, C);
        log_norm[i] = write_posterior(z, K, resp + i * K) - gate_norm;
    }
}

/* Keep each row's k largest entries (k sweeps of "first maximum among the
   rest": ties go to the lower index), renormalised; the rest is -inf.
   log_g and out may be the same array. */
extern "C" __global__ void top_k_log_gate(const T* log_g, T* out, long long n, int K,
                                          int keep) {
    double row[MAX_K];
    bool kept[MAX_K];
    FOR_EACH_ROW(i, n) {
        for (int j = 0; j < K; ++j) {
            row[j] = (double)log_g[i * K + j];
            kept[j] = false;
        }
        double shift = 0.0;
        for (int r = 0; r < keep; ++r) {
            int best = -1;
            for (int j = 0; j < K; ++j)
                if (!kept[j] && (best < 0 || row[j] > row[best])) best = j;
            kept[best] = true;
            if (r == 0) shift = row[best];
        }
        if (!is_finite(shift)) shift = 0.0;
        double total = 0.0;
        for (int j = 0; j < K; ++j)
            if (kept[j]) total += exp(row[j] - shift);
        double norm = shift + log(total);
        for (int j = 0; j < K; ++j) out[i * K + j] = kept[j] ? (T)(row[j] - norm) : (T)NEG_INF;
    }
}

/* One-hot at the row's first maximum, zero everywhere for a row that is
   -inf everywhere. log_joint and resp may be the same array: the row is
   read whole before it is written. */
extern "C" __global__ void classify_log_joint(const T* log_joint, T* resp, T* best,
                                              long long n, int K) {
    FOR_EACH_ROW(i, n) {
        int winner = 0;
        T value = log_joint[i * K];
        for (int j = 1; j < K; ++j) {
            if (log_joint[i * K + j] > value) {
                value = log_joint[i * K + j];
                winner = j;
            }
        }
        best[i] = value;
        for (int j = 0; j < K; ++j) resp[i * K + j] = (T)0;
        if ((double)value != NEG_INF) resp[i * K + winner] = (T)1;
    }
}
"""

_C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


# Rows up to this wide are copied into per-thread storage before use (the
# ROW macro); wider rows are read in place.
_MAX_CACHED_FEATURES = 64


def _scratch_size(n_experts):
    """Capacity of the per-row scratch: the next power of two >= K, at least 8."""
    return max(8, 1 << (int(n_experts) - 1).bit_length())


def _row_cache_size(n_features):
    """Capacity of the per-thread row copy: the next power of two >= d, at least 8,
    or 0 (read the row in place) above ``_MAX_CACHED_FEATURES``."""
    if n_features > _MAX_CACHED_FEATURES:
        return 0
    # (kernels that read no row ask for 0 features: they share the module of
    # the narrow fits)
    return max(8, 1 << (int(n_features) - 1).bit_length())


@lru_cache(maxsize=None)
def _compiled(dtype, scratch, row_cache):
    """The CUDA module for data of ``dtype``, per-row scratch ``scratch`` and row copy
    ``row_cache`` (lazy compile)."""
    header = (f"typedef {_C_TYPES[dtype]} T;\n#define MAX_K {scratch}\n"
              f"#define MAX_D {row_cache}\n")
    return cupy.RawModule(code=header + _SOURCE)


class CupyKernels(ArrayKernels):
    """The kernel bundle on CuPy arrays: generic code plus fused CUDA kernels."""

    def __init__(self):
        # blocks of 256 MB temporaries (the generic 64 MB made a reduction
        # over 1e7 rows hundreds of blocks, each a dozen launches)
        super().__init__(cupy, block_elements=2**25)

    def _device_rows(self, a, dtype):
        """A per-sample array on the device, C-contiguous in ``dtype`` (copied only if needed)."""
        return cupy.ascontiguousarray(cupy.asarray(a, dtype=dtype))

    @staticmethod
    def _device_params(*arrays):
        """Small parameter arrays as contiguous float64 device arrays, in one transfer."""
        host = [np.asarray(cupy.asnumpy(a), dtype=np.float64) for a in arrays]
        flat = cupy.asarray(np.concatenate([h.ravel() for h in host]))
        views, start = [], 0
        for h in host:
            views.append(flat[start:start + h.size].reshape(h.shape))
            start += h.size
        return views

    @staticmethod
    def _gaussian_params(coef, intercept, variance):
        """Host float64 (K*t, d) means, (K*t,) biases, 1/(2 variance) and log constants (K,)."""
        n_experts, n_targets, d = coef.shape
        variance = np.asarray(cupy.asnumpy(variance), dtype=np.float64)
        return (
            np.reshape(cupy.asnumpy(coef), (n_experts * n_targets, d)),
            np.ravel(cupy.asnumpy(intercept)),
            np.ravel(0.5 / variance),
            -0.5 * np.sum(LOG_2PI + np.log(variance), axis=1),
        )

    def _launch(self, name, dtype, n_experts, n_rows, args, n_features=0):
        """Run kernel ``name`` on ``n_rows`` rows of ``n_features`` features, one thread per row."""
        if n_rows == 0:
            return
        module = _compiled(np.dtype(dtype), _scratch_size(n_experts),
                           _row_cache_size(n_features))
        kernel = module.get_function(name)
        blocks = min(-(-n_rows // _THREADS), _MAX_BLOCKS)
        kernel((blocks,), (_THREADS,), tuple(args))

    # -----------------------------------------------------------------------
    # Fused row-wise kernels (the rest is inherited from ArrayKernels).

    def log_gate(self, X, gate_coef, gate_intercept, out=None):
        """Log-softmax gate, log g_k(x_i): (n, K)."""
        dtype = self._data_dtype(X)
        X = self._device_rows(X, dtype)
        gate_w, gate_b = self._device_params(gate_coef, gate_intercept)
        (n, d), n_experts = X.shape, gate_b.shape[0]
        result = self._output(out, (n, n_experts), dtype)
        self._launch("log_gate", dtype, n_experts, n, (
            X, gate_w, gate_b, result, np.int64(n), np.int32(d), np.int32(n_experts)), d)
        return self._deliver(result, out)

    def tree_log_gate(self, X, node_coef, node_intercept, branching, out=None):
        """Log priors of the leaves of a uniform tree of softmax gates: (n, K), float64.

        As ``_numba.tree_log_gate`` (one pass over the rows): ``node_coef``
        (M, d) and ``node_intercept`` (M,) every child's logit of every node,
        level by level; ``branching`` (L,) the children per node of each level.
        """
        dtype = self._data_dtype(X)
        X = self._device_rows(X, dtype)
        node_w, node_b = self._device_params(node_coef, node_intercept)
        host_branching = np.asarray(branching, dtype=np.int64)
        n, d = X.shape
        n_leaves = int(np.prod(host_branching))
        result = self._output(out, (n, n_leaves), np.dtype(np.float64))
        # the per-row scratch holds one node's children at a time
        self._launch("tree_log_gate", dtype, int(host_branching.max()), n, (
            X, node_w, node_b, cupy.asarray(host_branching), result, np.int64(n),
            np.int32(d), np.int32(host_branching.size), np.int32(n_leaves)), d)
        return self._deliver(result, out)

    def gaussian_log_density(self, X, Y, coef, intercept, variance, out=None):
        """log N(y_i; x_i w_k + c_k, diag(variance_k)), summed over targets: (n, K)."""
        dtype = self._data_dtype(X)
        X, Y = self._device_rows(X, dtype), self._device_rows(Y, dtype)
        params = self._device_params(*self._gaussian_params(coef, intercept, variance))
        (n, d), (n_experts, n_targets) = X.shape, coef.shape[:2]
        result = self._output(out, (n, n_experts), dtype)
        self._launch("gaussian_log_density", dtype, n_experts, n, (
            X, Y, *params, result, np.int64(n), np.int32(d), np.int32(n_targets),
            np.int32(n_experts)), d)
        return self._deliver(result, out)

    def logistic_log_density(self, X, Y, coef, intercept, out=None):
        """log p_k(y_i | x_i) of multinomial logistic experts: (n, K)."""
        dtype = self._data_dtype(X)
        X, Y = self._device_rows(X, dtype), self._device_rows(Y, dtype)
        n_experts, n_classes, d = coef.shape
        class_w, class_b = self._device_params(coef, intercept)
        n = X.shape[0]
        result = self._output(out, (n, n_experts), dtype)
        self._launch("logistic_log_density", dtype, n_experts, n, (
            X, Y, class_w, class_b, result, np.int64(n), np.int32(d), np.int32(n_classes),
            np.int32(n_experts)), d)
        return self._deliver(result, out)

    def normalize_log_joint(self, log_joint, resp_out=None):
        """Responsibilities from log g + log p: ``(log_norm (n,), resp (n, K))``.

        A row whose joint is -inf for every expert gets zero responsibilities.
        ``resp_out`` may be ``log_joint`` itself.
        """
        dtype = self._data_dtype(log_joint)
        log_joint = self._device_rows(log_joint, dtype)
        n, n_experts = log_joint.shape
        resp = self._output(resp_out, (n, n_experts), dtype)
        log_norm = cupy.empty(n, dtype=dtype)
        self._launch("normalize_log_joint", dtype, n_experts, n, (
            log_joint, resp, log_norm, np.int64(n), np.int32(n_experts)))
        return log_norm, self._deliver(resp, resp_out)

    def gaussian_e_step(self, X, Y, gate_coef, gate_intercept, coef, intercept, variance, resp,
                        log_gate_out=None):
        """Whole fused E-step for Gaussian experts.

        Writes the responsibilities into ``resp`` (n, K) and returns the
        per-sample log-likelihood log p(y_i | x_i), shape (n,), float64.
        ``log_gate_out`` (n, K), if given, receives the log gate in the same
        pass over the rows.
        """
        n_experts, n_targets = coef.shape[:2]
        return self._fused_e_step(
            "gaussian_e_step", X, Y, (gate_coef, gate_intercept,
                                      *self._gaussian_params(coef, intercept, variance)),
            n_targets, n_experts, resp, log_gate_out)

    def _fused_e_step(self, name, X, Y, params, n_outputs, n_experts, resp, log_gate_out):
        """Launch the fused E-step kernel ``name`` (arguments: X, Y, the float64
        ``params``, resp, log_norm, log gate and flag, n, d, ``n_outputs``, K): fills
        ``resp`` (and ``log_gate_out``) and returns the float64 log-likelihood (n,)."""
        dtype = self._data_dtype(X)
        X, Y = self._device_rows(X, dtype), self._device_rows(Y, dtype)
        params = self._device_params(*params)
        n, d = X.shape
        out = self._output(resp, (n, n_experts), dtype)
        log_norm = cupy.empty(n, dtype=np.float64)  # whatever X's dtype: it feeds EM's sums
        log_gate, write_gate = self._log_gate_output(log_gate_out, (n, n_experts), dtype)
        self._launch(name, dtype, n_experts, n, (
            X, Y, *params, out, log_norm, log_gate, np.int32(write_gate), np.int64(n),
            np.int32(d), np.int32(n_outputs), np.int32(n_experts)), d)
        self._deliver(out, resp)
        if write_gate:
            self._deliver(log_gate, log_gate_out)
        return log_norm

    def _log_gate_output(self, log_gate_out, shape, dtype):
        """The E-step kernels' log-gate argument and flag: an (n, K) array to write,
        or a one-entry placeholder and 0 where no log gate is asked for."""
        if log_gate_out is None:
            return cupy.empty(1, dtype=dtype), 0
        return self._output(log_gate_out, shape, dtype), 1

    def logistic_e_step(self, X, Y, gate_coef, gate_intercept, coef, intercept, resp,
                        log_gate_out=None):
        """Whole fused E-step for logistic experts: fills ``resp`` (n, K), returns log p(y_i | x_i).

        The log-likelihood (n,) is float64 whatever X's dtype; ``log_gate_out``
        as in :meth:`gaussian_e_step`.
        """
        n_experts, n_classes = coef.shape[:2]
        return self._fused_e_step("logistic_e_step", X, Y,
                                  (gate_coef, gate_intercept, coef, intercept), n_classes,
                                  n_experts, resp, log_gate_out)

    def poisson_log_density(self, X, Y, coef, intercept, out=None):
        """log Poisson(y_i; exp(x_i w_k + c_k)), summed over targets: (n, K)."""
        dtype = self._data_dtype(X)
        X, Y = self._device_rows(X, dtype), self._device_rows(Y, dtype)
        n_experts, n_targets, d = coef.shape
        mean_w, mean_b = self._device_params(np.reshape(cupy.asnumpy(coef), (-1, d)),
                                             np.ravel(cupy.asnumpy(intercept)))
        n = X.shape[0]
        result = self._output(out, (n, n_experts), dtype)
        self._launch("poisson_log_density", dtype, n_experts, n, (
            X, Y, mean_w, mean_b, result, np.int64(n), np.int32(d), np.int32(n_targets),
            np.int32(n_experts)), d)
        return self._deliver(result, out)

    def poisson_e_step(self, X, Y, gate_coef, gate_intercept, coef, intercept, resp,
                       log_gate_out=None):
        """Whole fused E-step for Poisson experts: fills ``resp`` (n, K), returns log p(y_i | x_i).

        The log-likelihood (n,) is float64 whatever X's dtype; ``log_gate_out``
        as in :meth:`gaussian_e_step`.
        """
        n_experts, n_targets, d = coef.shape
        return self._fused_e_step(
            "poisson_e_step", X, Y,
            (gate_coef, gate_intercept, np.reshape(cupy.asnumpy(coef), (-1, d)),
             np.ravel(cupy.asnumpy(intercept))), n_targets, n_experts, resp, log_gate_out)

    def top_k_log_gate(self, log_g, k, out=None):
        """Log gate restricted to each row's ``k`` largest entries, renormalised: (n, K).

        Entries outside the top ``k`` are -inf; ties go to the lower expert
        index. ``out`` may be ``log_g`` itself.
        """
        if k < 1:
            raise ValueError(f"top_k must be at least 1, got {k}.")
        dtype = self._data_dtype(log_g)
        log_g = self._device_rows(log_g, dtype)
        n, n_experts = log_g.shape
        result = self._output(out, (n, n_experts), dtype)
        self._launch("top_k_log_gate", dtype, n_experts, n, (
            log_g, result, np.int64(n), np.int32(n_experts), np.int32(min(int(k), n_experts))))
        return self._deliver(result, out)

    def classify_log_joint(self, log_joint, resp_out=None):
        """Classification E-step: ``(best (n,), resp (n, K))``, one-hot at each row's argmax.

        Ties go to the lower index; a row that is -inf everywhere gets zero
        responsibilities. ``resp_out`` may be ``log_joint`` itself.
        """
        dtype = self._data_dtype(log_joint)
        log_joint = self._device_rows(log_joint, dtype)
        n, n_experts = log_joint.shape
        resp = self._output(resp_out, (n, n_experts), dtype)
        best = cupy.empty(n, dtype=dtype)
        self._launch("classify_log_joint", dtype, n_experts, n, (
            log_joint, resp, best, np.int64(n), np.int32(n_experts)))
        return best, self._deliver(resp, resp_out)


_KERNELS = CupyKernels()

log_gate = _KERNELS.log_gate
gaussian_log_density = _KERNELS.gaussian_log_density
tree_log_gate = _KERNELS.tree_log_gate
normalize_log_joint = _KERNELS.normalize_log_joint
gaussian_e_step = _KERNELS.gaussian_e_step
gaussian_predict = _KERNELS.gaussian_predict
weighted_moments = _KERNELS.weighted_moments
gaussian_weighted_rss = _KERNELS.gaussian_weighted_rss
gate_gradient_hessian = _KERNELS.gate_gradient_hessian
logistic_log_density = _KERNELS.logistic_log_density
logistic_e_step = _KERNELS.logistic_e_step
logistic_predict_log_proba = _KERNELS.logistic_predict_log_proba
top_k_log_gate = _KERNELS.top_k_log_gate
classify_log_joint = _KERNELS.classify_log_joint
gaussian_residual_moments = _KERNELS.gaussian_residual_moments
logistic_gradient = _KERNELS.logistic_gradient
poisson_log_density = _KERNELS.poisson_log_density
poisson_e_step = _KERNELS.poisson_e_step
poisson_newton_moments = _KERNELS.poisson_newton_moments
# Student-t experts: the generic code (their log normaliser is computed on the host)
student_t_log_density = _KERNELS.student_t_log_density
student_t_e_step = _KERNELS.student_t_e_step
student_t_weights = _KERNELS.student_t_weights
