"""The CuPy backend (``mixexp._kernels._cupy``) against the NumPy reference.

Three harnesses run the same checks, so that nearly all of the backend is
tested without a GPU:

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

``array_api_strict`` (2.6) is not used as a fourth namespace: the generic
code is written to what NumPy and CuPy share, and array_api_strict refuses
it from the first line: it accepts no NumPy dtype objects, its arrays have
no ``.reshape``, ``.astype``, ``.copy`` nor ``.flags``, and it has no
``isneginf`` nor ``concatenate`` (nor ``put_along_axis``).
"""

import importlib
import importlib.util
import shutil
import sys
import types
from pathlib import Path

import _kernel_harness as HARNESS  # tests/, on the path through conftest.py
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from mixexp._gates import TreeGate
from mixexp._kernels import KERNEL_NAMES, _array_api, get_kernels
from mixexp._kernels import _numpy as REFERENCE


def _load_emulation():
    """tests/_cupy_emulation.py, loaded once by path (the tests are not a package)."""
    name = "mixexp_tests_cupy_emulation"
    if name not in sys.modules:
        path = Path(__file__).with_name("_cupy_emulation.py")
        spec = importlib.util.spec_from_file_location(name, path)
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


EMULATION = _load_emulation()
RTOL, DTYPES, REDUCTIONS = HARNESS.RTOL, HARNESS.DTYPES, HARNESS.REDUCTIONS
E_STEPS, PER_SAMPLE_FIELDS, RUNS = HARNESS.E_STEPS, HARNESS.PER_SAMPLE_FIELDS, HARNESS.RUNS
make_problem, assert_matches = HARNESS.make_problem, HARNESS.assert_matches
run_reference = HARNESS.run_reference


CUPY, NO_GPU_REASON = EMULATION.find_gpu()
requires_gpu = pytest.mark.skipif(CUPY is None, reason=NO_GPU_REASON or "")


# ---------------------------------------------------------------------------
# The CuPy emulator: NumPy arrays, and CUDA source run on the host


@pytest.fixture(scope="session")
def emulated_module(tmp_path_factory):
    """``mixexp._kernels._cupy`` imported with the emulated CuPy."""
    if shutil.which("g++") is None:
        pytest.skip("no g++ to run the CUDA source on the host")
    return EMULATION.load_cupy_kernels(
        EMULATION.emulated_cupy(tmp_path_factory.mktemp("cuda_on_host")))


# ---------------------------------------------------------------------------
# Harnesses: a kernel bundle, how inputs reach it, what its outputs are


def _numpy_harness(kernels):
    return types.SimpleNamespace(
        kernels=kernels, xp=np, to_device=np.asarray, to_host=np.asarray, empty=np.empty,
        device_type=np.ndarray)


@pytest.fixture(params=[
    "generic",
    "emulated",
    pytest.param("gpu", marks=[pytest.mark.gpu, requires_gpu]),
])
def harness(request):
    if request.param == "generic":
        # blocks of a few rows: every reduction sums several of them
        return _numpy_harness(_array_api.ArrayKernels(np, block_elements=400))
    if request.param == "emulated":
        return _numpy_harness(request.getfixturevalue("emulated_module"))
    return types.SimpleNamespace(
        kernels=importlib.import_module("mixexp._kernels._cupy"), xp=CUPY,
        to_device=CUPY.asarray, to_host=CUPY.asnumpy, empty=CUPY.empty,
        device_type=CUPY.ndarray)


def on_device(harness, p):
    """The problem with its per-sample arrays moved to the harness's device."""
    moved = types.SimpleNamespace(**vars(p))
    for field in PER_SAMPLE_FIELDS:
        setattr(moved, field, harness.to_device(getattr(p, field)))
    return moved


def run(harness, name, p):
    """Outputs of kernel ``name`` as host arrays, after checking where they live."""
    outputs = RUNS[name](harness.kernels, on_device(harness, p), harness.empty)
    for out in outputs:
        if name in REDUCTIONS:
            assert type(out) is np.ndarray, (name, type(out))
        else:
            assert isinstance(out, harness.device_type), (name, type(out))
    return tuple(harness.to_host(out) for out in outputs)


def assert_same_outputs(harness, name, p, dtype):
    actual = run(harness, name, p)
    for a, b in zip(actual, run_reference(name, p), strict=True):
        assert_matches(a, b, dtype, p.X.shape[0])
    return actual


# ---------------------------------------------------------------------------
# Tests


def test_every_kernel_of_the_seam_is_tested():
    assert set(RUNS) == set(KERNEL_NAMES)


# (n, K): one row; one expert; several rows and blocks; K above the
# kernels' smallest per-row scratch (8)
SHAPES = [(1, 3), (150, 1), (300, 4), (40, 9)]


@pytest.mark.parametrize("name", sorted(RUNS))
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("shape", SHAPES, ids=["n1", "K1", "n300", "K9"])
def test_kernel_matches_reference(harness, name, dtype, shape):
    p = make_problem(*shape, dtype=dtype)
    outputs = assert_same_outputs(harness, name, p, dtype)
    for i, out in enumerate(outputs):
        # reductions and the E-steps' log-likelihood are float64; per-sample
        # outputs keep the data's dtype
        float64 = name in REDUCTIONS or (name in E_STEPS and i == 0)
        assert out.dtype == (np.float64 if float64 else dtype), (name, i, out.dtype)


@pytest.mark.parametrize("name", sorted(HARNESS.POISSON_RUNS))
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("shape", SHAPES, ids=["n1", "K1", "n300", "K9"])
def test_poisson_kernel_matches_reference(harness, name, dtype, shape):
    # the Poisson family's kernels (FAMILY_KERNEL_NAMES): CUDA for the
    # densities (lgamma), the generic code for the Newton sums
    if not hasattr(harness.kernels, name):
        pytest.skip(f"the generic bundle has no {name} (it needs lgamma on the device)")
    p = make_problem(*shape, dtype=dtype)
    outputs = HARNESS.POISSON_RUNS[name](harness.kernels, on_device(harness, p),
                                         harness.empty)
    reduction = name in HARNESS.POISSON_REDUCTIONS
    outputs = [out for out in outputs if out is not None]
    for i, out in enumerate(outputs):
        assert (type(out) is np.ndarray) if reduction else isinstance(out, harness.device_type)
        float64 = reduction or (name == "poisson_e_step" and i == 0)
        assert out.dtype == (np.float64 if float64 else dtype), (name, i, out.dtype)
    for a, b in zip(outputs, run_reference(name, p), strict=True):
        assert_matches(harness.to_host(a), b, dtype, p.X.shape[0])


@pytest.mark.parametrize("name", sorted(HARNESS.STUDENT_T_RUNS))
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("shape", SHAPES, ids=["n1", "K1", "n300", "K9"])
def test_student_t_kernel_matches_reference(harness, name, dtype, shape):
    # the Student-t family's kernels (FAMILY_KERNEL_NAMES): the generic code on every
    # harness (the emulated module runs it on its stand-in arrays)
    p = make_problem(*shape, dtype=dtype)
    outputs = HARNESS.STUDENT_T_RUNS[name](harness.kernels, on_device(harness, p),
                                           harness.empty)
    for i, out in enumerate(outputs):
        # student_t_weights: W u on the device, then its two sums, host float64
        host_sum = name == "student_t_weights" and i > 0
        assert (type(out) is np.ndarray) if host_sum else isinstance(out, harness.device_type)
        float64 = host_sum or (name == "student_t_e_step" and i == 0)
        assert out.dtype == (np.float64 if float64 else dtype), (name, i, out.dtype)
    for a, b in zip(outputs, run_reference(name, p), strict=True):
        assert_matches(harness.to_host(a), b, dtype, p.X.shape[0])


@pytest.mark.parametrize("name", sorted(RUNS))
@pytest.mark.parametrize("layout", ["fortran", "strided"])
def test_kernel_accepts_any_memory_layout(harness, name, layout):
    p = make_problem(300, 3)
    desired = run_reference(name, p)
    p = on_device(harness, p)
    xp = harness.xp
    for field in PER_SAMPLE_FIELDS:
        a = getattr(p, field)
        if layout == "fortran":
            a = xp.asfortranarray(a)
        else:  # every other column of a wider array: neither C nor F contiguous
            wide = xp.zeros((a.shape[0], 2 * a.shape[1]), dtype=a.dtype)
            wide[:, ::2] = a
            a = wide[:, ::2]
            assert not a.flags.c_contiguous
        setattr(p, field, a)
    for a, b in zip(RUNS[name](harness.kernels, p, harness.empty), desired, strict=True):
        assert_matches(harness.to_host(a), b, np.float64, 300)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_e_step_with_an_impossible_expert(harness, dtype):
    # expert 1 predicts far off with a tiny variance: its log-density is -inf
    # (overflow) or finite but hugely negative; either way it gets no
    # responsibility and the log-likelihood stays finite. NumPy warns about
    # the overflow (the generic harness); CuPy and CUDA never do.
    p = make_problem(50, 3, dtype)
    huge = 1e200 if dtype == np.float64 else 1e30
    p.intercept[1] = -huge
    p.variance[1] = 1.0 / huge
    with np.errstate(over="ignore"):
        for name in ("gaussian_log_density", "gaussian_e_step"):
            assert_same_outputs(harness, name, p, dtype)
        log_norm, resp = run(harness, "gaussian_e_step", p)
    assert np.all(np.isfinite(log_norm))
    assert np.all(resp[:, 1] == 0.0)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_rows_impossible_for_some_or_every_expert(harness, dtype):
    p = make_problem(40, 3, dtype)
    p.log_joint[3, 1] = -np.inf
    p.log_joint[7, :] = -np.inf
    p.log_g[5, 0] = -np.inf  # an expert already dropped by an earlier routing
    for name in ("normalize_log_joint", "classify_log_joint", "top_k_log_gate"):
        assert_same_outputs(harness, name, p, dtype)
    log_norm, resp = run(harness, "normalize_log_joint", p)
    assert log_norm[7] == -np.inf and np.all(resp[7] == 0.0)
    assert resp[3, 1] == 0.0 and np.isfinite(log_norm[3])
    best, one_hot = run(harness, "classify_log_joint", p)
    assert best[7] == -np.inf and np.all(one_hot[7] == 0.0)


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


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_gate_probabilities_that_underflow(harness, dtype):
    # logits 1000 apart: exp underflows, log g must not
    p = make_problem(60, 3, dtype)
    p.gate_coef[:] = 0.0
    p.gate_intercept[:] = [0.0, -1000.0, 3.0]
    p.log_g = REFERENCE.log_gate(p.X, p.gate_coef, p.gate_intercept).astype(dtype)
    for name in ("log_gate", "gaussian_e_step", "logistic_e_step", "gate_gradient_hessian",
                 "top_k_log_gate"):
        assert_same_outputs(harness, name, p, dtype)
    log_g = run(harness, "log_gate", p)[0]
    np.testing.assert_allclose(log_g[:, 1], -1003.0 - np.log1p(np.exp(-3.0)), rtol=RTOL[dtype])
    resp = run(harness, "gaussian_e_step", p)[1]
    assert np.all(resp[:, 1] == 0.0)


def test_outputs_are_written_in_place_and_may_alias_inputs(harness):
    p = on_device(harness, make_problem(500, 3))
    kernels, host = harness.kernels, harness.to_host
    desired = REFERENCE.log_gate(host(p.X), p.gate_coef, p.gate_intercept)
    out = harness.empty((500, 3))
    assert kernels.log_gate(p.X, p.gate_coef, p.gate_intercept, out=out) is out
    assert_matches(host(out), desired, np.float64, 500)
    strided_out = harness.empty((500, 6))[:, ::2]
    assert kernels.log_gate(p.X, p.gate_coef, p.gate_intercept, out=strided_out) is strided_out
    assert_array_equal(host(strided_out), host(out))

    log_norm, resp = REFERENCE.normalize_log_joint(host(p.log_joint))
    joint = p.log_joint.copy()
    aliased_norm, aliased = kernels.normalize_log_joint(joint, resp_out=joint)
    assert aliased is joint
    assert_matches(host(aliased), resp, np.float64, 500)
    assert_matches(host(aliased_norm), log_norm, np.float64, 500)

    desired = REFERENCE.top_k_log_gate(host(p.log_g), 2)
    log_g = p.log_g.copy()
    assert kernels.top_k_log_gate(log_g, 2, out=log_g) is log_g
    assert_matches(host(log_g), desired, np.float64, 500)

    best, one_hot = REFERENCE.classify_log_joint(host(p.log_joint))
    joint = p.log_joint.copy()
    best_aliased, resp_aliased = kernels.classify_log_joint(joint, resp_out=joint)
    assert resp_aliased is joint
    assert_array_equal(host(best_aliased), best)
    assert_array_equal(host(resp_aliased), one_hot)


def test_e_step_fills_a_host_resp(harness):
    # the estimators may still hand a NumPy buffer: it receives a copy
    p = make_problem(80, 3)
    resp = np.empty((80, 3))
    args = (p.X, p.Y, p.gate_coef, p.gate_intercept, p.coef, p.intercept, p.variance)
    harness.kernels.gaussian_e_step(harness.to_device(p.X), harness.to_device(p.Y), *args[2:], resp)
    desired = np.empty((80, 3))
    REFERENCE.gaussian_e_step(*args, desired)
    assert_matches(resp, desired, np.float64, 80)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_e_steps_also_write_the_log_gate(harness, dtype):
    p = make_problem(90, 3, dtype)
    gate = REFERENCE.log_gate(p.X, p.gate_coef, p.gate_intercept)
    X = harness.to_device(p.X)
    for name, expert in [("gaussian_e_step", (p.Y, p.coef, p.intercept, p.variance)),
                         ("logistic_e_step", (p.labels, p.class_coef, p.class_intercept)),
                         ("poisson_e_step", (p.counts, p.count_coef, p.count_intercept))]:
        if not hasattr(harness.kernels, name):
            continue  # (the generic bundle has no Poisson E-step: lgamma)
        resp, log_g = harness.empty((90, 3), dtype=dtype), harness.empty((90, 3), dtype=dtype)
        getattr(harness.kernels, name)(X, harness.to_device(expert[0]), p.gate_coef,
                                       p.gate_intercept, *expert[1:], resp, log_gate_out=log_g)
        assert_matches(harness.to_host(log_g), gate, dtype, 90)


# the row copy of the kernels that read X: 8 and 16 entries, the largest
# (64), and rows too wide for it (read in place)
@pytest.mark.parametrize("d", [1, 10, 64, 65])
@pytest.mark.parametrize("name", sorted(E_STEPS | {"log_gate", "gaussian_log_density",
                                                    "logistic_log_density"}))
def test_row_reading_kernels_match_the_reference_at_every_width(harness, name, d):
    p = make_problem(70, 3, d=d, seed=d)
    assert_same_outputs(harness, name, p, np.float64)


@pytest.mark.parametrize("d", [1, 10, 64, 65])
@pytest.mark.parametrize("name", ["poisson_e_step", "poisson_log_density"])
def test_poisson_row_reading_kernels_match_the_reference_at_every_width(harness, name, d):
    if not hasattr(harness.kernels, name):
        pytest.skip(f"the generic bundle has no {name} (it needs lgamma on the device)")
    p = make_problem(70, 3, d=d, seed=d)
    outputs = HARNESS.POISSON_RUNS[name](harness.kernels, on_device(harness, p),
                                         harness.empty)
    for a, b in zip(outputs, run_reference(name, p), strict=True):
        assert_matches(harness.to_host(a), b, np.float64, 70)


@pytest.mark.parametrize("k", [1, 2, 3, 7])
def test_top_k_breaks_ties_toward_the_lower_expert(harness, k):
    with np.errstate(all="ignore"):
        log_g = np.log(np.array([[0.25, 0.25, 0.25, 0.25], [0.1, 0.4, 0.4, 0.1],
                                 [0.5, 0.5, 0.0, 0.0]]))
        desired = REFERENCE.top_k_log_gate(log_g, k)
    actual = harness.kernels.top_k_log_gate(harness.to_device(log_g), k)
    assert_array_equal(harness.to_host(actual), desired)


def test_top_k_refuses_k_below_one(harness):
    log_g = harness.to_device(make_problem(5, 3).log_g)
    with pytest.raises(ValueError, match="at least 1"):
        harness.kernels.top_k_log_gate(log_g, 0)


@pytest.mark.parametrize("name", sorted(set(RUNS) - REDUCTIONS))
def test_no_rows(harness, name):
    p = make_problem(0, 3)
    for out, desired in zip(run(harness, name, p), run_reference(name, p), strict=True):
        assert out.shape == desired.shape


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
