"""Kernel seam: one bundle of functions per backend, identical signatures.

The estimators and solvers never import a backend module; they ask
:func:`get_kernels` for a bundle and call its functions. ``_numpy`` is the
reference implementation that defines correctness.
"""

from importlib import import_module
from types import SimpleNamespace

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

_MODULES = {"numpy": "mixexp._kernels._numpy", "numba": "mixexp._kernels._numba"}
_CACHE = {}


def get_kernels(name):
    """Return the kernel bundle of backend ``name`` as a namespace of functions."""
    if name not in _MODULES:
        raise ValueError(f"Unknown kernel backend {name!r}; expected one of {sorted(_MODULES)}.")
    if name not in _CACHE:
        module = import_module(_MODULES[name])
        _CACHE[name] = SimpleNamespace(
            name=name, **{fn: getattr(module, fn) for fn in KERNEL_NAMES}
        )
    return _CACHE[name]
