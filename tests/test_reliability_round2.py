"""Reliability, round 2 (issue 17): parameters, extreme inputs, threads, plots, scorers."""

import copy
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from _predictive_std import predictive_std, user_penalties

from mixexp import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor

ESTIMATORS = [MixtureOfExpertsRegressor, MixtureOfExpertsClassifier]
INTEGER_PARAMETERS = ["n_experts", "top_k", "batch_size", "n_iter_no_change", "max_iter",
                      "n_init"]


def small_problem(estimator_class, n=40, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 2))
    y = rng.normal(size=n) if estimator_class is MixtureOfExpertsRegressor else rng.randint(0, 2, n)
    return X, y


# ---- integer parameters refuse booleans ------------------------------------
@pytest.mark.parametrize("estimator_class", ESTIMATORS)
@pytest.mark.parametrize("name", INTEGER_PARAMETERS)
@pytest.mark.parametrize("value", [True, False, np.True_])
def test_boolean_integer_parameter_is_refused_by_name(estimator_class, name, value):
    # bool is an Integral in Python, so scikit-learn's Interval(Integral) would let it in
    X, y = small_problem(estimator_class)
    with pytest.raises(ValueError, match=rf"'{name}' parameter of {estimator_class.__name__} "
                                         r"must be an int .*\(not a bool\)"):
        estimator_class(**{name: value}).fit(X, y)


def test_numpy_integer_parameters_are_still_accepted():
    X, y = small_problem(MixtureOfExpertsRegressor)
    est = MixtureOfExpertsRegressor(n_experts=np.int64(1), max_iter=np.int32(50), n_init=1)
    assert est.fit(X, y).gate_intercept_.shape == (1,)


# ---- predictive std far outside the training range ---------------------------
@pytest.fixture(scope="module")
def fitted_regressor():
    from mixexp.datasets import load_motorcycle

    X, y = load_motorcycle(return_X_y=True)
    # (the figures below were measured at alpha=1e-4, the default before "auto", whose
    # GCV shrinks one of these experts flat; test_auto_penalty checks "auto")
    return MixtureOfExpertsRegressor(n_experts=3, alpha=1e-4, random_state=0).fit(X, y), X, y


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("value", [1e10, 1e100, 1e150, 1e200, 1e300, -1e150])
def test_std_far_outside_the_training_range_grows_with_the_distance(
    fitted_regressor, backend, value
):
    # E[y^2] - mean^2 cancelled to 0 (1e10 already lost digits) and overflowed
    # to inf - inf = NaN with a RuntimeWarning (an error in this suite). Then it
    # stayed at the owning expert's noise however far out: now the owner's line
    # is uncertain there, sigma sqrt(x' A^-1 x) ~ |x| sigma sqrt((A^-1)_00)
    est = copy.deepcopy(fitted_regressor[0]).set_params(backend=backend)
    X_train, y_train = fitted_regressor[1], fitted_regressor[2]
    X = np.array([[value]])
    mean, std = est.predict(X, return_std=True)
    owner = est.predict_gate(X).argmax(axis=1)
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(std))
    # sqrt(x' A^-1 x) = |x| sqrt((A^-1)_00) + O(1): the owner's A from the training rows
    unit = np.column_stack([np.eye(1), np.zeros(1)])
    resp = est.predict_responsibilities(X_train, y_train)[:, owner[0]]
    design = np.column_stack([X_train, np.ones(len(X_train))])
    precision = (design * resp[:, None]).T @ design
    precision[0, 0] += user_penalties(est, X_train)[owner[0], 0]
    per_unit = np.sqrt(unit @ np.linalg.solve(precision, unit.T))[0, 0]
    np.testing.assert_allclose(std, abs(value) * np.sqrt(est.expert_variance_[owner]) * per_unit,
                               rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_std_is_the_mixture_of_prediction_intervals_on_ordinary_input(fitted_regressor, dtype):
    est, X, y = fitted_regressor
    mean, std = est.predict(X.astype(dtype), return_std=True)
    assert std.dtype == dtype
    np.testing.assert_allclose(std, predictive_std(est, X, y, X),
                               rtol=1e-9 if dtype == np.float64 else 1e-5)


# ---- plots follow the fitted model, not a parameter set after the fit -------
@pytest.mark.parametrize("new_n_experts", [1, 2, 12])
def test_plots_use_the_fitted_number_of_experts(fitted_regressor, new_n_experts):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mixexp.plotting import expert_colors, plot_experts, plot_gate

    fitted, X, _ = fitted_regressor
    est = copy.deepcopy(fitted)
    est.set_params(n_experts=new_n_experts)  # refits nothing: the model keeps 3 experts
    try:
        gate_lines = plot_gate(est, X).get_lines()
        expert_lines = [line for line in plot_experts(est, X).get_lines()
                        if line.get_linestyle() == "--"]
        for lines in (gate_lines, expert_lines):
            assert len(lines) == 3
            # the colours of a 3-expert model, as in every other plot of it
            np.testing.assert_allclose([matplotlib.colors.to_rgba(line.get_color())
                                        for line in lines], expert_colors(3))
    finally:
        plt.close("all")


def test_plot_gate_on_a_plane_after_set_params(fitted_regressor):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mixexp.datasets import make_moe_classification
    from mixexp.plotting import plot_gate

    X, y, _ = make_moe_classification(n_samples=200, random_state=0)
    est = MixtureOfExpertsClassifier(n_experts=3, random_state=0).fit(X, y)
    try:
        ax = plot_gate(est.set_params(n_experts=1), X)
        assert len(ax.get_legend().get_texts()) == 3
    finally:
        plt.close("all")


# ---- generators refuse parameters that would give NaN or broken data --------
@pytest.mark.parametrize(
    "name, value",
    [("noise", np.nan), ("noise", np.inf), ("noise", -0.1), ("noise", 0.0), ("noise", 1e200),
     ("gate_strength", np.nan), ("gate_strength", np.inf), ("gate_strength", -1.0),
     ("n_samples", 0), ("n_samples", True), ("n_samples", 10.0), ("n_features", 0),
     ("n_experts", np.nan), ("random_state", "seed")],
)
def test_make_moe_regression_refuses_bad_parameters_by_name(name, value):
    from mixexp.datasets import make_moe_regression

    with pytest.raises(ValueError, match=f"'{name}' parameter of make_moe_regression"):
        make_moe_regression(**{"n_samples": 20, name: value})


@pytest.mark.parametrize(
    "name, value",
    [("class_strength", np.nan), ("class_strength", np.inf), ("class_strength", -2.0),
     ("gate_strength", np.nan), ("n_classes", 1), ("n_classes", 2.5), ("n_classes", True),
     ("n_experts", 0)],
)
def test_make_moe_classification_refuses_bad_parameters_by_name(name, value):
    from mixexp.datasets import make_moe_classification

    with pytest.raises(ValueError, match=f"'{name}' parameter of make_moe_classification"):
        make_moe_classification(**{"n_samples": 20, name: value})


def test_generators_accept_numpy_scalars_and_zero_strengths():
    from mixexp.datasets import make_moe_classification, make_moe_regression

    X, y, truth = make_moe_regression(np.int64(30), noise=np.float32(0.5), gate_strength=0,
                                      random_state=0)
    assert np.all(np.isfinite(y)) and np.all(truth.gate_coef == 0)
    X, y, truth = make_moe_classification(30, n_classes=np.int64(3), class_strength=0.0,
                                          random_state=0)
    assert set(np.unique(y)) <= {0, 1, 2} and np.all(truth.expert_coef == 0)


# ---- the per-call BLAS limit under threads -----------------------------------
def _blas_threads():
    from threadpoolctl import threadpool_info

    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]


def _in_a_thread(function):
    # threadpoolctl >= 3.6 gives control of OpenBLAS's limit to the thread that
    # set it while that thread lives: set it from one that ends at once
    thread = threading.Thread(target=function)
    thread.start()
    thread.join()


@pytest.fixture
def blas_at_three_threads():
    from threadpoolctl import threadpool_limits

    if not _blas_threads():
        pytest.skip("no BLAS library that threadpoolctl can limit")
    original = []
    _in_a_thread(lambda: original.append(threadpool_limits(limits=3, user_api="blas")))
    if set(_blas_threads()) != {3}:
        pytest.skip("this BLAS cannot be set to 3 threads")
    yield
    _in_a_thread(original[0].restore_original_limits)


def test_concurrent_predictions_leave_the_blas_limit_as_they_found_it(
    fitted_regressor, blas_at_three_threads
):
    est, X, _ = fitted_regressor
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: est.predict(X, return_std=True)[1], range(200)))
    assert _blas_threads() and set(_blas_threads()) == {3}
    np.testing.assert_array_equal(results[0], results[-1])


def test_overlapping_calls_keep_blas_single_threaded_until_the_last_ends(
    blas_at_three_threads
):
    from mixexp._backend import single_threaded_blas

    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    @single_threaded_blas
    def first():
        first_in.set()
        second_in.wait(10)
        seen["first"] = set(_blas_threads())

    @single_threaded_blas
    def second():
        second_in.set()
        first_out.wait(10)  # the first call has ended: this one still runs single-threaded
        seen["second"] = set(_blas_threads())

    one = threading.Thread(target=first)
    other = threading.Thread(target=second)
    one.start()
    first_in.wait(10)
    other.start()
    one.join()
    first_out.set()
    other.join()
    assert seen == {"first": {1}, "second": {1}}
    assert set(_blas_threads()) == {3}


# ---- held-out log-likelihood scorer, and the mixture behind a Pipeline --------
def test_log_likelihood_scorer_on_an_estimator_and_in_a_pipeline(fitted_regressor):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mixexp.metrics import log_likelihood_scorer, unwrap_pipeline

    est, X, _ = fitted_regressor
    y = est.predict(X) + np.linspace(-1, 1, len(X))
    assert log_likelihood_scorer(est, X, y) == est.log_likelihood(X, y)
    pipe = make_pipeline(StandardScaler(), MixtureOfExpertsRegressor(n_experts=2,
                                                                     random_state=0))
    pipe.fit(X, y)
    Xt = pipe[:-1].transform(X)
    assert log_likelihood_scorer(pipe, X, y) == pipe[-1].log_likelihood(Xt, y)
    weights = np.arange(len(X), dtype=float)
    assert (log_likelihood_scorer(pipe, X, y, sample_weight=weights)
            == pipe[-1].log_likelihood(Xt, y, sample_weight=weights))
    # bic, aic and predict_gate through the Pipeline
    model, Xt_unwrapped = unwrap_pipeline(pipe, X)
    assert model is pipe[-1]
    np.testing.assert_array_equal(Xt_unwrapped, Xt)
    assert model.bic(Xt_unwrapped, y) == pipe[-1].bic(Xt, y)
    # nested Pipelines, and a bare estimator
    nested = make_pipeline(make_pipeline(StandardScaler()), pipe).fit(X, y)
    assert log_likelihood_scorer(nested, X, y) == pytest.approx(pipe[-1].log_likelihood(Xt, y))
    assert unwrap_pipeline(est, X) == (est, X)


def test_log_likelihood_scorer_in_grid_search_over_a_pipeline():
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mixexp.datasets import make_moe_regression
    from mixexp.metrics import log_likelihood_scorer, unwrap_pipeline

    X, y, _ = make_moe_regression(n_samples=200, n_features=1, n_experts=2, noise=0.2,
                                  random_state=0)
    pipe = make_pipeline(StandardScaler(), MixtureOfExpertsRegressor(random_state=0))
    search = GridSearchCV(
        pipe, {"mixtureofexpertsregressor__n_experts": [1, 2]},
        scoring={"r2": "r2", "log_likelihood": log_likelihood_scorer},
        refit="log_likelihood", cv=KFold(3, shuffle=True, random_state=0), error_score="raise",
    ).fit(X, y)
    scores = search.cv_results_["mean_test_log_likelihood"]
    assert np.all(np.isfinite(scores))  # was NaN: 'Pipeline' object has no attribute ...
    assert search.best_index_ == np.argmax(scores) == 1
    assert unwrap_pipeline(search, X)[0] is search.best_estimator_[-1]


def test_log_likelihood_scorer_of_a_classifier_is_minus_log_loss():
    from sklearn.metrics import log_loss

    from mixexp.datasets import make_moe_classification
    from mixexp.metrics import log_likelihood_scorer

    X, y, _ = make_moe_classification(n_samples=200, n_classes=3, random_state=0)
    est = MixtureOfExpertsClassifier(n_experts=2, random_state=0).fit(X, y)
    assert log_likelihood_scorer(est, X, y) == pytest.approx(-log_loss(y, est.predict_proba(X)))


def test_unwrap_pipeline_refuses_what_holds_no_mixture():
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mixexp.metrics import log_likelihood_scorer, unwrap_pipeline

    with pytest.raises(TypeError, match="got Pipeline ending in Ridge"):
        unwrap_pipeline(make_pipeline(StandardScaler(), Ridge()))
    with pytest.raises(TypeError, match="got Ridge"):
        log_likelihood_scorer(Ridge(), np.zeros((2, 1)), np.zeros(2))


# ---- predictive std widens where the gate extrapolates (classical prediction interval) ---
def test_std_widens_with_the_distance_outside_the_training_region(fitted_regressor):
    # it stayed at the owning expert's noise however far out the gate extrapolated
    est, X, _ = fitted_regressor
    low, high = X.min(), X.max()
    width = high - low
    inside = est.predict(np.linspace(low, high, 50)[:, None], return_std=True)[1]
    far = est.predict(np.array([[high + width], [high + 10 * width], [high + 100 * width]]),
                      return_std=True)[1]
    owner = est.predict_gate(np.array([[high + width]])).argmax()
    owner_noise = np.sqrt(est.expert_variance_[owner])
    # one range beyond the data the owner's line is uncertain by more than its noise
    # (the old std: its noise, 14.1, at every distance)
    assert far[0] > 2 * owner_noise and np.all(np.diff(far) > 0)
    # linear in the distance far out: 10x the distance (from the owner's rows) gives
    # between 9.2x and 10x the std
    assert 9.0 < far[2] / far[1] < 10.0
    # in range: within the band the noises and disagreement of the experts give
    assert inside.max() < 3 * np.sqrt(est.expert_variance_.max())


def test_std_in_range_barely_changes_and_far_rows_are_wider_in_several_dimensions():
    from mixexp.datasets import make_moe_regression

    X, y, _ = make_moe_regression(n_samples=600, n_features=3, n_experts=2, noise=0.3,
                                  random_state=1)
    est = MixtureOfExpertsRegressor(2, random_state=0).fit(X, y)
    mean, std = est.predict(X, return_std=True)
    gate, means = est.predict_gate(X), est.predict_experts(X)
    plug_in = np.sqrt(np.sum(gate * ((means - mean[:, None]) ** 2 + est.expert_variance_),
                             axis=1))
    assert np.median(std / plug_in) < 1.01 and np.all(std >= plug_in * (1 - 1e-12))
    direction = np.array([1.0, -2.0, 0.5]) / np.linalg.norm([1.0, -2.0, 0.5])
    far = X.mean(axis=0) + np.outer([5.0, 20.0, 80.0], direction) * X.std(axis=0).max()
    far_std = est.predict(far, return_std=True)[1]
    owner_noise = np.sqrt(est.expert_variance_[est.predict_gate(far).argmax(axis=1)])
    # about sigma sqrt(1 + r^2 / n_k) at r standard deviations: 1.04x at 5, 1.7x at 20,
    # 6x at 80 (it was the owner's noise at every distance)
    assert np.all(np.diff(far_std) > 0)
    assert far_std[1] > 1.5 * owner_noise[1] and far_std[2] > 4 * owner_noise[2]


def test_stream_accumulates_the_experts_design_across_batches():
    from mixexp._regressor import restandardised_gram

    rng = np.random.RandomState(0)
    X = rng.normal(size=(2000, 2)) * [1.0, 5.0] + [0.0, 3.0]
    y = np.where(X[:, 0] > 0, X[:, 1], -X[:, 1]) + 0.1 * rng.normal(size=2000)
    est = MixtureOfExpertsRegressor(2, solver="adam", random_state=0)
    est.partial_fit(X[:100], y[:100])
    one_batch = est.predict(X[:5], return_std=True)[1]
    for start in range(100, 2000, 100):
        est.partial_fit(X[start:start + 100], y[start:start + 100])
    # twenty batches of information: the lines' uncertainty shrank, the std is the noise's
    many = est.predict(X[:5], return_std=True)[1]
    share = est._expert_gram[:, -1, -1]
    assert share.sum() == pytest.approx(2000, rel=1e-9)  # every row, in some expert
    assert np.all(np.isfinite(many)) and np.all(np.isfinite(one_batch))
    # the moments re-expressed in another standardisation are the same moments
    scaling = est._expert_gram_scaling
    new_mean, new_scale = scaling[0] + [0.5, -2.0], scaling[1] * [2.0, 0.25]
    there = restandardised_gram(est._expert_gram, scaling, new_mean, new_scale)
    back = restandardised_gram(there, np.stack([new_mean, new_scale]), *scaling)
    np.testing.assert_allclose(back, est._expert_gram, rtol=1e-10, atol=1e-8)
    z = np.column_stack([(X[:3] - scaling[0]) / scaling[1], np.ones(3)])
    z_new = np.column_stack([(X[:3] - new_mean) / new_scale, np.ones(3)])
    quad = np.einsum("nj,kjl,nl->nk", z, np.linalg.inv(est._expert_gram), z)
    quad_new = np.einsum("nj,kjl,nl->nk", z_new, np.linalg.inv(there), z_new)
    np.testing.assert_allclose(quad_new, quad, rtol=1e-9)


def test_one_expert_std_is_ridges_classical_prediction_interval():
    from sklearn.linear_model import Ridge

    rng = np.random.RandomState(3)
    X = rng.normal(size=(60, 3)) * [1.0, 10.0, 0.1]
    y = X @ [1.0, 0.2, -5.0] + rng.normal(size=60)
    est = MixtureOfExpertsRegressor(1, alpha=2.0, tol=1e-12, max_iter=500).fit(X, y)
    ridge = Ridge(alpha=2.0).fit(X, y)
    # sigma^2 = (RSS + alpha |w|^2) / n, and the interval of the ridge fit on [x, 1]
    sigma2 = (np.sum((y - ridge.predict(X)) ** 2) + 2.0 * ridge.coef_ @ ridge.coef_) / 60
    design = np.column_stack([X, np.ones(60)])
    system = design.T @ design + np.diag([2.0, 2.0, 2.0, 0.0])
    X_new = np.array([[0.0, 0.0, 0.0], [3.0, -40.0, 0.5], [100.0, 100.0, 100.0]])
    rows = np.column_stack([X_new, np.ones(3)])
    expected = np.sqrt(sigma2 * (1 + np.einsum("nj,nj->n", rows, np.linalg.solve(system, rows.T).T)))
    np.testing.assert_allclose(est.predict(X_new, return_std=True)[1], expected, rtol=1e-6)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_std_of_huge_targets_with_tiny_scale_features_does_not_overflow(backend):
    # fuzzer seed 1, case 78: a penalty capped at 1e200 (a feature of scale 1e-100)
    # times a noise variance of 1e200 overflowed in the interval's precision
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 2)) * [1.0, 1e-100]
    y = rng.normal(size=300) * 1e100
    est = MixtureOfExpertsRegressor(1, backend=backend, random_state=0).fit(X, y)
    mean, std = est.predict(np.vstack([X[:5], [[1e3, 1e-97]]]), return_std=True)
    assert np.all(np.isfinite(std)) and std[-1] > std[:5].max()


def test_one_expert_interval_on_its_own_columns_and_a_model_saved_without_moments():
    from sklearn.linear_model import Ridge

    rng = np.random.RandomState(4)
    X = rng.normal(size=(80, 3)) * [1.0, 10.0, 0.1]
    y = X[:, [0, 2]] @ [1.0, -5.0] + rng.normal(size=80)
    # the expert sees columns 0 and 2 only: Ridge's interval on those
    est = MixtureOfExpertsRegressor(1, alpha=2.0, expert_features=[0, 2], tol=1e-12,
                                    max_iter=500).fit(X, y)
    ridge = Ridge(alpha=2.0).fit(X[:, [0, 2]], y)
    sigma2 = (np.sum((y - ridge.predict(X[:, [0, 2]])) ** 2)
              + 2.0 * ridge.coef_ @ ridge.coef_) / 80
    design = np.column_stack([X[:, [0, 2]], np.ones(80)])
    system = design.T @ design + np.diag([2.0, 2.0, 0.0])
    X_new = np.array([[0.0, 5.0, 0.0], [3.0, -40.0, 0.5], [100.0, 0.0, 100.0]])
    rows = np.column_stack([X_new[:, [0, 2]], np.ones(3)])
    expected = np.sqrt(sigma2 * (1 + np.einsum("nj,nj->n", rows,
                                               np.linalg.solve(system, rows.T).T)))
    np.testing.assert_allclose(est.predict(X_new, return_std=True)[1], expected, rtol=1e-6)
    # a model saved before the experts' design moments were kept predicts with
    # the noise alone, as it did then
    del est._expert_gram
    np.testing.assert_allclose(est.predict(X_new, return_std=True)[1], np.sqrt(sigma2),
                               rtol=1e-6)
