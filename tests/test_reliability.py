"""Reliability: bad input, degenerate data, reproducibility, persistence."""

import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal
from sklearn.exceptions import ConvergenceWarning

from mixexp import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from mixexp._testing import check_fit
from mixexp.datasets import make_moe_classification, make_moe_regression

ESTIMATORS = [MixtureOfExpertsRegressor, MixtureOfExpertsClassifier]


def small_problem(estimator_class, n=40, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 2))
    y = rng.normal(size=n) if estimator_class is MixtureOfExpertsRegressor else rng.randint(0, 2, n)
    return X, y


def with_value(array, index, value):
    array = np.array(array, dtype=float)
    array[index] = value
    return array


# ---- bad input: a clear ValueError that names the problem -------------------
@pytest.mark.parametrize("estimator_class", ESTIMATORS)
@pytest.mark.parametrize(
    "make_args, match",
    [
        (lambda X, y: (with_value(X, (0, 0), np.nan), y, None), "Input X contains NaN"),
        (lambda X, y: (with_value(X, (1, 1), np.inf), y, None), "Input X contains infinity"),
        (lambda X, y: (X, y, with_value(np.ones(len(y)), 3, np.nan)), "sample_weight contains NaN"),
        (lambda X, y: (X, y, with_value(np.ones(len(y)), 3, -1.0)), "Negative values"),
        (lambda X, y: (X, y, np.zeros(len(y))), "at least one non-zero"),
        (lambda X, y: (X[:0], y[:0], None), "0 sample"),
        (lambda X, y: (X, y[:-3], None), "inconsistent numbers of samples"),
        (lambda X, y: (X, y, np.ones(len(y) + 1)), "sample_weight.shape"),
    ],
    ids=["nan-X", "inf-X", "nan-weight", "negative-weight", "zero-weights", "empty",
         "length-mismatch", "weight-length"],
)
def test_bad_input_raises_clear_error(estimator_class, make_args, match):
    X, y = small_problem(estimator_class)
    X_bad, y_bad, weights = make_args(X, y)
    with pytest.raises(ValueError, match=match):
        estimator_class(random_state=0).fit(X_bad, y_bad, sample_weight=weights)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_values_that_overflow_when_squared_are_refused(estimator_class):
    X, y = small_problem(estimator_class)
    with pytest.raises(ValueError, match="X has values as large as 1e.200.*Rescale X"):
        estimator_class().fit(with_value(X, (0, 0), 1e200), y)


def test_huge_regression_target_is_refused():
    X, y = small_problem(MixtureOfExpertsRegressor)
    with pytest.raises(ValueError, match="y has values as large as .*Rescale y"):
        MixtureOfExpertsRegressor().fit(X, y * 1e200)
    # float32 data: the limit is float32's, checked before y is cast to it
    with pytest.raises(ValueError, match="with float32 data, values beyond 1e.18"):
        MixtureOfExpertsRegressor().fit(X.astype(np.float32), y * 1e30)


def test_nan_target_is_refused():
    X, y = small_problem(MixtureOfExpertsRegressor)
    with pytest.raises(ValueError, match="Input y contains NaN"):
        MixtureOfExpertsRegressor().fit(X, with_value(y, 0, np.nan))


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_predict_with_wrong_number_of_features_is_refused(estimator_class):
    X, y = small_problem(estimator_class)
    est = estimator_class(2, random_state=0).fit(X, y)
    for method in ("predict", "predict_gate"):
        with pytest.raises(ValueError, match="X has 3 features, but .* is expecting 2"):
            getattr(est, method)(np.ones((4, 3)))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        est.predict_responsibilities(X, y[:5])


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
@pytest.mark.parametrize("params", [{"n_experts": 0}, {"alpha": -1.0}, {"init_params": "pca"},
                                    {"max_iter": 0}, {"tol": -1.0}, {"n_init": 0},
                                    {"backend": "fortran"}])
def test_invalid_parameters_are_refused(estimator_class, params):
    X, y = small_problem(estimator_class)
    with pytest.raises(ValueError, match=f"'{next(iter(params))}' parameter"):
        estimator_class(**params).fit(X, y)


def test_targets_of_the_wrong_kind_are_refused():
    X, _ = small_problem(MixtureOfExpertsRegressor)
    labels = np.array(["cat", "dog"] * 20)
    with pytest.raises(ValueError, match="needs a numeric target.*MixtureOfExpertsClassifier"):
        MixtureOfExpertsRegressor().fit(X, labels)
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        MixtureOfExpertsClassifier().fit(X, np.linspace(0, 1, 40))
    with pytest.raises(ValueError, match="only one class: 'cat'"):
        MixtureOfExpertsClassifier().fit(X, np.array(["cat"] * 40))


# ---- degenerate data: fitted, finite, never NaN -------------------------------
def degenerate_cases():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 3))
    y = X @ [1.0, -2.0, 0.5] + 0.1 * rng.normal(size=60)
    labels = (X[:, 0] > 0).astype(int)
    return {
        "constant-y": (MixtureOfExpertsRegressor, X, np.full(60, 4.2)),
        "repeated-rows": (MixtureOfExpertsRegressor, np.repeat(X[:3], 20, axis=0),
                          np.repeat(y[:3], 20)),
        "fewer-samples-than-parameters": (MixtureOfExpertsRegressor, rng.normal(size=(5, 10)),
                                          rng.normal(size=5)),
        "scales-1e-8-to-1e8": (MixtureOfExpertsRegressor, X * [1e-8, 1.0, 1e8], y),
        "collinear": (MixtureOfExpertsRegressor, np.column_stack([X, 2 * X[:, 0]]), y),
        "float32": (MixtureOfExpertsRegressor, X.astype(np.float32), y.astype(np.float32)),
        "more-experts-than-samples": (MixtureOfExpertsRegressor, X[:4], y[:4]),
        "huge-target": (MixtureOfExpertsRegressor, X, y * 1e120),
        "separable-classes": (MixtureOfExpertsClassifier, X, labels),
        "classifier-scales": (MixtureOfExpertsClassifier, X * [1e-8, 1.0, 1e8], labels),
        "classifier-more-experts-than-samples": (MixtureOfExpertsClassifier, X[:4],
                                                 np.array([0, 1, 0, 1])),
    }


@pytest.mark.parametrize("case", sorted(degenerate_cases()))
def test_degenerate_data_is_fitted_with_finite_results(case):
    estimator_class, X, y = degenerate_cases()[case]
    n_experts = 6 if "more-experts" in case else 3
    outcome, detail = check_fit(estimator_class(n_experts, n_init=2, random_state=0), X, y)
    assert outcome == "fitted", detail


def test_constant_target_is_predicted_exactly():
    X, _ = small_problem(MixtureOfExpertsRegressor)
    est = MixtureOfExpertsRegressor(2, random_state=0).fit(X, np.full(40, 4.2))
    mean, std = est.predict(X, return_std=True)
    np.testing.assert_allclose(mean, 4.2, rtol=1e-6)
    assert np.all(std < 1e-2)


# ---- vanished experts: re-initialised when that helps, else a warning ---------
def three_regimes(n=300, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.uniform(-3, 3, size=(n, 1))
    slopes = np.select([X[:, 0] < -1, X[:, 0] < 1], [-2.0, 0.0], 3.0)
    return X, slopes * X[:, 0] + 0.1 * rng.normal(size=n)


def kill_expert(est, k):
    """Give expert k a gate so low that no sample is attributed to it."""
    # the public attributes seed a warm start, the internal ones predict
    for coef, intercept in [(est.gate_coef_, est.gate_intercept_),
                            (est._params["gate"]["coef"], est._params["gate"]["intercept"])]:
        coef[k] = 0.0
        intercept[k] = intercept.max() - 1e4
    return est


def test_vanished_expert_is_reinitialised_by_em():
    X, y = three_regimes()
    est = MixtureOfExpertsRegressor(3, n_init=3, random_state=0).fit(X, y)
    full = est.log_likelihood_
    two = MixtureOfExpertsRegressor(2, n_init=3, random_state=0).fit(X, y).log_likelihood_
    assert full > two + 0.5  # the third expert matters on this data
    kill_expert(est, 1).set_params(warm_start=True)
    assert est.predict_gate(X)[:, 1].max() < 1e-300  # it has vanished
    est.fit(X, y)  # EM revives it (and the fit stays monotone: conftest checks)
    assert est.expert_usage_[1] > 0.1
    assert est.log_likelihood_ > two + 0.5
    assert est.log_likelihood_ == pytest.approx(full, abs=1e-3)


def test_failed_revival_is_rejected_and_reported(monkeypatch):
    from mixexp._parameters import copy_part
    from mixexp._solvers import _em

    def useless_proposal(model, kernels, data, params, k, rng):
        proposal = copy_part(params)
        proposal["experts"]["intercept"] += 100.0  # every expert far off
        return proposal

    monkeypatch.setattr(_em, "replace_expert", useless_proposal)
    X, y = three_regimes()
    est = MixtureOfExpertsRegressor(3, n_init=3, random_state=0).fit(X, y)
    kill_expert(est, 2).set_params(warm_start=True)
    with pytest.warns(ConvergenceWarning, match=r"1 of 3 experts \(indices \[2\]\) receive no "
                      r"share.*EM's attempt to re-initialise them did not improve"):
        est.fit(X, y)
    assert est.expert_usage_[2] < 1e-8
    assert np.all(np.isfinite(est.predict(X)))


def test_gradient_solvers_report_vanished_experts():
    X, y = three_regimes()
    est = MixtureOfExpertsRegressor(3, solver="lbfgs", random_state=0).fit(X, y)
    kill_expert(est, 0).set_params(warm_start=True)
    with pytest.warns(ConvergenceWarning, match="only solver='em' re-initialises"):
        est.fit(X, y)


# ---- reproducibility, immutability, persistence -----------------------------
@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_same_random_state_is_bit_identical_and_inputs_untouched(estimator_class):
    X, y = small_problem(estimator_class, n=200, seed=1)
    weights = np.random.RandomState(2).randint(0, 3, 200).astype(float)
    copies = X.copy(), y.copy(), weights.copy()
    fits = [estimator_class(3, n_init=3, init_params="random", random_state=7)
            .fit(X, y, sample_weight=weights) for _ in range(2)]
    for name in ("gate_coef_", "gate_intercept_", "expert_coef_", "expert_intercept_"):
        assert_array_equal(getattr(fits[0], name), getattr(fits[1], name))
    assert_array_equal(X, copies[0])
    assert_array_equal(y, copies[1])
    assert_array_equal(weights, copies[2])


def fitted_models():
    X, y, _ = make_moe_regression(n_samples=300, random_state=0)
    Xc, yc, _ = make_moe_classification(n_samples=300, random_state=0)
    return [
        (MixtureOfExpertsRegressor(3, n_init=2, random_state=0).fit(X, y), X, "predict"),
        (MixtureOfExpertsClassifier(2, n_init=2, random_state=0).fit(Xc, yc), Xc,
         "predict_proba"),
    ]


@pytest.mark.parametrize("index", [0, 1], ids=["regressor", "classifier"])
def test_pickle_round_trip(index):
    est, X, method = fitted_models()[index]
    restored = pickle.loads(pickle.dumps(est))
    assert_array_equal(getattr(restored, method)(X), getattr(est, method)(X))
    assert_array_equal(restored.predict_gate(X), est.predict_gate(X))


# The types skops must be told to trust, as documented in README.md: only the
# estimator's own class (a fitted model stores arrays and hyper-parameters).
SKOPS_TRUSTED_TYPES = {
    "regressor": ["mixexp._regressor.MixtureOfExpertsRegressor"],
    "classifier": ["mixexp._classifier.MixtureOfExpertsClassifier"],
}


@pytest.mark.parametrize("index, kind", [(0, "regressor"), (1, "classifier")])
def test_skops_round_trip_with_documented_trusted_types(index, kind):
    sio = pytest.importorskip("skops.io")
    est, X, method = fitted_models()[index]
    payload = sio.dumps(est)
    assert sorted(sio.get_untrusted_types(data=payload)) == SKOPS_TRUSTED_TYPES[kind]
    restored = sio.loads(payload, trusted=SKOPS_TRUSTED_TYPES[kind])
    assert_array_equal(getattr(restored, method)(X), getattr(est, method)(X))


# ---- property-based: any data either is refused clearly or fits soundly ------
@st.composite
def messy_problem(draw):
    n = draw(st.integers(1, 30))
    d = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = rng.standard_normal((n, d)) * 10.0 ** np.array(
        draw(st.lists(st.integers(-8, 8), min_size=d, max_size=d)))
    n_distinct = draw(st.integers(1, n))
    X = X[np.arange(n) % n_distinct]  # duplicated rows
    classify = draw(st.booleans())
    if classify:
        y = rng.integers(0, draw(st.integers(2, 4)), size=n)
    else:
        y = rng.standard_normal(n) * 10.0 ** draw(st.integers(-6, 6))
        if draw(st.booleans()):
            y = np.full(n, y[0])
    n_experts = draw(st.integers(1, n + 3))
    estimator_class = MixtureOfExpertsClassifier if classify else MixtureOfExpertsRegressor
    return estimator_class(n_experts, max_iter=25, random_state=0), X, y


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=messy_problem())
def test_any_data_is_refused_clearly_or_fitted_soundly(problem):
    estimator, X, y = problem
    X_before, y_before = X.copy(), y.copy()
    outcome, detail = check_fit(estimator, X, y)  # raises on any unsound outcome
    if outcome == "refused":
        assert "class" in detail  # the only refusal here: a single class
    assert_array_equal(X, X_before)
    assert_array_equal(y, y_before)


def test_skops_round_trip_keeps_adams_state_for_partial_fit():
    # Adam's state (moments, step count, generator, coordinates' anchor) is
    # stored as arrays and numbers: a restored model continues exactly
    sio = pytest.importorskip("skops.io")
    X, y, _ = make_moe_regression(n_samples=400, random_state=0)
    est = MixtureOfExpertsRegressor(3, solver="adam", shuffle=True, random_state=0)
    est.partial_fit(X[:200], y[:200])
    payload = sio.dumps(est)
    assert sio.get_untrusted_types(data=payload) == SKOPS_TRUSTED_TYPES["regressor"]
    restored = sio.loads(payload, trusted=SKOPS_TRUSTED_TYPES["regressor"])
    est.partial_fit(X[200:], y[200:])
    restored.partial_fit(X[200:], y[200:])
    assert_array_equal(restored.predict(X), est.predict(X))
    assert restored.n_iter_ == est.n_iter_ == 2
