"""The CPU kernel backends' own checks (Numba's threads, its serial/parallel switch
and BLAS widths) and whole fits against the NumPy reference (``mixexp._kernels._numpy``).

The checks every backend passes, kernel by kernel, are in
tests/test_kernel_backends.py. Kernels must agree with the reference to rtol
1e-10 (float64) or 1e-4 (float32), relative to the scale of their row or of
the whole array, with -inf exactly where the reference has it.
"""

import sys
import warnings

import _kernel_harness as HARNESS  # tests/, on the path through conftest.py
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning

from mixexp import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from mixexp._backend import resolve_backend
from mixexp._kernels import _CACHE, _MODULES, get_kernels
from mixexp.datasets import make_moe_classification, make_moe_regression


def _importable(name):
    try:
        get_kernels(name)
    except ImportError:
        return False
    return True


# CPU backends on host arrays; the CuPy bundle (device arrays) has its own
# checks in test_cupy.py and test_cupy_fit.py
BACKENDS = [name for name in sorted(_MODULES)
            if name not in ("numpy", "cupy") and _importable(name)]
DTYPES = HARNESS.DTYPES
# the CPU backends have the Poisson and Student-t families' kernels too
RUNS = HARNESS.ALL_RUNS
make_problem, assert_matches = HARNESS.make_problem, HARNESS.assert_matches
run_reference = HARNESS.run_reference


@pytest.fixture(params=BACKENDS)
def kernels(request, monkeypatch):
    """A backend's kernel bundle, with its parallel path usable even on one core."""
    bundle = get_kernels(request.param)
    if request.param == "numba":
        from mixexp._kernels import _numba

        monkeypatch.setattr(_numba, "_n_threads", lambda: 2)
    return bundle


def assert_same_outputs(kernels, name, p, dtype):
    actual = RUNS[name](kernels, p)
    desired = run_reference(name, p)
    for a, b in zip(actual, desired, strict=True):
        assert_matches(a, b, dtype, p.X.shape[0])
    return actual


@pytest.mark.parametrize("name", ["log_gate", "normalize_log_joint", "gaussian_e_step",
                                  "gaussian_predict", "logistic_e_step", "top_k_log_gate",
                                  "classify_log_joint", "poisson_e_step",
                                  "poisson_log_density", "student_t_e_step",
                                  "student_t_log_density"])
def test_parallel_path_gives_each_row_the_serial_result(kernels, name, monkeypatch):
    if kernels.name != "numba":
        pytest.skip("the serial/parallel switch is Numba's")
    from mixexp._kernels import _numba

    p = make_problem(5000, 5)
    monkeypatch.setattr(_numba, "_PARALLEL_MIN_WORK", 10**12)
    serial = RUNS[name](kernels, p)
    monkeypatch.setattr(_numba, "_PARALLEL_MIN_WORK", 0)
    parallel = RUNS[name](kernels, p)
    for a, b in zip(parallel, serial, strict=True):
        assert_array_equal(a, b)


# ---- wide data: the Gram reductions ---------------------------------------------
# Numba takes weighted_moments and gate_gradient_hessian through BLAS from a
# width on (d + 1 = 48 and 64 features); each side of both thresholds, and
# d = 200 with several row blocks and chunks.

GRAM_REDUCTIONS = ["weighted_moments", "gate_gradient_hessian"]
WIDE_D = [46, 47, 62, 63, 200]


@pytest.mark.parametrize("name", GRAM_REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("d", WIDE_D)
@pytest.mark.parametrize("n", [300, 6000], ids=["serial", "parallel"])
def test_wide_gram_reductions_match_reference(kernels, name, dtype, d, n):
    p = make_problem(n, 3, dtype, d=d)
    outputs = assert_same_outputs(kernels, name, p, dtype)
    assert all(out.dtype == np.float64 for out in outputs)
    # the Gram matrices are exactly symmetric, as the row kernels make them
    gram = outputs[0] if name == "weighted_moments" else outputs[1].reshape(3 * (d + 1), -1)
    assert_array_equal(gram, np.swapaxes(gram, -1, -2))


def test_numba_gram_thresholds_lie_within_the_tested_widths():
    if "numba" not in BACKENDS:
        pytest.skip("needs numba")
    from mixexp._kernels import _numba

    for threshold in (_numba._BLAS_MIN_FEATURES_MOMENTS, _numba._BLAS_MIN_FEATURES_GATE):
        assert {threshold - 2, threshold - 1} <= set(WIDE_D)  # d + 1 below and at it


@pytest.mark.parametrize("name", GRAM_REDUCTIONS)
@pytest.mark.parametrize("layout", ["fortran", "strided"])
def test_wide_gram_reductions_accept_any_memory_layout(kernels, name, layout):
    p = make_problem(700, 3, np.float32, d=80)
    desired = run_reference(name, p)
    for field in ("X", "Y", "W", "log_g"):
        a = getattr(p, field)
        if layout == "fortran":
            a = np.asfortranarray(a)
        else:
            wide = np.zeros((a.shape[0], 2 * a.shape[1]), dtype=a.dtype)
            wide[:, ::2] = a
            a = wide[:, ::2]
        setattr(p, field, a)
    for a, b in zip(RUNS[name](kernels, p), desired, strict=True):
        assert_matches(a, b, np.float32, 700)


def test_wide_moments_with_weights_of_both_signs(kernels):
    # negative weights are outside the M-step's use, but the sums stay exact
    # (BLAS's symmetric product needs weights of one sign)
    p = make_problem(2000, 3, d=70)
    p.W[:, 0] -= 0.4  # mixed signs
    p.W[:, 1] = -p.W[:, 1]  # all non-positive
    assert_same_outputs(kernels, "weighted_moments", p, np.float64)


@pytest.mark.parametrize("name", GRAM_REDUCTIONS)
def test_wide_gram_reductions_do_not_depend_on_the_thread_count(kernels, name, monkeypatch):
    if kernels.name != "numba":
        pytest.skip("Numba's threads")
    from mixexp._kernels import _numba

    p = make_problem(20000, 3, d=100)
    results = []
    for n_threads in (1, 2, 3):
        monkeypatch.setattr(_numba, "_n_threads", lambda n_threads=n_threads: n_threads)
        results.append(RUNS[name](kernels, p))
    for other in results[1:]:
        for a, b in zip(other, results[0], strict=True):
            assert_array_equal(a, b)


def test_vectorised_exp_and_log_are_within_one_ulp_of_libm():
    pytest.importorskip("numba")
    from mixexp._kernels import _numba

    rng = np.random.default_rng(0)
    block = _numba._BLOCK
    z = np.resize(np.concatenate([
        rng.uniform(-746.0, 0.0, 400), rng.uniform(-2.0, 0.0, 400),
        [-np.inf, 0.0, -1e-300, -708.39, -708.4, -744.4, -745.1, -745.2, -746.0, -800.0],
    ]), (8, block))
    out = np.empty_like(z)
    for row in range(z.shape[0]):
        _numba._exp_shifted(z[row], np.zeros(block), block, out[row])
    desired = np.exp(z)
    normal = desired >= np.finfo(np.float64).tiny
    assert np.all(np.abs(out - desired)[normal] <= np.spacing(desired[normal]))
    # results in the subnormal range: within one unit of the smallest subnormal
    assert np.all(np.abs(out - desired)[~normal] <= 5e-324)
    assert np.all(out[np.isneginf(z)] == 0.0)

    x = np.resize(np.concatenate([
        rng.uniform(1.0, 40.0, 400), np.exp(rng.uniform(-700.0, 700.0, 400)),
        [0.0, 5e-324, 1e-310, 1.0, 2.0, np.sqrt(2.0), np.nextafter(np.sqrt(2.0), 0.0), np.inf,
         -1.0, np.nan],
    ]), (8, block))
    for row in range(x.shape[0]):
        _numba._log_block(x[row], block, out[row])
    with np.errstate(divide="ignore", invalid="ignore"):
        desired = np.log(x)
    finite = np.isfinite(desired)
    assert np.all(np.abs(out[finite] - desired[finite]) <= np.spacing(np.abs(desired[finite])))
    assert_array_equal(out[~finite], desired[~finite])


# ---- whole fits ---------------------------------------------------------------


def _fit(estimator, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y)


FITTED = ("gate_coef_", "gate_intercept_", "expert_coef_", "expert_intercept_")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n_samples", [600, 8000], ids=["serial", "parallel"])
def test_regressor_fits_equal_across_backends(backend, n_samples):
    X, y, _ = make_moe_regression(n_samples=n_samples, n_features=3, n_experts=3, noise=0.2,
                                  random_state=1)
    reference = _fit(MixtureOfExpertsRegressor(3, n_init=2, backend="numpy", random_state=0),
                     X, y)
    fitted = _fit(MixtureOfExpertsRegressor(3, n_init=2, backend=backend, random_state=0), X, y)
    assert fitted.n_iter_ == reference.n_iter_
    for name in FITTED + ("expert_variance_",):
        assert_allclose(getattr(fitted, name), getattr(reference, name), rtol=1e-8, atol=1e-10)
    assert fitted.log_likelihood_ == pytest.approx(reference.log_likelihood_, rel=1e-10)
    assert_allclose(fitted.predict(X), reference.predict(X), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_classifier_fits_equal_across_backends(backend):
    X, y, _ = make_moe_classification(n_samples=1500, n_features=2, n_experts=3, n_classes=3,
                                      random_state=0)
    # some shrinkage keeps every parameter identified: without it an expert that
    # separates its classes has a flat direction where rounding differences drift
    fits = [_fit(MixtureOfExpertsClassifier(3, n_init=2, alpha=0.1, backend=name,
                                            random_state=0), X, y)
            for name in ("numpy", backend)]
    reference, fitted = fits
    assert fitted.n_iter_ == reference.n_iter_
    for name in FITTED:
        assert_allclose(getattr(fitted, name), getattr(reference, name), rtol=1e-8, atol=1e-10)
    assert_allclose(fitted.predict_proba(X), reference.predict_proba(X), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_fit_is_close_to_float64_fit_and_stays_float32(backend):
    X, y, _ = make_moe_regression(n_samples=3000, n_features=3, n_experts=3, noise=0.2,
                                  random_state=2)
    X32, y32 = X.astype(np.float32), y.astype(np.float32)
    est64 = _fit(MixtureOfExpertsRegressor(3, backend=backend, random_state=0), X, y)
    est32 = _fit(MixtureOfExpertsRegressor(3, backend=backend, random_state=0), X32, y32)
    assert est32.log_likelihood_ == pytest.approx(est64.log_likelihood_, rel=1e-4)
    mean, std = est32.predict(X32, return_std=True)
    assert mean.dtype == std.dtype == np.float32
    assert_allclose(mean, est64.predict(X), rtol=1e-3, atol=1e-3 * np.abs(y).max())
    assert est32.predict_gate(X32).dtype == np.float32
    assert est32.predict_experts(X32).dtype == np.float32
    assert est32.predict_responsibilities(X32, y32).dtype == np.float32
    assert np.isfinite(est32.log_likelihood(X32, y32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_classifier_probabilities_stay_float32(backend):
    X, y, _ = make_moe_classification(n_samples=500, n_features=2, n_experts=2, n_classes=3,
                                      random_state=0)
    est = _fit(MixtureOfExpertsClassifier(2, backend=backend, random_state=0),
               X.astype(np.float32), y)
    proba = est.predict_proba(X.astype(np.float32))
    assert proba.dtype == np.float32
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


# ---- backend resolution ---------------------------------------------------------


def test_auto_prefers_numba_and_falls_back_to_numpy(monkeypatch):
    expected = "numba" if "numba" in BACKENDS else "numpy"
    assert resolve_backend("auto").name == expected
    # without an importable numba, "auto" still works and "numba" says what to install
    monkeypatch.setitem(sys.modules, "numba", None)
    monkeypatch.delitem(sys.modules, "mixexp._kernels._numba", raising=False)
    monkeypatch.delitem(_CACHE, "numba", raising=False)
    assert resolve_backend("auto").name == "numpy"
    with pytest.raises(ImportError, match="pip install numba"):
        resolve_backend("numba")
    X, y, _ = make_moe_regression(n_samples=100, random_state=0)
    with pytest.raises(ImportError, match="pip install numba"):
        MixtureOfExpertsRegressor(2, backend="numba").fit(X, y)
