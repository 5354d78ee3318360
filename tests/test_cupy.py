"""The CuPy backend's own checks (``mixexp._kernels._cupy``) against the NumPy reference.

The checks every backend passes, kernel by kernel, are in
tests/test_kernel_backends.py, on the same three harnesses as here, so that
nearly all of the backend is tested without a GPU:

* ``generic``: :class:`~mixexp._kernels._array_api.ArrayKernels` with NumPy
  as the namespace (the code CuPy runs for predictions and reductions),
  with small row blocks so that every reduction sums several blocks;
* ``emulated``: the ``_cupy`` module itself, imported with CuPy replaced by
  an emulator: arrays are NumPy arrays and the CUDA source is compiled by
  the host C++ compiler and run one thread at a time, every (block,
  thread) of the launch grid, with each kernel argument checked against
  the kernel's C signature (skipped without ``g++``);
* ``gpu`` (marked ``gpu``): the real module on a CUDA device, skipped
  unless CuPy imports and sees a device; it also checks that per-sample
  outputs are CuPy arrays and reductions host NumPy arrays.

Every kernel must agree with the reference to rtol 1e-10 (float64) or 1e-4
(float32), relative to the scale of its row (row-wise outputs) or of the
whole array (reductions), with -inf exactly where the reference has it.
"""

import importlib
import shutil
import types

import _kernel_harness as HARNESS  # tests/, on the path through conftest.py
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from mixexp._gates import TreeGate
from mixexp._kernels import _array_api, get_kernels
from mixexp._kernels import _numpy as REFERENCE

EMULATION = HARNESS.load_emulation()
DTYPES, REDUCTIONS, RUNS = HARNESS.DTYPES, HARNESS.REDUCTIONS, HARNESS.RUNS
make_problem, assert_matches = HARNESS.make_problem, HARNESS.assert_matches
run_reference, on_device = HARNESS.run_reference, HARNESS.on_device


CUPY, NO_GPU_REASON = EMULATION.find_gpu()
requires_gpu = pytest.mark.skipif(CUPY is None, reason=NO_GPU_REASON or "")


# ---------------------------------------------------------------------------
# The CuPy emulator: NumPy arrays, and CUDA source run on the host


@pytest.fixture(scope="session")
def emulated_module(tmp_path_factory):
    """``mixexp._kernels._cupy`` imported with the emulated CuPy."""
    if shutil.which("g++") is None:
        pytest.skip("no g++ to run the CUDA source on the host")
    return HARNESS.emulated_kernels(tmp_path_factory)


# ---------------------------------------------------------------------------
# Harnesses: a kernel bundle, how inputs reach it, what its outputs are


@pytest.fixture(params=[
    "generic",
    "emulated",
    pytest.param("gpu", marks=[pytest.mark.gpu, requires_gpu]),
])
def harness(request):
    if request.param == "generic":
        # blocks of a few rows: every reduction sums several of them
        return HARNESS.host_backend(
            "generic", _array_api.ArrayKernels(np, block_elements=400))
    if request.param == "emulated":
        return HARNESS.host_backend("emulated", request.getfixturevalue("emulated_module"))
    return HARNESS.cupy_backend(CUPY, importlib.import_module("mixexp._kernels._cupy"))


# ---------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_top_k_of_a_row_that_is_minus_inf_everywhere(harness, dtype):
    # the reference gives NaN where kept (-inf - -inf) and -inf elsewhere
    log_g = np.array([[-np.inf] * 4, [0.0, -1.0, -2.0, -3.0]], dtype=dtype)
    out = harness.to_host(harness.kernels.top_k_log_gate(harness.to_device(log_g), 2))
    with np.errstate(invalid="ignore"):
        desired = REFERENCE.top_k_log_gate(log_g, 2)
    assert_array_equal(np.isnan(out), np.isnan(desired))
    assert_matches(np.nan_to_num(out, nan=0.0, neginf=-np.inf),
                   np.nan_to_num(desired, nan=0.0, neginf=-np.inf), dtype, 2)


def test_e_step_fills_a_host_resp(harness):
    # the estimators may still hand a NumPy buffer: it receives a copy
    p = make_problem(80, 3)
    resp = np.empty((80, 3))
    args = (p.X, p.Y, p.gate_coef, p.gate_intercept, p.coef, p.intercept, p.variance)
    harness.kernels.gaussian_e_step(harness.to_device(p.X), harness.to_device(p.Y), *args[2:], resp)
    desired = np.empty((80, 3))
    REFERENCE.gaussian_e_step(*args, desired)
    assert_matches(resp, desired, np.float64, 80)


def test_generic_reductions_do_not_depend_on_the_blocks():
    p = make_problem(257, 4)
    whole = _array_api.ArrayKernels(np)
    for block_elements in (1, 100, 5000):
        blocked = _array_api.ArrayKernels(np, block_elements=block_elements)
        for name in sorted(REDUCTIONS):
            for a, b in zip(RUNS[name](blocked, p, np.empty), RUNS[name](whole, p, np.empty),
                            strict=True):
                assert_matches(a, b, np.float64, 257)


@pytest.mark.parametrize("name", ["log_gate", "gaussian_e_step", "logistic_e_step",
                                  "normalize_log_joint", "top_k_log_gate",
                                  "classify_log_joint"])
def test_emulated_grid_stride_loop_covers_every_row(emulated_module, monkeypatch, name):
    # a grid of one block: each thread handles rows t, t + 128, t + 256, ...
    monkeypatch.setattr(emulated_module, "_MAX_BLOCKS", 1)
    p = make_problem(300, 4)
    for a, b in zip(RUNS[name](emulated_module, p, np.empty), run_reference(name, p),
                    strict=True):
        assert_matches(a, b, np.float64, 300)


def test_emulated_scratch_is_sized_for_the_experts(emulated_module):
    assert [emulated_module._scratch_size(k) for k in (1, 8, 9, 16, 17, 100)] == [
        8, 8, 16, 16, 32, 128]


def test_emulated_row_copy_is_sized_for_the_features(emulated_module):
    assert [emulated_module._row_cache_size(d) for d in (0, 1, 8, 9, 64, 65, 500)] == [
        8, 8, 8, 16, 64, 0, 0]


@pytest.mark.gpu
@requires_gpu
def test_gpu_kernels_are_compiled_once_per_dtype_and_scratch():
    # d=3: the E-step's row copy and the normaliser (which reads no row)
    # share one module
    from mixexp._kernels import _cupy

    p = on_device(types.SimpleNamespace(to_device=CUPY.asarray), make_problem(100, 3))
    _cupy._compiled.cache_clear()
    for _ in range(3):
        RUNS["gaussian_e_step"](_cupy, p, CUPY.empty)
        RUNS["normalize_log_joint"](_cupy, p, CUPY.empty)
    assert _cupy._compiled.cache_info().currsize == 1


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("branching", [(3,), (2, 2), (2, 3, 2), (1, 4)])
def test_tree_log_gate_matches_the_reference_composition(harness, branching, dtype):
    if not hasattr(harness.kernels, "tree_log_gate"):
        pytest.skip("the generic array code has no fused tree kernel (it composes)")
    rng = np.random.default_rng(len(branching))
    gate = TreeGate(0.0, branching)
    n_leaves = int(np.prod(branching))
    params = gate.neutral(n_leaves, 10)  # a row copy of 16
    for key in params:
        params[key] = 2.0 * rng.normal(size=params[key].shape)
    X = rng.normal(size=(60, 10)).astype(dtype)
    desired = gate.log_prior(get_kernels("numpy"), X, params)  # node by node
    out = harness.kernels.tree_log_gate(harness.to_device(X), *gate.stacked(params),
                                        np.array(branching))
    assert out.dtype == np.float64 and out.shape == (60, n_leaves)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    assert_allclose(harness.to_host(out), desired, rtol=rtol, atol=rtol)
