"""The kernel-test harness shared by every backend's tests (tests/test_kernel_backends.py
for the checks every backend passes, tests/test_kernels.py and tests/test_cupy.py for
each backend's own).

Problems with inputs for every kernel, how each kernel of the seam is called
(``RUNS``: outputs as a tuple), the NumPy reference's outputs, and the
comparison every backend must pass: within rtol 1e-10 (float64) or 1e-4
(float32), relative to the scale of its row (row-wise outputs) or of the
whole array (reductions), with -inf exactly where the reference has it.
Parameters are passed in float64 whatever the data's dtype, as the
estimators do. Loaded by path (the tests are not a package).
"""

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
from numpy.testing import assert_array_equal

from mixexp._kernels import _numpy as REFERENCE

RTOL = {np.float64: 1e-10, np.float32: 1e-4}
DTYPES = [np.float64, np.float32]
REDUCTIONS = {"weighted_moments", "gaussian_weighted_rss", "gate_gradient_hessian",
              "gaussian_residual_moments", "logistic_gradient"}
E_STEPS = {"gaussian_e_step", "logistic_e_step"}
PER_SAMPLE_FIELDS = ("X", "Y", "labels", "counts", "W", "log_g", "log_joint")


def make_problem(n, n_experts, dtype=np.float64, *, d=3, n_targets=2, n_classes=3, seed=0):
    """Host inputs of every kernel: data in ``dtype`` (n rows), parameters in float64."""
    rng = np.random.default_rng(seed)
    p = types.SimpleNamespace()
    p.X = rng.normal(size=(n, d)).astype(dtype)
    p.Y = rng.normal(size=(n, n_targets)).astype(dtype)
    p.labels = np.eye(n_classes, dtype=dtype)[rng.integers(n_classes, size=n)]
    p.gate_coef = rng.normal(size=(n_experts, d))
    p.gate_intercept = rng.normal(size=n_experts)
    p.coef = rng.normal(size=(n_experts, n_targets, d))
    p.intercept = rng.normal(size=(n_experts, n_targets))
    p.variance = rng.uniform(0.3, 2.0, size=(n_experts, n_targets))
    p.class_coef = rng.normal(size=(n_experts, n_classes, d))
    p.class_intercept = rng.normal(size=(n_experts, n_classes))
    # responsibilities times sample weights, as the M-step gets them
    p.W = (rng.dirichlet(np.ones(n_experts), size=n) * rng.uniform(0.5, 2.0, (n, 1))).astype(dtype)
    p.log_g = REFERENCE.log_gate(p.X, p.gate_coef, p.gate_intercept).astype(dtype)
    p.log_joint = (p.log_g + REFERENCE.gaussian_log_density(
        p.X, p.Y, p.coef, p.intercept, p.variance)).astype(dtype)
    # Poisson experts: counts from 0 up to beyond the log-factorial table, with
    # rates from well below 1 to a few hundred
    p.counts = rng.poisson(rng.choice([0.3, 3.0, 300.0], size=(n, n_targets))).astype(dtype)
    p.counts[::97] = 5000.0
    p.count_coef = 0.5 * rng.normal(size=(n_experts, n_targets, d))
    p.count_intercept = rng.normal(1.0, 1.0, size=(n_experts, n_targets))
    # Student-t experts: degrees of freedom from heavier than Cauchy to nearly Gaussian
    # (their own generator: the draws above stay as they were)
    p.dof = np.random.default_rng(seed + 1).choice([0.6, 3.0, 30.0, 1e5], size=n_experts)
    return p


def _call(name, args, **kwargs):
    def run(kernels, p, empty=np.empty):
        out = getattr(kernels, name)(*args(p), **kwargs)
        return out if isinstance(out, tuple) else (out,)
    return run


def _e_step(name, args):
    def run(kernels, p, empty=np.empty):
        resp = empty(p.W.shape, dtype=p.X.dtype)
        log_norm = getattr(kernels, name)(*args(p), resp)
        return log_norm, resp
    return run


# How each kernel is called on a problem; its outputs as a tuple.
RUNS = {
    "log_gate": _call("log_gate", lambda p: (p.X, p.gate_coef, p.gate_intercept)),
    "gaussian_log_density": _call(
        "gaussian_log_density", lambda p: (p.X, p.Y, p.coef, p.intercept, p.variance)),
    "normalize_log_joint": _call("normalize_log_joint", lambda p: (p.log_joint,)),
    "gaussian_e_step": _e_step(
        "gaussian_e_step",
        lambda p: (p.X, p.Y, p.gate_coef, p.gate_intercept, p.coef, p.intercept, p.variance)),
    "gaussian_predict": _call("gaussian_predict", lambda p: (p.X, p.coef, p.intercept)),
    "weighted_moments": _call("weighted_moments", lambda p: (p.X, p.Y, p.W)),
    "gaussian_weighted_rss": _call(
        "gaussian_weighted_rss", lambda p: (p.X, p.Y, p.W, p.coef, p.intercept)),
    "gate_gradient_hessian": _call("gate_gradient_hessian", lambda p: (p.X, p.W, p.log_g)),
    "logistic_log_density": _call(
        "logistic_log_density", lambda p: (p.X, p.labels, p.class_coef, p.class_intercept)),
    "logistic_e_step": _e_step(
        "logistic_e_step",
        lambda p: (p.X, p.labels, p.gate_coef, p.gate_intercept, p.class_coef,
                   p.class_intercept)),
    "logistic_predict_log_proba": _call(
        "logistic_predict_log_proba", lambda p: (p.X, p.class_coef, p.class_intercept)),
    "top_k_log_gate": _call("top_k_log_gate", lambda p: (p.log_g, 2)),
    "classify_log_joint": _call("classify_log_joint", lambda p: (p.log_joint,)),
    "gaussian_residual_moments": _call(
        "gaussian_residual_moments", lambda p: (p.X, p.Y, p.W, p.coef, p.intercept)),
    "logistic_gradient": _call(
        "logistic_gradient", lambda p: (p.X, p.labels, p.W, p.class_coef, p.class_intercept)),
}


# The Poisson family's kernels (FAMILY_KERNEL_NAMES: a backend may lack them;
# the generic ArrayKernels has only the Newton sums, its densities need lgamma
# on the device), tested beside RUNS by tests/test_kernels.py and test_cupy.py.
POISSON_REDUCTIONS = {"poisson_newton_moments"}
POISSON_RUNS = {
    "poisson_log_density": _call(
        "poisson_log_density", lambda p: (p.X, p.counts, p.count_coef, p.count_intercept)),
    "poisson_e_step": _e_step(
        "poisson_e_step",
        lambda p: (p.X, p.counts, p.gate_coef, p.gate_intercept, p.count_coef,
                   p.count_intercept)),
    "poisson_newton_moments": _call(
        "poisson_newton_moments",
        lambda p: (p.X, p.counts, p.W, p.count_coef, p.count_intercept)),
}


# The Student-t family's kernels (FAMILY_KERNEL_NAMES), on the Gaussian problem's
# targets and parameters with ``p.dof``.
STUDENT_T_RUNS = {
    "student_t_log_density": _call(
        "student_t_log_density",
        lambda p: (p.X, p.Y, p.coef, p.intercept, p.variance, p.dof)),
    "student_t_e_step": _e_step(
        "student_t_e_step",
        lambda p: (p.X, p.Y, p.gate_coef, p.gate_intercept, p.coef, p.intercept, p.variance,
                   p.dof)),
    "student_t_weights": _call(
        "student_t_weights", lambda p: (p.X, p.Y, p.W, p.coef, p.intercept, p.variance, p.dof)),
    # the one-pass nu step's candidates: the current nu, 2 nu, 8 nu and MIN_DOF
    "student_t_log1p_sums": _call(
        "student_t_log1p_sums",
        lambda p: (p.X, p.Y, p.W, p.coef, p.intercept, p.variance,
                   np.column_stack([p.dof, 2 * p.dof, 8 * p.dof, np.full_like(p.dof, 0.5)]))),
}


def assert_matches(actual, desired, dtype, n_samples):
    """Within the dtype's rtol, with -inf exactly where the reference has it."""
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape
    assert_array_equal(np.isneginf(actual), np.isneginf(desired))
    finite = np.isfinite(desired)
    magnitude = np.where(finite, np.abs(desired), 0.0)
    if desired.ndim >= 2 and desired.shape[0] == n_samples:
        # a row's outputs share a scale (log g_k is computed from all the row's logits)
        scale = magnitude.reshape(n_samples, -1).max(axis=1)
        scale = scale.reshape((n_samples,) + (1,) * (desired.ndim - 1))
    else:
        scale = magnitude.max(initial=0.0)
    error = np.abs(np.where(finite, actual, 0.0) - np.where(finite, desired, 0.0))
    bound = RTOL[dtype] * (magnitude + scale)
    worst = np.max(error / np.maximum(bound, np.finfo(np.float64).tiny), initial=0.0)
    assert np.all(error <= bound), f"error {worst:.3g} times the tolerance"


def run_reference(name, p):
    # the reference warns on the edge cases (overflow to inf, -inf - -inf)
    with np.errstate(all="ignore"):
        return {**RUNS, **POISSON_RUNS, **STUDENT_T_RUNS}[name](REFERENCE, p, np.empty)


# ---------------------------------------------------------------------------
# Backends: a kernel bundle, how inputs reach it, what its outputs are


def load_emulation():
    """tests/_cupy_emulation.py, loaded once by path (the tests are not a package)."""
    name = "mixexp_tests_cupy_emulation"
    if name not in sys.modules:
        path = Path(__file__).with_name("_cupy_emulation.py")
        spec = importlib.util.spec_from_file_location(name, path)
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


_EMULATED = {}


def emulated_kernels(tmp_path_factory):
    """``mixexp._kernels._cupy`` with the emulated CuPy, compiled once per session."""
    if "module" not in _EMULATED:
        emulation = load_emulation()
        _EMULATED["module"] = emulation.load_cupy_kernels(
            emulation.emulated_cupy(tmp_path_factory.mktemp("cuda_on_host")))
    return _EMULATED["module"]


def host_backend(name, kernels):
    """A bundle that takes and returns host NumPy arrays."""
    return types.SimpleNamespace(
        name=name, kernels=kernels, xp=np, to_device=np.asarray, to_host=np.asarray,
        empty=np.empty, device_type=np.ndarray)


def cupy_backend(cupy, kernels):
    """The CuPy bundle on a real device: per-sample arrays live there."""
    return types.SimpleNamespace(
        name="gpu", kernels=kernels, xp=cupy, to_device=cupy.asarray, to_host=cupy.asnumpy,
        empty=cupy.empty, device_type=cupy.ndarray)


def on_device(backend, p):
    """The problem with its per-sample arrays moved to the backend's device."""
    moved = types.SimpleNamespace(**vars(p))
    for field in PER_SAMPLE_FIELDS:
        setattr(moved, field, backend.to_device(getattr(p, field)))
    return moved


ALL_RUNS = {**RUNS, **POISSON_RUNS, **STUDENT_T_RUNS}
ALL_REDUCTIONS = REDUCTIONS | POISSON_REDUCTIONS


def returns_host_sums(name, i):
    """Whether output ``i`` of kernel ``name`` is a host float64 sum (not per sample)."""
    return (name in ALL_REDUCTIONS or name == "student_t_log1p_sums"
            # student_t_weights: W u on the device, then its two sums
            or (name == "student_t_weights" and i > 0))


def run(backend, name, p):
    """Outputs of kernel ``name`` as host arrays, after checking where they live."""
    outputs = ALL_RUNS[name](backend.kernels, on_device(backend, p), backend.empty)
    for i, out in enumerate(outputs):
        if returns_host_sums(name, i):
            assert type(out) is np.ndarray, (name, i, type(out))
        else:
            assert isinstance(out, backend.device_type), (name, i, type(out))
    return tuple(backend.to_host(out) for out in outputs)


def assert_same_outputs(backend, name, p, dtype):
    """Run kernel ``name`` on ``backend`` and compare with the reference; the host outputs."""
    actual = run(backend, name, p)
    for a, b in zip(actual, run_reference(name, p), strict=True):
        assert_matches(a, b, dtype, p.X.shape[0])
    return actual
