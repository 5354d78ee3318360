"""Every kernel backend against the NumPy reference (``mixexp._kernels._numpy``), one harness.

Each test runs on every backend (the ``backend`` fixture):

* ``numba``: the Numba bundle, with its parallel path usable even on one core
  (skipped without Numba);
* ``generic``: :class:`~mixexp._kernels._array_api.ArrayKernels` with NumPy
  as the namespace (the code CuPy runs for predictions and reductions), with
  small row blocks so that every reduction sums several blocks;
* ``emulated``: the ``_cupy`` module imported with CuPy replaced by the
  emulator of tests/_cupy_emulation.py, the CUDA source compiled by the host
  C++ compiler and run one thread at a time (skipped without ``g++``);
* ``gpu`` (marked ``gpu``): the real ``_cupy`` module on a CUDA device,
  skipped unless CuPy imports and sees one; per-sample outputs must be CuPy
  arrays and reductions host NumPy arrays.

Every kernel must agree with the reference to rtol 1e-10 (float64) or 1e-4
(float32), relative to the scale of its row (row-wise outputs) or of the
whole array (reductions), with -inf exactly where the reference has it
(``_kernel_harness.assert_matches``). Checks that belong to one backend
(Numba's threads and BLAS widths, the emulated launch grid, the generic
row blocks, GPU compile caching) stay in tests/test_kernels.py and
tests/test_cupy.py.

``array_api_strict`` (2.6) is not used as a further namespace for the generic
code: that code is written to what NumPy and CuPy share, and array_api_strict
refuses it from the first line: it accepts no NumPy dtype objects, its arrays
have no ``.reshape``, ``.astype``, ``.copy`` nor ``.flags``, and it has no
``isneginf`` nor ``concatenate`` (nor ``put_along_axis``).
"""

import importlib
import math
import shutil

import _kernel_harness as HARNESS  # tests/, on the path through conftest.py
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from mixexp._kernels import FAMILY_KERNEL_NAMES, KERNEL_NAMES, _array_api, get_kernels
from mixexp._kernels import _numpy as REFERENCE

RTOL, DTYPES, E_STEPS = HARNESS.RTOL, HARNESS.DTYPES, HARNESS.E_STEPS
RUNS = HARNESS.ALL_RUNS
make_problem, assert_matches = HARNESS.make_problem, HARNESS.assert_matches
run, assert_same_outputs = HARNESS.run, HARNESS.assert_same_outputs
run_reference = HARNESS.run_reference
DTYPE_IDS = ["float64", "float32"]

EMULATION = HARNESS.load_emulation()
CUPY, NO_GPU_REASON = EMULATION.find_gpu()


def _numba_importable():
    try:
        get_kernels("numba")
    except ImportError:
        return False
    return True


BACKENDS = [
    pytest.param("numba", marks=pytest.mark.skipif(not _numba_importable(),
                                                    reason="needs numba")),
    "generic",
    "emulated",
    pytest.param("gpu", marks=[pytest.mark.gpu,
                               pytest.mark.skipif(CUPY is None, reason=NO_GPU_REASON or "")]),
]


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    """A kernel bundle with how inputs reach it (``_kernel_harness.host_backend``)."""
    if request.param == "numba":
        from mixexp._kernels import _numba

        monkeypatch.setattr(_numba, "_n_threads", lambda: 2)
        return HARNESS.host_backend("numba", get_kernels("numba"))
    if request.param == "generic":
        # blocks of a few rows: every reduction sums several of them
        return HARNESS.host_backend("generic", _array_api.ArrayKernels(np, block_elements=400))
    if request.param == "emulated":
        if shutil.which("g++") is None:
            pytest.skip("no g++ to run the CUDA source on the host")
        tmp = request.getfixturevalue("tmp_path_factory")
        return HARNESS.host_backend("emulated", HARNESS.emulated_kernels(tmp))
    return HARNESS.cupy_backend(CUPY, importlib.import_module("mixexp._kernels._cupy"))


def _skip_if_missing(backend, name):
    if not hasattr(backend.kernels, name):
        pytest.skip(f"the {backend.name} bundle has no {name} (it needs lgamma on the device)")


def test_every_kernel_of_the_seam_is_tested():
    assert set(RUNS) == set(KERNEL_NAMES) | set(FAMILY_KERNEL_NAMES)


# (n, K): one row; one expert; both sides of Numba's serial/parallel threshold
# (n * K = 20_000); several rows and blocks; K above the CUDA kernels'
# smallest per-row scratch (8)
SHAPES = [(1, 3), (150, 1), (200, 4), (6000, 4), (300, 4), (40, 9)]
SHAPE_IDS = ["n1", "K1", "serial", "parallel", "n300", "K9"]


@pytest.mark.parametrize("name", sorted(RUNS))
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_kernel_matches_reference(backend, name, dtype, shape):
    _skip_if_missing(backend, name)
    p = make_problem(*shape, dtype=dtype)
    outputs = assert_same_outputs(backend, name, p, dtype)
    for i, out in enumerate(outputs):
        # M-step statistics are float64 whatever the data's dtype: the M-step
        # solves in float64, and float32 Gram matrices let EM go downhill; so
        # is the E-steps' log-likelihood, which feeds EM's sums. Per-sample
        # outputs keep the data's dtype.
        float64 = HARNESS.returns_host_sums(name, i) or (name in E_STEPS | {
            "poisson_e_step", "student_t_e_step"} and i == 0)
        assert out.dtype == (np.float64 if float64 else dtype), (name, i, out.dtype)


@pytest.mark.parametrize("name", sorted(RUNS))
@pytest.mark.parametrize("layout", ["fortran", "strided"])
def test_kernel_accepts_any_memory_layout(backend, name, layout):
    _skip_if_missing(backend, name)
    p = make_problem(300, 3)
    desired = run_reference(name, p)
    p = HARNESS.on_device(backend, p)
    xp = backend.xp
    for field in HARNESS.PER_SAMPLE_FIELDS:
        a = getattr(p, field)
        if layout == "fortran":
            a = xp.asfortranarray(a)
        else:  # every other column of a wider array: neither C nor F contiguous
            wide = xp.zeros((a.shape[0], 2 * a.shape[1]), dtype=a.dtype)
            wide[:, ::2] = a
            a = wide[:, ::2]
            assert not a.flags.c_contiguous
        setattr(p, field, a)
    for a, b in zip(RUNS[name](backend.kernels, p, backend.empty), desired, strict=True):
        assert_matches(backend.to_host(a), b, np.float64, 300)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_e_step_with_an_impossible_expert(backend, dtype):
    # expert 1 predicts far off with a tiny variance: its log-density is -inf
    # (overflow) or finite but hugely negative; either way it gets no
    # responsibility and the log-likelihood stays finite. NumPy warns about
    # the overflow (the generic code); Numba, CuPy and CUDA never do.
    p = make_problem(50, 3, dtype)
    huge = 1e200 if dtype == np.float64 else 1e30
    p.intercept[1] = -huge
    p.variance[1] = 1.0 / huge
    with np.errstate(over="ignore"):
        for name in ("gaussian_log_density", "gaussian_e_step"):
            assert_same_outputs(backend, name, p, dtype)
        log_norm, resp = run(backend, "gaussian_e_step", p)
    assert np.all(np.isfinite(log_norm))
    assert np.all(resp[:, 1] == 0.0)
    assert_allclose(resp.sum(axis=1), 1.0, rtol=RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_rows_impossible_for_some_or_every_expert(backend, dtype):
    p = make_problem(40, 3, dtype)
    p.log_joint[3, 1] = -np.inf
    p.log_joint[7, :] = -np.inf
    p.log_g[5, 0] = -np.inf  # an expert already dropped by an earlier routing
    for name in ("normalize_log_joint", "classify_log_joint", "top_k_log_gate"):
        assert_same_outputs(backend, name, p, dtype)
    log_norm, resp = run(backend, "normalize_log_joint", p)
    assert log_norm[7] == -np.inf and np.all(resp[7] == 0.0)
    assert resp[3, 1] == 0.0 and np.isfinite(log_norm[3])
    best, one_hot = run(backend, "classify_log_joint", p)
    assert best[7] == -np.inf and np.all(one_hot[7] == 0.0)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_gate_probabilities_that_underflow(backend, dtype):
    # logits 1000 apart: exp underflows, log g must not
    p = make_problem(60, 3, dtype)
    p.gate_coef[:] = 0.0
    p.gate_intercept[:] = [0.0, -1000.0, 3.0]
    p.log_g = REFERENCE.log_gate(p.X, p.gate_coef, p.gate_intercept).astype(dtype)
    for name in ("log_gate", "gaussian_e_step", "logistic_e_step", "gate_gradient_hessian",
                 "top_k_log_gate"):
        assert_same_outputs(backend, name, p, dtype)
    log_g = run(backend, "log_gate", p)[0]
    assert_allclose(log_g[:, 1], -1003.0 - math.log1p(math.exp(-3.0)), rtol=RTOL[dtype])
    resp = run(backend, "gaussian_e_step", p)[1]
    assert np.all(resp[:, 1] == 0.0)


def test_outputs_are_written_in_place_and_may_alias_inputs(backend):
    p = HARNESS.on_device(backend, make_problem(500, 3))
    kernels, host = backend.kernels, backend.to_host
    desired = REFERENCE.log_gate(host(p.X), p.gate_coef, p.gate_intercept)
    out = backend.empty((500, 3))
    assert kernels.log_gate(p.X, p.gate_coef, p.gate_intercept, out=out) is out
    assert_matches(host(out), desired, np.float64, 500)
    strided_out = backend.empty((500, 6))[:, ::2]
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


@pytest.mark.parametrize("k", [1, 2, 3, 7])
def test_top_k_breaks_ties_toward_the_lower_expert(backend, k):
    with np.errstate(all="ignore"):
        log_g = np.log(np.array([[0.25, 0.25, 0.25, 0.25], [0.1, 0.4, 0.4, 0.1],
                                 [0.5, 0.5, 0.0, 0.0]]))
        desired = REFERENCE.top_k_log_gate(log_g, k)
    actual = backend.kernels.top_k_log_gate(backend.to_device(log_g), k)
    assert_array_equal(backend.to_host(actual), desired)


def test_top_k_refuses_k_below_one(backend):
    log_g = backend.to_device(make_problem(5, 3).log_g)
    with pytest.raises(ValueError, match="at least 1"):
        backend.kernels.top_k_log_gate(log_g, 0)


@pytest.mark.parametrize("name", sorted(set(RUNS) - HARNESS.ALL_REDUCTIONS))
def test_no_rows(backend, name):
    _skip_if_missing(backend, name)
    p = make_problem(0, 3)
    for out, desired in zip(run(backend, name, p), run_reference(name, p), strict=True):
        assert out.shape == desired.shape


# (n, K): the CUDA kernels' harness size; both sides of Numba's serial/parallel threshold
E_STEP_SHAPES = [(90, 3), (200, 4), (6000, 4)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("family", ["gaussian", "logistic", "poisson", "student_t"])
@pytest.mark.parametrize("shape", E_STEP_SHAPES, ids=["n90", "serial", "parallel"])
def test_e_step_also_writes_the_log_gate(backend, family, dtype, shape):
    # EM's gate M-step starts from the E-step's log gate instead of a pass of its own
    name = f"{family}_e_step"
    _skip_if_missing(backend, name)
    n, n_experts = shape
    p = make_problem(n, n_experts, dtype)
    expert = {"gaussian": (p.Y, p.coef, p.intercept, p.variance),
              "logistic": (p.labels, p.class_coef, p.class_intercept),
              "poisson": (p.counts, p.count_coef, p.count_intercept),
              "student_t": (p.Y, p.coef, p.intercept, p.variance, p.dof)}[family]
    X = backend.to_device(p.X)
    args = (X, backend.to_device(expert[0]), p.gate_coef, p.gate_intercept, *expert[1:])
    e_step = getattr(backend.kernels, name)
    resp, resp_with_gate = (backend.empty(p.W.shape, dtype=dtype) for _ in range(2))
    log_g = backend.xp.full(p.W.shape, np.nan, dtype=dtype)
    log_norm = backend.to_host(e_step(*args, resp))
    assert_array_equal(backend.to_host(e_step(*args, resp_with_gate, log_gate_out=log_g)),
                       log_norm)
    assert_array_equal(backend.to_host(resp_with_gate), backend.to_host(resp))
    assert log_g.dtype == dtype
    log_g = backend.to_host(log_g)
    assert_matches(log_g, REFERENCE.log_gate(p.X, p.gate_coef, p.gate_intercept), dtype, n)
    if backend.name == "numba":  # the same arithmetic as its log_gate: bit-identical
        alone = backend.kernels.log_gate(p.X, p.gate_coef, p.gate_intercept)
        assert_array_equal(log_g, alone)


# the CUDA kernels' row copy of X: 8 and 16 entries, the largest (64), and
# rows too wide for it (read in place)
@pytest.mark.parametrize("d", [1, 10, 64, 65])
@pytest.mark.parametrize("name", sorted(E_STEPS | {
    "log_gate", "gaussian_log_density", "logistic_log_density", "poisson_e_step",
    "poisson_log_density"}))
def test_row_reading_kernels_match_the_reference_at_every_width(backend, name, d):
    _skip_if_missing(backend, name)
    p = make_problem(70, 3, d=d, seed=d)
    assert_same_outputs(backend, name, p, np.float64)
