"""Whole fits with backend="cupy": resolution, input handling, equality with NumPy fits.

Two devices run the same fit tests:

* ``emulated``: CuPy replaced by the emulator of ``tests/_cupy_emulation.py``
  (device arrays are a NumPy subclass that refuses to mix with host arrays,
  the CUDA kernels run on the host through g++), installed in
  ``sys.modules`` so that ``get_kernels("cupy")`` and the estimators use it
  exactly as they would use CuPy. It also counts host/device transfers;
* ``gpu`` (marked ``gpu``): real CuPy on a CUDA device, skipped unless CuPy
  imports and sees a device.

A fit on the device must equal the fit of the NumPy backend from the same
``random_state`` (the start is drawn on the host from the same rows), to
rtol 1e-8 in float64, as the Numba backend does in ``test_kernels.py``.
"""

import functools
import pickle
import shutil
import sys
import warnings
from contextlib import contextmanager
from types import SimpleNamespace

import _kernel_harness as HARNESS  # tests/, on the path through conftest.py
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning

from mixexp import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor, _base
from mixexp._backend import BACKENDS, as_caller, is_device_array, resolve_backend
from mixexp._init import canonical_rows
from mixexp._kernels import _CACHE
from mixexp.datasets import make_moe_classification, make_moe_regression


EMULATION = HARNESS.load_emulation()


CUPY, NO_GPU_REASON = EMULATION.find_gpu()
requires_gpu = pytest.mark.skipif(CUPY is None, reason=NO_GPU_REASON or "")

# float32 fits: the data's rounding steers EM a little differently (the
# mean log-likelihood, a sum of n terms in float64, stays much closer).
# Measured on an H200 for the 3-class classifier: NumPy -0.4057687 after
# 174 iterations, Numba -0.4057723 (175), CuPy -0.4057760 (176), a relative
# 1.8e-5 apart (float64: the same 177 iterations and value on all three),
# so float32 gets the loose 1e-4 of STYLE.md.
RTOL = {np.float64: 1e-8, np.float32: 1e-3}
LOG_LIKELIHOOD_RTOL = {np.float64: 1e-8, np.float32: 1e-4}
DTYPES = [np.float64, np.float32]


def _quiet(fit, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit(*args, **kwargs)


# ---------------------------------------------------------------------------
# Devices


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    """The emulated cupy module and ``mixexp._kernels._cupy`` loaded on it."""
    if shutil.which("g++") is None:
        pytest.skip("no g++ to run the CUDA source on the host")
    # one thread per launch: the grid itself is tested in test_cupy.py
    fake = EMULATION.emulated_cupy(tmp_path_factory.mktemp("cuda_on_host"), one_thread=True)
    return fake, EMULATION.load_cupy_kernels(fake)


@contextmanager
def _rebuilt_cupy_bundle():
    """``get_kernels("cupy")`` rebuilt inside (from sys.modules); the old bundle restored after."""
    saved = _CACHE.pop("cupy", None)
    try:
        yield
    finally:
        _CACHE.pop("cupy", None)
        if saved is not None:
            _CACHE["cupy"] = saved


@pytest.fixture
def emulated(emulator, monkeypatch):
    """The emulator installed as ``cupy`` for the estimators."""
    fake, module = emulator
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setitem(sys.modules, "mixexp._kernels._cupy", module)
    fake.transfers.clear()
    with _rebuilt_cupy_bundle():
        yield SimpleNamespace(cupy=fake, to_device=fake.asarray, to_host=fake.asnumpy,
                              array_type=fake.ndarray, transfers=fake.transfers)


@pytest.fixture(params=["emulated", pytest.param("gpu", marks=[pytest.mark.gpu, requires_gpu])])
def device(request):
    if request.param == "emulated":
        return request.getfixturevalue("emulated")
    return SimpleNamespace(cupy=CUPY, to_device=CUPY.asarray, to_host=CUPY.asnumpy,
                           array_type=CUPY.ndarray, transfers=None)


@pytest.fixture
def without_cupy(monkeypatch):
    """CuPy made unimportable (whether or not it is installed)."""
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setitem(sys.modules, "mixexp._kernels._cupy", None)
    with _rebuilt_cupy_bundle():
        yield


# ---------------------------------------------------------------------------
# Problems


def regression(n=600, dtype=np.float64):
    X, y, _ = make_moe_regression(n_samples=n, n_features=3, n_experts=3, noise=0.2,
                                  random_state=1)
    return X.astype(dtype), y.astype(dtype)


def classification(n=600, dtype=np.float64):
    X, y, _ = make_moe_classification(n_samples=n, n_features=2, n_experts=3, n_classes=3,
                                      random_state=0)
    return X.astype(dtype), y


ESTIMATORS = {
    "regressor": (lambda **kw: MixtureOfExpertsRegressor(3, n_init=2, random_state=0, **kw),
                  regression),
    # some shrinkage keeps every parameter identified (see test_kernels.py);
    # one start: logistic experts make the emulated fits the slow ones
    "classifier": (lambda **kw: MixtureOfExpertsClassifier(3, alpha=0.1, random_state=0, **kw),
                   classification),
}


@functools.cache
def numpy_fit(kind, dtype=np.float64, n=600):
    """The NumPy backend's fit of a problem (shared by the tests that compare with it)."""
    make, problem = ESTIMATORS[kind]
    return _quiet(make(backend="numpy").fit, *problem(n, dtype))
FITTED = ("gate_coef_", "gate_intercept_", "expert_coef_", "expert_intercept_",
          "log_likelihood_history_", "expert_usage_")


def assert_same_fit(fitted, reference, dtype):
    rtol = RTOL[dtype]
    if dtype == np.float64:
        assert fitted.n_iter_ == reference.n_iter_
    assert fitted.log_likelihood_ == pytest.approx(reference.log_likelihood_,
                                                   rel=LOG_LIKELIHOOD_RTOL[dtype])
    names = FITTED + (("expert_variance_",) if hasattr(reference, "expert_variance_") else ())
    for name in names:
        value = getattr(fitted, name)
        assert type(value) is np.ndarray, (name, type(value))  # fitted attributes: NumPy
        if dtype == np.float64 or not name.endswith("history_"):
            assert_allclose(value, getattr(reference, name), rtol=rtol,
                            atol=rtol * np.abs(getattr(reference, name)).max(), err_msg=name)


def predictions(estimator, X):
    """Every prediction method's output on X."""
    out = [estimator.predict_gate(X), estimator.predict_experts(X)]
    if isinstance(estimator, MixtureOfExpertsRegressor):
        out += list(estimator.predict(X, return_std=True))
    else:
        out += [estimator.predict_proba(X), estimator.predict_log_proba(X), estimator.predict(X)]
    return out


# ---------------------------------------------------------------------------
# Backend resolution and its errors


def test_cupy_is_a_backend():
    assert "cupy" in BACKENDS
    MixtureOfExpertsRegressor(backend="cupy")._validate_params()


def test_explicit_cupy_without_cupy_names_the_gpu_extra(without_cupy):
    with pytest.raises(ImportError, match=r'pip install "mixexp\[gpu\]"'):
        resolve_backend("cupy")
    X, y = regression(50)
    with pytest.raises(ImportError, match=r"mixexp\[gpu\]"):
        MixtureOfExpertsRegressor(2, backend="cupy").fit(X, y)
    # "auto" never fails
    assert resolve_backend("auto", X).name in ("numba", "numpy")


def test_cupy_input_is_recognised_without_importing_cupy(emulated):
    X = emulated.to_device(np.ones((3, 2)))
    assert is_device_array(X)
    assert not is_device_array(np.ones((3, 2)))
    assert not is_device_array([[1.0, 2.0]])
    assert resolve_backend("auto", X).name == "cupy"
    assert resolve_backend("auto", np.ones((3, 2))).name in ("numba", "numpy")
    assert resolve_backend("cupy").name == "cupy"


@pytest.mark.parametrize("failure", ["no device", "driver error"])
def test_cupy_without_a_device_is_a_runtime_error(emulated, monkeypatch, failure):
    def no_driver():
        raise OSError("cudaErrorInsufficientDriver")

    count = (lambda: 0) if failure == "no device" else no_driver
    monkeypatch.setattr(emulated.cupy.cuda.runtime, "getDeviceCount", count)
    with pytest.raises(RuntimeError, match=r"needs a CUDA device.*mixexp\[gpu\]"):
        resolve_backend("cupy")
    X, y = regression(50)
    with pytest.raises(RuntimeError, match="CUDA device"):
        MixtureOfExpertsRegressor(2, backend="cupy").fit(X, y)
    # "auto" never fails, not even given a device array it cannot use
    assert resolve_backend("auto", emulated.to_device(X)).name in ("numba", "numpy")


# ---------------------------------------------------------------------------
# Whole fits: equal to the NumPy backend's


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("kind", sorted(ESTIMATORS))
@pytest.mark.parametrize("input_on", ["device", "host"])
def test_fit_on_the_device_equals_the_numpy_fit(device, kind, dtype, input_on):
    make, problem = ESTIMATORS[kind]
    X, y = problem(dtype=dtype)
    reference = numpy_fit(kind, dtype)
    if input_on == "device":  # CuPy in: "auto" picks the GPU
        X_in, y_in, estimator = device.to_device(X), device.to_device(y), make(backend="auto")
    else:  # NumPy in, GPU asked for
        X_in, y_in, estimator = X, y, make(backend="cupy")
    fitted = _quiet(estimator.fit, X_in, y_in)
    assert_same_fit(fitted, reference, dtype)

    # predictions come back in the input's array type and dtype
    for out, desired in zip(predictions(fitted, X_in), predictions(reference, X), strict=True):
        if input_on == "device":
            assert isinstance(out, device.array_type)
            out = device.to_host(out)
        else:
            assert type(out) is np.ndarray
        if out.dtype.kind == "f":
            assert out.dtype == dtype
            assert_allclose(out, desired, rtol=RTOL[dtype], atol=RTOL[dtype])
        else:
            assert_array_equal(out, desired)
    assert fitted.log_likelihood(X_in, y_in) == pytest.approx(
        reference.log_likelihood(X, y), rel=RTOL[dtype])
    assert fitted.score(X_in, y_in) == pytest.approx(reference.score(X, y), rel=RTOL[dtype])


@pytest.mark.parametrize("options", [
    {"solver": "lbfgs", "max_iter": 30},
    {"solver": "adam", "max_iter": 4},
    {"solver": "adam", "max_iter": 3, "gate_noise": 0.5, "top_k": 2},
    {"gating": "hard"},
    {"top_k": 2},
    {"balance": 0.5},
], ids=["lbfgs", "adam", "noisy-top-k", "hard", "top-k", "balance"])
def test_every_solver_and_gating_mode_runs_on_the_device(device, options):
    X, y = regression(400)
    sample_weight = np.random.default_rng(0).uniform(0.0, 2.0, size=400)
    make = ESTIMATORS["regressor"][0]
    reference = _quiet(make(backend="numpy", **options).fit, X, y, sample_weight)
    fitted = _quiet(make(backend="cupy", **options).fit, device.to_device(X),
                    device.to_device(y), sample_weight=device.to_device(sample_weight))
    assert_same_fit(fitted, reference, np.float64)


def test_many_features_take_bound_steps_on_the_device(device):
    # 4 classes x (60 + 1) parameters per logistic fit: Boehning's bound steps
    # instead of Newton's (see mixexp._logistic)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 60))
    y = (X[:, 0] > 0) + 2 * (X[:, 1] > 0)
    def make(backend):
        return MixtureOfExpertsClassifier(2, max_iter=5, random_state=0, backend=backend)

    reference = _quiet(make("numpy").fit, X, y)
    fitted = _quiet(make("cupy").fit, device.to_device(X), device.to_device(y))
    assert_same_fit(fitted, reference, np.float64)


def test_warm_start_growth_and_partial_fit_on_the_device(device):
    X, y = regression(400)
    X_dev, y_dev = device.to_device(X), device.to_device(y)
    fits = []
    for backend, data in (("numpy", (X, y)), ("cupy", (X_dev, y_dev))):
        est = MixtureOfExpertsRegressor(2, random_state=0, backend=backend).fit(*data)
        fits.append(_quiet(est.set_params(n_experts=3, warm_start=True).fit, *data))
    assert_same_fit(fits[1], fits[0], np.float64)

    streams = []
    for backend, (X_in, y_in) in (("numpy", (X, y)), ("cupy", (X_dev, y_dev))):
        est = MixtureOfExpertsRegressor(3, solver="adam", random_state=0, backend=backend)
        for batch in (slice(0, 200), slice(200, 400)):
            est.partial_fit(X_in[batch], y_in[batch])
        streams.append(est)
    assert_allclose(streams[1].objective_history_, streams[0].objective_history_, rtol=1e-8)
    assert_allclose(streams[1].gate_coef_, streams[0].gate_coef_, rtol=1e-8, atol=1e-10)

    X, y = classification(400)
    streams = []
    for backend, to_device in (("numpy", np.asarray), ("cupy", device.to_device)):
        est = MixtureOfExpertsClassifier(2, solver="adam", random_state=0, backend=backend)
        for batch in (slice(0, 200), slice(200, 400)):
            est.partial_fit(to_device(X[batch]), to_device(y[batch]),
                            classes=to_device(np.arange(3)))
        streams.append(est)
    assert type(streams[1].classes_) is np.ndarray
    assert_allclose(streams[1].expert_coef_, streams[0].expert_coef_, rtol=1e-8, atol=1e-10)


def test_classifier_on_the_device_with_host_string_labels(device):
    X, y = classification()
    names = np.array(["high", "low", "mid"])  # sorted: the same classes_ order as y
    reference = numpy_fit("classifier")
    fitted = _quiet(ESTIMATORS["classifier"][0](backend="auto").fit, device.to_device(X),
                    names[y])
    assert_same_fit(fitted, reference, np.float64)
    predicted = fitted.predict(device.to_device(X))
    assert type(predicted) is np.ndarray  # CuPy cannot hold strings
    assert_array_equal(predicted, names[reference.predict(X)])


def test_model_fitted_on_the_device_predicts_on_the_cpu_after_pickling(device):
    X, y = regression(300)
    est = MixtureOfExpertsRegressor(3, random_state=0, backend="cupy").fit(
        device.to_device(X), device.to_device(y))
    on_device = device.to_host(est.predict(device.to_device(X)))
    restored = pickle.loads(pickle.dumps(est)).set_params(backend="numpy")
    assert_allclose(restored.predict(X), on_device, rtol=1e-12, atol=1e-12)
    # a CPU backend takes CuPy input too (moved to the host), and answers in kind
    out = restored.predict(device.to_device(X))
    assert isinstance(out, device.array_type)
    assert_allclose(device.to_host(out), on_device, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------
# What crosses between host and device (the emulator counts transfers)


def _largest(transfers, direction):
    sizes = [int(np.prod(shape)) for way, shape in transfers if way == direction]
    return max(sizes, default=0)


@pytest.mark.parametrize("kind", sorted(ESTIMATORS))
def test_device_input_never_crosses_to_the_host(emulated, monkeypatch, kind):
    # a small init subsample: the only rows that may cross are those
    monkeypatch.setattr(_base, "_MAX_INIT_ROWS", 150)
    make, problem = ESTIMATORS[kind]
    X, y = problem(1000)
    reference = _quiet(make(backend="numpy").fit, X, y)
    X_dev, y_dev = emulated.to_device(X), emulated.to_device(y)
    emulated.transfers.clear()
    fitted = _quiet(make(backend="cupy").fit, X_dev, y_dev)
    predictions(fitted, X_dev)
    fitted.log_likelihood(X_dev, y_dev)
    # the init rows (~150 of 1000, with their targets) are the largest host copy
    assert 0 < _largest(emulated.transfers, "to_host") <= 250 * (X.shape[1] + 3)
    assert _largest(emulated.transfers, "to_device") <= 250 * 3
    assert_same_fit(fitted, reference, np.float64)


def test_host_input_crosses_to_the_device_once(emulated, monkeypatch):
    monkeypatch.setattr(_base, "_MAX_INIT_ROWS", 150)  # no init rows of size n
    X, y = regression(1000)
    est = _quiet(MixtureOfExpertsRegressor(3, random_state=0, backend="cupy").fit, X, y)
    big = [shape for way, shape in emulated.transfers if shape and shape[0] == 1000]
    # standardised X, the targets and the sample weights, once each
    assert sorted(big) == [(1000,), (1000, 1), (1000, 3)]
    assert all(way == "to_device" for way, shape in emulated.transfers
               if shape and shape[0] == 1000)
    emulated.transfers.clear()
    assert type(est.predict(X)) is np.ndarray
    assert sorted(shape for _, shape in emulated.transfers if shape and shape[0] == 1000) == [
        (1000,), (1000, 3)]  # X there, the prediction back


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_init_rows_chosen_on_the_device_equal_the_host_ones(device, monkeypatch, dtype):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 3)).astype(dtype)[np.arange(600) % 450]  # repeated rows
    X[::7, 1] = -0.0  # hashed as 0.0
    Y = rng.normal(size=(600, 2)).astype(dtype)[np.arange(600) % 450]
    weight = rng.uniform(0.0, 2.0, size=600)
    weight[::5] = 0.0
    index, summed = canonical_rows(device.to_device(X), device.to_device(Y),
                                   device.to_device(weight), 100)
    desired_index, desired_weight = canonical_rows(X, Y, weight, 100)
    assert type(index) is np.ndarray and type(summed) is np.ndarray
    assert 50 < index.size < 150
    assert_array_equal(index, desired_index)
    assert_array_equal(summed, desired_weight)


# ---------------------------------------------------------------------------
# Input checks on the device: the host path's messages


BAD_INPUTS = {
    "nan": (lambda X, y, w: (np.where(np.arange(X.size).reshape(X.shape) == 4, np.nan, X), y, w),
            "Input X contains NaN"),
    "inf": (lambda X, y, w: (np.where(np.arange(X.size).reshape(X.shape) == 4, np.inf, X), y, w),
            "Input X contains infinity"),
    "1-d": (lambda X, y, w: (X[:, 0], y, w), "Expected 2D array"),
    "no rows": (lambda X, y, w: (X[:0], y[:0], None), "0 sample"),
    "lengths": (lambda X, y, w: (X, y[:-1], w), "inconsistent numbers of samples"),
    "y nan": (lambda X, y, w: (X, np.where(np.arange(y.size) == 3, np.nan, y), w),
              "Input y contains NaN"),
    "negative weight": (lambda X, y, w: (X, y, np.where(np.arange(w.size) == 2, -1.0, w)),
                        "Negative values in data passed to"),
    "weight shape": (lambda X, y, w: (X, y, w[:-1]), r"sample_weight.shape == \(49,\)"),
    "huge": (lambda X, y, w: (X * 1e200, y, w), "overflow when squared"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_device_input_is_refused_as_host_input_is(device, case):
    X, y = regression(50)
    make_bad, message = BAD_INPUTS[case]
    X_bad, y_bad, w_bad = make_bad(X, y, np.ones(50))
    est = MixtureOfExpertsRegressor(2, random_state=0)
    with pytest.raises(ValueError, match=message):
        est.fit(X_bad, y_bad, sample_weight=w_bad)
    on_device = [None if a is None else device.to_device(a) for a in (X_bad, y_bad, w_bad)]
    with pytest.raises(ValueError, match=message):
        est.fit(*on_device[:2], sample_weight=on_device[2])


def test_device_input_checks_the_fitted_features_and_labels(device):
    X, y = classification(200)
    est = _quiet(MixtureOfExpertsClassifier(2, random_state=0).fit, device.to_device(X),
                 device.to_device(y))
    assert est.n_features_in_ == 2 and type(est.classes_) is np.ndarray
    with pytest.raises(ValueError, match="X has 3 features, but MixtureOfExpertsClassifier is "
                                         "expecting 2 features"):
        est.predict(device.to_device(np.ones((4, 3))))
    with pytest.raises(ValueError, match="labels not seen during fit"):
        est.predict_responsibilities(device.to_device(X), device.to_device(y + 7))
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        MixtureOfExpertsClassifier(2).fit(device.to_device(X), device.to_device(y + 0.5))
    with pytest.raises(ValueError, match="at least 2 classes"):
        MixtureOfExpertsClassifier(2).fit(device.to_device(X),
                                          device.to_device(np.zeros(200)))


def test_outputs_follow_the_caller(device):
    on_device = device.to_device(np.ones(3))
    assert as_caller(np.ones(3), on_device).__class__ is device.array_type
    assert type(as_caller(on_device, np.ones(3))) is np.ndarray
    host = np.ones(3)
    assert as_caller(host, [1.0, 2.0]) is host


@pytest.mark.parametrize("kind", ["regressor", "classifier"])
def test_hierarchical_fit_on_the_device_equals_the_numpy_fit(device, kind):
    from mixexp import HierarchicalMixtureOfExpertsClassifier, HierarchicalMixtureOfExpertsRegressor

    if kind == "regressor":
        X, y = regression(300)
        make = HierarchicalMixtureOfExpertsRegressor
    else:
        X, y = classification(300)
        make = HierarchicalMixtureOfExpertsClassifier
    settings = dict(branching=(2, 2), max_iter=15, random_state=0)
    reference = _quiet(make(backend="numpy", **settings).fit, X, y)
    fitted = _quiet(make(**settings).fit, device.to_device(X), device.to_device(y))
    assert fitted.n_iter_ == reference.n_iter_
    assert fitted.log_likelihood_ == pytest.approx(reference.log_likelihood_, rel=1e-8)
    for level in range(2):
        assert_allclose(fitted.node_coef_[level], reference.node_coef_[level], rtol=1e-6,
                        atol=1e-8)
    gates = fitted.predict_node_gates(device.to_device(X))
    assert all(isinstance(g, device.array_type) for g in gates)
    assert_allclose(device.to_host(fitted.predict_gate(device.to_device(X))),
                    reference.predict_gate(X), rtol=1e-6, atol=1e-8)

# ---------------------------------------------------------------------------
# gate_features / expert_features, Poisson experts


def test_selected_columns_on_the_device_equal_the_numpy_fit(device):
    X, y = regression()
    kwargs = dict(gate_features=[2], expert_features=[0, 1])
    reference = _quiet(ESTIMATORS["regressor"][0](backend="numpy", **kwargs).fit, X, y)
    fitted = _quiet(ESTIMATORS["regressor"][0](backend="cupy", **kwargs).fit,
                    device.to_device(X), device.to_device(y))
    assert_same_fit(fitted, reference, np.float64)
    for a, b in zip(predictions(fitted, device.to_device(X)), predictions(reference, X),
                    strict=True):
        assert isinstance(a, device.array_type)
        assert_allclose(device.to_host(a), b, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
def test_poisson_experts_on_the_device_equal_the_numpy_fit(device, dtype):
    X, y = regression(dtype=dtype)
    counts = np.random.default_rng(0).poisson(np.exp(0.3 * y - 0.3 * y.min())).astype(dtype)
    kwargs = dict(expert="poisson", gate_features=[2], expert_features=[0, 1])
    reference = _quiet(ESTIMATORS["regressor"][0](backend="numpy", **kwargs).fit, X, counts)
    fitted = _quiet(ESTIMATORS["regressor"][0](backend="cupy", **kwargs).fit,
                    device.to_device(X), device.to_device(counts))
    assert_same_fit(fitted, reference, dtype)
    for a, b in zip(predictions(fitted, device.to_device(X)), predictions(reference, X),
                    strict=True):
        assert isinstance(a, device.array_type)
        assert_allclose(device.to_host(a), b, rtol=RTOL[dtype], atol=RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_student_t_experts_on_the_device_equal_the_numpy_fit(device, dtype):
    X, y = regression(dtype=dtype)
    y = y.copy()
    y[::25] += 20.0 * np.std(y)  # gross outliers, which the t experts down-weight
    kwargs = dict(expert="student_t")
    reference = _quiet(ESTIMATORS["regressor"][0](backend="numpy", **kwargs).fit, X, y)
    fitted = _quiet(ESTIMATORS["regressor"][0](backend="cupy", **kwargs).fit,
                    device.to_device(X), device.to_device(y))
    assert_same_fit(fitted, reference, dtype)
    assert_allclose(fitted.expert_dof_, reference.expert_dof_, rtol=RTOL[dtype] * 10)
    for a, b in zip(predictions(fitted, device.to_device(X)), predictions(reference, X),
                    strict=True):
        assert isinstance(a, device.array_type)
        assert_allclose(device.to_host(a), b, rtol=RTOL[dtype], atol=RTOL[dtype])
