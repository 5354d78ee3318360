"""Kernel seam: one bundle of functions per backend, identical signatures.

The estimators and solvers never import a backend module; they ask
:func:`get_kernels` for a bundle and call its functions. ``_numpy`` is the
reference implementation that defines correctness.

Besides the kernels, a bundle says where its per-sample arrays live:

* ``xp``: their array namespace (``numpy`` for the CPU backends, ``cupy``
  for the GPU one), for the few array operations done outside the
  kernels (buffers, exponentials, weighted sums);
* ``device``: whether that is device memory (not NumPy);
* ``to_host``: an array of ``xp`` as a host NumPy array (no copy on the
  CPU backends).
"""

from importlib import import_module
from types import SimpleNamespace

import numpy as np

KERNEL_NAMES = (
    "log_gate",
    "gaussian_log_density",
    "normalize_log_joint",
    "gaussian_e_step",
    "gaussian_predict",
    "weighted_moments",
    "gaussian_weighted_rss",
    "gate_gradient_hessian",
    "logistic_log_density",
    "logistic_e_step",
    "logistic_predict_log_proba",
    # hard / top-k gating and expert gradients (gradient solvers)
    "top_k_log_gate",
    "classify_log_joint",
    "gaussian_residual_moments",
    "logistic_gradient",
)

# Kernels of the Poisson and Student-t families. A backend without them can
# still serve the other families (the family raises a ValueError naming the
# backend); the CPU backends have all of them.
FAMILY_KERNEL_NAMES = ("poisson_log_density", "poisson_e_step", "poisson_newton_moments",
                       "student_t_log_density", "student_t_e_step", "student_t_weights")

# Fast paths a backend may provide; without one, callers compose the kernels
# above (the composition is the fast path's oracle).
OPTIONAL_KERNEL_NAMES = (
    "gaussian_pass",  # one-pass EM statistics, softmax gate + Gaussian experts
    "poisson_pass",  # the same with Poisson experts
    "student_t_pass",  # the same with Student-t experts
    "tree_log_gate",  # the leaves' log priors of a tree of softmax gates, in one pass
)

_MODULES = {
    "numpy": "mixexp._kernels._numpy",
    "numba": "mixexp._kernels._numba",
    "cupy": "mixexp._kernels._cupy",
}
# The array namespace of each backend's per-sample arrays.
_NAMESPACES = {"numpy": "numpy", "numba": "numpy", "cupy": "cupy"}
_CACHE = {}


class KernelBundle(SimpleNamespace):
    """A backend's kernel functions; pickled by name (row functions sent to Dask
    workers carry their bundle, and compiled kernels or modules do not pickle)."""

    def __reduce__(self):
        return get_kernels, (self.name,)


def get_kernels(name):
    """Return the kernel bundle of backend ``name`` as a namespace of functions.

    Raises ImportError where the backend's package (Numba, CuPy) is missing;
    whether a GPU is present is checked by ``mixexp._backend``.
    """
    if name not in _MODULES:
        raise ValueError(f"Unknown kernel backend {name!r}; expected one of {sorted(_MODULES)}.")
    if name not in _CACHE:
        module = import_module(_MODULES[name])
        xp = import_module(_NAMESPACES[name])
        _CACHE[name] = KernelBundle(
            name=name,
            xp=xp,
            device=xp is not np,
            to_host=getattr(xp, "asnumpy", np.asarray),
            **{fn: getattr(module, fn) for fn in KERNEL_NAMES},
            **{fn: getattr(module, fn)
               for fn in FAMILY_KERNEL_NAMES + OPTIONAL_KERNEL_NAMES if hasattr(module, fn)},
        )
    return _CACHE[name]
