"""Dask input: fits on blocks where they are, lazy predictions, refusals, validation.

Small data, one in-process LocalCluster (2 workers x 1 thread) for the
module, and one fit on worker processes (the row functions must pickle).
"""

import contextlib
import re
import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="Dask input needs dask (pip install mixexp[dask])")
dd = pytest.importorskip("dask.dataframe", reason="needs dask[dataframe]")
distributed = pytest.importorskip("distributed", reason="needs distributed")
import dask
import dask.base
import pandas as pd

from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.tree import DecisionTreeRegressor

from mixexp import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from mixexp._base import _MAX_INIT_ROWS
from mixexp.datasets import make_moe_regression

SETTINGS = {"n_experts": 3, "random_state": 0, "tol": 1e-9, "max_iter": 500}
# per-sample log-likelihood: dask fits match in-memory ones within this
LOG_LIKELIHOOD_ATOL = 1e-6


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster:
        yield cluster


@pytest.fixture
def client(cluster):
    with distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def data():
    X, y, _ = make_moe_regression(n_samples=3000, n_features=2, n_experts=3, noise=0.2,
                                  random_state=0)
    weight = np.random.default_rng(1).uniform(0.5, 2.0, size=X.shape[0])
    return X, y, weight


@pytest.fixture(scope="module")
def reference(data):
    X, y, _ = data
    return MixtureOfExpertsRegressor(**SETTINGS).fit(X, y)


@contextlib.contextmanager
def _no_convergence_warnings():
    """L-BFGS may stop at max_iter here; the comparison does not need it to converge."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _as_dask(a, rows):
    return da.from_array(a, chunks=(rows,) + a.shape[1:])


def _assert_same_fit(fitted, reference):
    assert fitted.log_likelihood_ == pytest.approx(reference.log_likelihood_,
                                                   abs=LOG_LIKELIHOOD_ATOL)
    np.testing.assert_allclose(fitted.expert_coef_, reference.expert_coef_, rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose(fitted.gate_coef_, reference.gate_coef_, rtol=1e-4, atol=1e-5)
    # alpha="auto" (the default): the penalties GCV chose, from one pass over the blocks
    assert hasattr(fitted, "expert_alpha_") == hasattr(reference, "expert_alpha_")
    if hasattr(reference, "expert_alpha_"):
        np.testing.assert_array_equal(fitted.expert_alpha_, reference.expert_alpha_)


@pytest.mark.parametrize("rows", [1000, 701])
@pytest.mark.parametrize("scheduler", ["default", "cluster"])
def test_fit_matches_in_memory(data, reference, rows, scheduler, request):
    X, y, _ = data
    if scheduler == "cluster":
        request.getfixturevalue("client")
    est = MixtureOfExpertsRegressor(**SETTINGS).fit(_as_dask(X, rows), _as_dask(y, rows))
    _assert_same_fit(est, reference)
    assert est.converged_
    assert est.n_features_in_ == 2


def test_weights_multi_output_and_restarts(data, client):
    X, y, weight = data
    Y = np.column_stack([y, 2.0 * y + X[:, 0]])
    settings = {**SETTINGS, "n_init": 2}
    expected = MixtureOfExpertsRegressor(**settings).fit(X, Y, sample_weight=weight)
    fitted = MixtureOfExpertsRegressor(**settings).fit(
        _as_dask(X, 800), _as_dask(Y, 500), sample_weight=_as_dask(weight, 900))
    _assert_same_fit(fitted, expected)
    assert fitted.expert_coef_.shape == (3, 2, 2)
    # NumPy weights are sent along with X's blocks
    again = MixtureOfExpertsRegressor(**settings).fit(_as_dask(X, 800), _as_dask(Y, 800),
                                                      sample_weight=weight)
    _assert_same_fit(again, expected)


def test_unknown_chunk_sizes(data, reference):
    X, y, _ = data
    dX, dy = _as_dask(X, 1000), _as_dask(y, 1000)
    keep = dX[:, 0] > -np.inf  # every row, but the chunk sizes become unknown
    dX, dy = dX[keep], dy[keep]
    assert np.isnan(dX.chunks[0][0])
    _assert_same_fit(MixtureOfExpertsRegressor(**SETTINGS).fit(dX, dy), reference)


def test_dataframe_keeps_feature_names(data, reference):
    X, y, _ = data
    frame = pd.DataFrame(X, columns=["age", "income"])
    ddf = dd.from_pandas(frame, npartitions=3)
    est = MixtureOfExpertsRegressor(**SETTINGS).fit(ddf, dd.from_pandas(pd.Series(y), npartitions=4))
    _assert_same_fit(est, reference)
    assert list(est.feature_names_in_) == ["age", "income"]
    pred = est.predict(ddf)
    assert isinstance(pred, da.Array)
    np.testing.assert_allclose(pred.compute(), reference.predict(X), rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="feature names"):
        est.predict(dd.from_pandas(frame.rename(columns={"age": "height"}), npartitions=2))


def test_warm_start(data, reference):
    X, y, _ = data
    dX, dy = _as_dask(X, 1000), _as_dask(y, 1000)
    est = MixtureOfExpertsRegressor(**SETTINGS, warm_start=True).fit(dX, dy)
    again = est.fit(dX, dy)
    # from the converged fit: a couple of iterations, no lower objective
    assert again.n_iter_ <= 3
    assert again.log_likelihood_ >= reference.log_likelihood_ - LOG_LIKELIHOOD_ATOL


class _Gathered:
    """Records the longest array any compute returns to the client."""

    def __init__(self, monkeypatch):
        self.calls, self.longest = 0, 0
        original = dask.base.compute

        def compute(*args, **kwargs):
            results = original(*args, **kwargs)
            self.calls += 1
            for leaf in _leaves(results):
                if hasattr(leaf, "shape") and getattr(leaf, "ndim", 0) > 0:
                    self.longest = max(self.longest, leaf.shape[0])
            return results

        monkeypatch.setattr(dask.base, "compute", compute)
        monkeypatch.setattr(dask, "compute", compute)


def _leaves(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def test_nothing_of_size_n_reaches_the_client(client, monkeypatch):
    n = 4 * _MAX_INIT_ROWS
    X, y, _ = make_moe_regression(n_samples=n, n_features=2, n_experts=2, noise=0.2,
                                  random_state=1)
    dX, dy = _as_dask(X, 5000), _as_dask(y, 5000)
    gathered = _Gathered(monkeypatch)
    # alpha="auto" (the default) chooses the experts' penalties after a first run,
    # which n_iter_ does not count: it is checked for what it gathers below
    est = MixtureOfExpertsRegressor(n_experts=2, random_state=0, max_iter=20, tol=1e-4,
                                    alpha=1e-4)
    est.fit(dX, dy)
    # the initial sample (about _MAX_INIT_ROWS rows) is the largest thing gathered
    assert 0 < gathered.longest <= 1.1 * _MAX_INIT_ROWS
    # one compute per pass, plus the first pass and the sample
    assert gathered.calls <= 2 * est.n_iter_ + 4
    est.set_params(alpha="auto").fit(dX, dy)
    assert hasattr(est, "expert_alpha_")
    assert 0 < gathered.longest <= 1.1 * _MAX_INIT_ROWS
    before = gathered.calls
    pred, _ = est.predict(dX, return_std=True)
    est.predict_gate(dX), est.predict_experts(dX), est.predict_responsibilities(dX, dy)
    assert gathered.calls == before  # lazy: nothing computed
    assert isinstance(pred, da.Array) and pred.chunks == dX.chunks[:1]
    est.log_likelihood(dX, dy), est.score(dX, dy), est.bic(dX, dy)
    assert gathered.longest <= 1.1 * _MAX_INIT_ROWS


@pytest.mark.parametrize("estimator", ["regressor", "classifier"])
@pytest.mark.parametrize(("before", "after"), [(2, 3), (4, 3)], ids=["grow", "shrink"])
def test_warm_start_with_another_n_experts_matches_in_memory(data, labelled, client,
                                                             monkeypatch, estimator, before,
                                                             after):
    # grown (split) or pruned from the previous fit from K sums per pass, as in memory
    if estimator == "classifier":
        (X, y, weight), make = labelled, MixtureOfExpertsClassifier
    else:
        (X, y, weight), make = data, MixtureOfExpertsRegressor
    settings = {"random_state": 0, "tol": 1e-5, "max_iter": 300, "warm_start": True}
    expected = make(before, **settings).fit(X, y, sample_weight=weight)
    dX, dy, dw = _as_dask(X, 700), _as_dask(y, 700), _as_dask(weight, 700)
    fitted = make(before, **settings).fit(dX, dy, sample_weight=dw)
    expected.set_params(n_experts=after).fit(X, y, sample_weight=weight)
    gathered = _Gathered(monkeypatch)
    fitted.set_params(n_experts=after).fit(dX, dy, sample_weight=dw)
    # statistics only: no initial sample either (the start is the previous fit)
    assert 0 < gathered.longest < 50
    assert fitted.gate_coef_.shape[0] == after and fitted.expert_usage_.shape == (after,)
    assert fitted.n_iter_ == expected.n_iter_
    # the resized start, then the fit from it
    assert fitted.objective_history_[0] == pytest.approx(expected.objective_history_[0],
                                                         abs=LOG_LIKELIHOOD_ATOL)
    assert fitted.log_likelihood_ == pytest.approx(expected.log_likelihood_,
                                                   abs=LOG_LIKELIHOOD_ATOL)


def test_predictions_of_an_in_memory_fit(data, reference, client):
    X, y, weight = data
    dX, dy, dw = _as_dask(X, 1000), _as_dask(y, 1000), _as_dask(weight, 1000)
    close = {"rtol": 1e-7, "atol": 1e-10}
    mean, std = reference.predict(dX, return_std=True)
    expected_mean, expected_std = reference.predict(X, return_std=True)
    np.testing.assert_allclose(mean.compute(), expected_mean, **close)
    np.testing.assert_allclose(std.compute(), expected_std, **close)
    for method in ("predict_gate", "predict_experts"):
        result = getattr(reference, method)(dX)
        assert isinstance(result, da.Array)
        np.testing.assert_allclose(result.compute(), getattr(reference, method)(X), **close)
    np.testing.assert_allclose(reference.predict_responsibilities(dX, dy).compute(),
                               reference.predict_responsibilities(X, y), **close)
    assert reference.log_likelihood(dX, dy, sample_weight=dw) == pytest.approx(
        reference.log_likelihood(X, y, sample_weight=weight), rel=1e-12)
    for method in ("score", "bic", "aic"):
        assert getattr(reference, method)(dX, dy) == pytest.approx(
            getattr(reference, method)(X, y), rel=1e-10)
    with pytest.raises(ValueError, match="X has 3 features"):
        reference.predict(da.zeros((10, 3), chunks=5))


def test_classifier_fitted_in_memory_predicts_on_dask(data):
    X, y, _ = data
    labels = np.where(y > np.median(y), "high", "low")
    clf = MixtureOfExpertsClassifier(n_experts=2, random_state=0).fit(X, labels)
    dX = _as_dask(X, 1000)
    np.testing.assert_allclose(clf.predict_proba(dX).compute(), clf.predict_proba(X),
                               rtol=1e-7, atol=1e-12)
    predicted = clf.predict(dX)
    assert isinstance(predicted, da.Array)
    np.testing.assert_array_equal(predicted.compute(), clf.predict(X))
    assert clf.score(dX, _as_dask(labels, 1000)) == pytest.approx(clf.score(X, labels))


def test_lbfgs_matches_in_memory(data, client):
    X, y, weight = data
    settings = {**SETTINGS, "solver": "lbfgs", "alpha": 0.1, "max_iter": 2000}
    expected = MixtureOfExpertsRegressor(**settings).fit(X, y, sample_weight=weight)
    fitted = MixtureOfExpertsRegressor(**settings).fit(
        _as_dask(X, 701), _as_dask(y, 701), sample_weight=_as_dask(weight, 701))
    assert fitted.converged_
    # L-BFGS stops where its gains fall below tol: the two runs' last
    # iterates differ by about that much (measured 4e-7 per sample)
    assert fitted.log_likelihood_ == pytest.approx(expected.log_likelihood_,
                                                   abs=LOG_LIKELIHOOD_ATOL)


@pytest.mark.parametrize(("settings", "message"), [
    ({"solver": "adam"}, "solver='adam' is not supported on Dask input: use solver='em'"),
    ({"gating": "hard", "solver": "lbfgs"},
     "gating='hard' with solver='lbfgs' is not supported on Dask input"),
    ({"balance": 0.1, "solver": "lbfgs"},
     "balance=0.1 with solver='lbfgs' is not supported on Dask input"),
    ({"expert": "poisson", "gating": "hard"},
     "gating='hard' with expert='poisson' is not supported on Dask input"),
    ({"expert": "student_t", "balance": 0.1},
     "balance=0.1 with expert='student_t' is not supported on Dask input"),
    ({"expert": DecisionTreeRegressor(max_depth=2)},
     "expert=DecisionTreeRegressor(...) cannot be fitted on Dask input"),
])
def test_refusals(data, settings, message):
    X, y, _ = data
    est = MixtureOfExpertsRegressor(n_experts=2, **settings)
    with pytest.raises(ValueError, match=re.escape(message)):
        est.fit(_as_dask(X, 1000), _as_dask(y, 1000))
    assert not hasattr(est, "n_features_in_")


def test_top_k_prediction_of_a_dask_fit(data):
    # EM trains the dense gate; top_k routes prediction and the reported fit
    X, y, _ = data
    expected = MixtureOfExpertsRegressor(**SETTINGS, top_k=2).fit(X, y)
    fitted = MixtureOfExpertsRegressor(**SETTINGS, top_k=2).fit(_as_dask(X, 900),
                                                                _as_dask(y, 900))
    _assert_same_fit(fitted, expected)
    np.testing.assert_allclose(fitted.expert_usage_, expected.expert_usage_, rtol=1e-5)
    np.testing.assert_allclose(fitted.predict(_as_dask(X, 900)).compute(), expected.predict(X),
                               rtol=1e-5, atol=1e-6)


def test_device_backends_are_refused():
    from types import SimpleNamespace

    from mixexp._dask import check_supported

    with pytest.raises(ValueError, match="backend='cupy' cannot serve Dask input"):
        check_supported(MixtureOfExpertsRegressor(backend="cupy"), SimpleNamespace(device=True))


def test_refused_partial_fit_and_mixed_input(data):
    X, y, _ = data
    with pytest.raises(TypeError, match="partial_fit does not take Dask input"):
        MixtureOfExpertsRegressor(solver="adam").partial_fit(_as_dask(X, 1000), y)
    with pytest.raises(TypeError, match="pass X as a Dask array"):
        MixtureOfExpertsRegressor().fit(X, _as_dask(y, 1000))


def _bad_inputs(X, y, weight):
    nan_X, inf_X, nan_y = X.copy(), X.copy(), y.copy()
    nan_X[2500, 1] = np.nan
    inf_X[10, 0] = np.inf
    nan_y[1234] = np.nan
    negative = weight.copy()
    negative[2999] = -1.0
    return {
        "nan X": (nan_X, y, None),
        "inf X": (inf_X, y, None),
        "nan y": (X, nan_y, None),
        "negative weight": (X, y, negative),
        "zero weights": (X, y, np.zeros_like(weight)),
        "short y": (X, y[:-7], None),
        "short weight": (X, y, weight[:-3]),
        "huge X": (X * 1e160, y, None),
    }


@pytest.mark.parametrize("case", ["nan X", "inf X", "nan y", "negative weight", "zero weights",
                                  "short y", "short weight", "huge X"])
def test_validation_errors_match_in_memory(data, reference, case):
    X, y, weight = _bad_inputs(*data)[case]
    with pytest.raises(ValueError) as in_memory:
        MixtureOfExpertsRegressor(**SETTINGS).fit(X, y, sample_weight=weight)
    # a warm-startable fitted model: a bad input must leave it untouched
    est = MixtureOfExpertsRegressor(**SETTINGS, warm_start=True).fit(*data[:2])
    params = est.gate_coef_.copy()
    with pytest.raises(ValueError, match=re.escape(str(in_memory.value))):
        est.fit(_as_dask(X, 700), _as_dask(y, 700),
                sample_weight=None if weight is None else _as_dask(weight, 700))
    np.testing.assert_array_equal(est.gate_coef_, params)


def test_wrong_shapes(data, reference):
    X, y, _ = data
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        MixtureOfExpertsRegressor().fit(_as_dask(X[:, 0], 1000), _as_dask(y, 1000))
    with pytest.raises(ValueError, match="Found array with dim 3"):
        MixtureOfExpertsRegressor().fit(_as_dask(X, 1000),
                                        da.zeros((X.shape[0], 2, 2), chunks=1000))
    with pytest.raises(ValueError, match="NaN"):
        bad = X.copy()
        bad[5, 0] = np.nan
        reference.predict(_as_dask(bad, 1000)).compute()


def test_fit_on_worker_processes(data, reference):
    # the row functions, model and kernel bundle travel to other processes
    X, y, _ = data
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster):
        est = MixtureOfExpertsRegressor(**SETTINGS).fit(_as_dask(X, 1000), _as_dask(y, 1000))
        pred = est.predict(_as_dask(X, 1000)).compute()
        # experts streamed through partial_fit: the models travel between processes
        with _no_convergence_warnings():
            streamed = MixtureOfExpertsRegressor(**STREAMED).fit(_as_dask(X, 1000),
                                                                 _as_dask(y, 1000))
    _assert_same_fit(est, reference)
    np.testing.assert_allclose(pred, reference.predict(X), rtol=1e-6, atol=1e-8)
    with _no_convergence_warnings():
        here = MixtureOfExpertsRegressor(**STREAMED).fit(_as_dask(X, 1000), _as_dask(y, 1000))
    # (the same updates; the sums may round differently in another process)
    np.testing.assert_allclose(_expert_coefs(streamed), _expert_coefs(here), rtol=1e-12)
    assert streamed.log_likelihood_ == pytest.approx(here.log_likelihood_, abs=1e-12)


@pytest.mark.parametrize("solver", ["em", "lbfgs"])
def test_hierarchical_regressor_on_dask_matches_in_memory(data, client, solver):
    from mixexp import HierarchicalMixtureOfExpertsRegressor

    X, y, _ = data
    settings = dict(branching=(2, 2), solver=solver, random_state=0, max_iter=40)
    with _no_convergence_warnings():
        reference = HierarchicalMixtureOfExpertsRegressor(**settings).fit(X, y)
        fitted = HierarchicalMixtureOfExpertsRegressor(**settings).fit(_as_dask(X, 700),
                                                                      _as_dask(y, 700))
    assert fitted.n_iter_ == reference.n_iter_
    assert fitted.log_likelihood_ == pytest.approx(reference.log_likelihood_,
                                                   abs=LOG_LIKELIHOOD_ATOL)
    node_gates = fitted.predict_node_gates(_as_dask(X, 700))
    assert all(isinstance(level, da.Array) for level in node_gates)
    np.testing.assert_allclose(node_gates[1].compute(), reference.predict_node_gates(X)[1],
                               rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("solver", ["em", "lbfgs"])
def test_gate_and_expert_columns_on_dask_match_in_memory(solver):
    X, y, _ = make_moe_regression(n_samples=2000, n_features=3, n_experts=3, noise=0.2,
                                  random_state=0)
    settings = dict(n_experts=3, gate_features=[2], expert_features=[0, 1], solver=solver,
                    random_state=0, max_iter=60)
    with _no_convergence_warnings():
        reference = MixtureOfExpertsRegressor(**settings).fit(X, y)
        fitted = MixtureOfExpertsRegressor(**settings).fit(_as_dask(X, 600), _as_dask(y, 600))
    assert fitted.n_iter_ == reference.n_iter_
    assert fitted.log_likelihood_ == pytest.approx(reference.log_likelihood_,
                                                   abs=LOG_LIKELIHOOD_ATOL)
    assert fitted.gate_coef_.shape == (3, 1) and fitted.expert_coef_.shape == (3, 2)
    np.testing.assert_allclose(fitted.expert_coef_, reference.expert_coef_, rtol=1e-5,
                               atol=1e-7)


def test_vanished_experts_on_dask_input_are_not_said_to_be_revived():
    est = MixtureOfExpertsRegressor(3)
    with pytest.warns(ConvergenceWarning, match="only on data in memory, not on Dask input"):
        est._warn_vanished_experts(np.array([0.5, 0.5, 0.0]), local=False)
    with pytest.warns(ConvergenceWarning, match="EM's attempt to re-initialise"):
        est._warn_vanished_experts(np.array([0.5, 0.5, 0.0]), local=True)


# ---- the classifier, hard gating and load balancing ------------------------------

CLASSIFIER_SETTINGS = {"n_experts": 3, "random_state": 0, "tol": 1e-9, "max_iter": 300}


@pytest.fixture(scope="module")
def labelled():
    from mixexp.datasets import make_moe_classification

    X, y, _ = make_moe_classification(n_samples=2000, n_features=2, n_experts=3, n_classes=3,
                                      random_state=0)
    labels = np.array(["cat", "dog", "emu"])[y]
    weight = np.random.default_rng(2).uniform(0.5, 2.0, size=X.shape[0])
    return X, labels, weight


@pytest.fixture(scope="module")
def classifier_reference(labelled):
    X, labels, _ = labelled
    return MixtureOfExpertsClassifier(**CLASSIFIER_SETTINGS).fit(X, labels)


def _assert_same_classifier(fitted, reference, X):
    np.testing.assert_array_equal(fitted.classes_, reference.classes_)
    assert fitted.n_iter_ == reference.n_iter_
    assert fitted.log_likelihood_ == pytest.approx(reference.log_likelihood_,
                                                   abs=LOG_LIKELIHOOD_ATOL)
    np.testing.assert_allclose(fitted.objective_history_, reference.objective_history_,
                               rtol=0, atol=LOG_LIKELIHOOD_ATOL)
    # per sample: the log-probabilities of the two fits agree within the tolerance
    np.testing.assert_allclose(fitted.predict_log_proba(X), reference.predict_log_proba(X),
                               rtol=0, atol=LOG_LIKELIHOOD_ATOL)


@pytest.mark.parametrize("rows", [700, 2000])
@pytest.mark.parametrize("scheduler", ["default", "cluster"])
def test_classifier_fit_matches_in_memory(labelled, classifier_reference, rows, scheduler,
                                          request):
    X, labels, _ = labelled
    if scheduler == "cluster":
        request.getfixturevalue("client")
    dX, dy = _as_dask(X, rows), _as_dask(labels, rows)
    fitted = MixtureOfExpertsClassifier(**CLASSIFIER_SETTINGS).fit(dX, dy)
    _assert_same_classifier(fitted, classifier_reference, X)
    proba = fitted.predict_proba(dX)
    predicted = fitted.predict(dX)
    assert isinstance(proba, da.Array) and isinstance(predicted, da.Array)
    np.testing.assert_allclose(proba.compute(), classifier_reference.predict_proba(X),
                               rtol=0, atol=1e-6)
    np.testing.assert_array_equal(predicted.compute(), fitted.predict(X))
    score = fitted.score(dX, dy)
    assert isinstance(score, float) and score == pytest.approx(fitted.score(X, labels))
    log_likelihood = fitted.log_likelihood(dX, dy)
    assert isinstance(log_likelihood, float)
    assert log_likelihood == pytest.approx(classifier_reference.log_likelihood(X, labels),
                                           abs=LOG_LIKELIHOOD_ATOL)


def test_classifier_on_dataframes_with_weights(labelled, client):
    X, labels, weight = labelled
    X = pd.DataFrame(X, columns=["age", "income"])
    expected = MixtureOfExpertsClassifier(**CLASSIFIER_SETTINGS).fit(X, labels,
                                                                     sample_weight=weight)
    frame = dd.from_pandas(X, npartitions=3)
    # a pandas string column of labels, in other partitions than X's
    target = dd.from_pandas(pd.Series(labels, dtype="string"), npartitions=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no conversion warning reaches the user
        fitted = MixtureOfExpertsClassifier(**CLASSIFIER_SETTINGS).fit(
            frame, target, sample_weight=_as_dask(weight, 900))
    assert isinstance(fitted.classes_[0], str)
    np.testing.assert_array_equal(fitted.feature_names_in_, ["age", "income"])
    _assert_same_classifier(fitted, expected, X)
    assert fitted.score(frame, target) == pytest.approx(expected.score(X, labels))


@pytest.mark.parametrize("settings", [{"gating": "hard"}, {"balance": 0.5},
                                      {"gating": "hard", "balance": 0.2}])
@pytest.mark.parametrize("estimator", ["classifier", "regressor"])
def test_hard_gating_and_balance_match_in_memory(data, labelled, settings, estimator):
    if estimator == "classifier":
        X, y, weight = labelled
        make = lambda: MixtureOfExpertsClassifier(**CLASSIFIER_SETTINGS, **settings)
    else:
        X, y, weight = data
        make = lambda: MixtureOfExpertsRegressor(**SETTINGS, **settings)
    expected = make().fit(X, y, sample_weight=weight)
    fitted = make().fit(_as_dask(X, 700), _as_dask(y, 700), sample_weight=_as_dask(weight, 700))
    assert fitted.n_iter_ == expected.n_iter_
    assert fitted.log_likelihood_ == pytest.approx(expected.log_likelihood_,
                                                   abs=LOG_LIKELIHOOD_ATOL)
    np.testing.assert_allclose(fitted.objective_history_, expected.objective_history_,
                               rtol=0, atol=LOG_LIKELIHOOD_ATOL)
    np.testing.assert_allclose(fitted.expert_usage_, expected.expert_usage_, atol=1e-6)
    np.testing.assert_allclose(fitted.gate_coef_, expected.gate_coef_, rtol=1e-4, atol=1e-5)


def test_classifier_lbfgs_matches_in_memory(labelled, client):
    X, labels, _ = labelled
    settings = {**CLASSIFIER_SETTINGS, "solver": "lbfgs", "tol": 1e-12, "max_iter": 2000}
    with _no_convergence_warnings():
        expected = MixtureOfExpertsClassifier(**settings).fit(X, labels)
        fitted = MixtureOfExpertsClassifier(**settings).fit(_as_dask(X, 700),
                                                            _as_dask(labels, 700))
    assert fitted.log_likelihood_ == pytest.approx(expected.log_likelihood_,
                                                   abs=LOG_LIKELIHOOD_ATOL)


def test_classifier_experts_solved_by_lbfgs_on_dask():
    # 10 classes x (20 + 1) weights > NEWTON_MAX_PARAMS: each expert's M-step is L-BFGS
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = X[:300, 20:40], y[:300]
    settings = {"n_experts": 2, "random_state": 0, "max_iter": 3}
    with _no_convergence_warnings():
        expected = MixtureOfExpertsClassifier(**settings).fit(X, y)
        fitted = MixtureOfExpertsClassifier(**settings).fit(_as_dask(X, 150), _as_dask(y, 150))
    assert fitted.log_likelihood_ == pytest.approx(expected.log_likelihood_,
                                                   abs=LOG_LIKELIHOOD_ATOL)


def test_classifier_never_gathers_rows(client, monkeypatch):
    from mixexp.datasets import make_moe_classification

    n = 4 * _MAX_INIT_ROWS
    X, y, _ = make_moe_classification(n_samples=n, n_features=2, n_experts=2, n_classes=2,
                                      random_state=1)
    dX, dy = _as_dask(X, 5000), _as_dask(y, 5000)
    gathered = _Gathered(monkeypatch)
    with _no_convergence_warnings():
        est = MixtureOfExpertsClassifier(n_experts=2, gating="hard", random_state=0,
                                         max_iter=5).fit(dX, dy)
    assert 0 < gathered.longest <= 1.1 * _MAX_INIT_ROWS
    before = gathered.calls
    est.predict(dX), est.predict_proba(dX)
    assert gathered.calls == before  # lazy


@pytest.mark.parametrize(("labels", "message"), [
    (np.linspace(0.0, 1.0, 2000), "Unknown label type: continuous"),
    (np.ones(2000), "needs samples of at least 2 classes"),
    (np.where(np.arange(2000) == 1234, np.nan, np.arange(2000) % 2), "Input y contains NaN"),
    (np.stack([np.arange(2000) % 2] * 2, axis=1), "y should be a 1d array"),
])
def test_classifier_label_errors_match_in_memory(labelled, labels, message):
    X = labelled[0]
    with pytest.raises(ValueError, match=message):
        MixtureOfExpertsClassifier().fit(X, labels)
    with pytest.raises(ValueError, match=message):
        MixtureOfExpertsClassifier().fit(_as_dask(X, 700), _as_dask(labels, 700))


def test_hierarchical_classifier_on_dask(labelled):
    from sklearn.datasets import load_digits

    from mixexp import HierarchicalMixtureOfExpertsClassifier

    X, labels, _ = labelled
    settings = {"branching": (2, 2), "random_state": 0, "max_iter": 60}
    with _no_convergence_warnings():
        expected = HierarchicalMixtureOfExpertsClassifier(**settings).fit(X, labels)
        fitted = HierarchicalMixtureOfExpertsClassifier(**settings).fit(_as_dask(X, 700),
                                                                        _as_dask(labels, 700))
    assert fitted.n_iter_ == expected.n_iter_
    assert fitted.log_likelihood_ == pytest.approx(expected.log_likelihood_,
                                                   abs=LOG_LIKELIHOOD_ATOL)
    # experts too large for one-pass EM need the multi-pass M-step: not under a tree
    digits, classes = load_digits(return_X_y=True)
    with pytest.raises(ValueError, match="a tree of gates .* trains there with one-pass"):
        HierarchicalMixtureOfExpertsClassifier(branching=(2,), max_iter=2).fit(
            _as_dask(digits[:300, 20:40], 150), _as_dask(classes[:300], 150))


def test_predictions_on_a_dataframe_are_dask_arrays(labelled, classifier_reference):
    # as dask-ml's ParallelPostFit (and scikit-learn for pandas input): arrays, one
    # block per partition, which a DataFrame takes back as columns on its index
    X = labelled[0]
    frame = pd.DataFrame(X, index=np.arange(X.shape[0]) * 3)
    ddf = dd.from_pandas(frame, npartitions=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # (fitted without feature names)
        predicted = classifier_reference.predict(ddf)
        proba = classifier_reference.predict_proba(ddf)
    assert isinstance(predicted, da.Array) and isinstance(proba, da.Array)
    assert predicted.numblocks == (3,) and proba.shape[1] == 3
    table = ddf.assign(label=predicted).compute()
    np.testing.assert_array_equal(table.index, frame.index)
    np.testing.assert_array_equal(table["label"], classifier_reference.predict(X))


def test_classifier_on_worker_processes(labelled, classifier_reference):
    X, labels, _ = labelled
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster):
        fitted = MixtureOfExpertsClassifier(**CLASSIFIER_SETTINGS).fit(_as_dask(X, 1000),
                                                                       _as_dask(labels, 1000))
    _assert_same_classifier(fitted, classifier_reference, X)


def test_student_t_experts_on_dask_match_in_memory(data):
    X, y, _ = data
    y = y + 0.2 * np.random.default_rng(0).standard_t(3, size=y.size)
    settings = {**SETTINGS, "expert": "student_t"}
    expected = MixtureOfExpertsRegressor(**settings).fit(X, y)
    fitted = MixtureOfExpertsRegressor(**settings).fit(_as_dask(X, 700), _as_dask(y, 700))
    assert fitted.n_iter_ == expected.n_iter_
    assert fitted.log_likelihood_ == pytest.approx(expected.log_likelihood_,
                                                   abs=LOG_LIKELIHOOD_ATOL)


def test_student_t_warm_start_from_a_gaussian_fit_on_dask_matches_in_memory(data):
    # nu is fitted to the Gaussian fit's residuals by passes over the blocks
    X, y, _ = data
    y = y + 0.2 * np.random.default_rng(0).standard_t(3, size=y.size)
    X_dask, y_dask = _as_dask(X, 700), _as_dask(y, 700)
    expected = MixtureOfExpertsRegressor(warm_start=True, **SETTINGS).fit(X, y)
    fitted = MixtureOfExpertsRegressor(warm_start=True, **SETTINGS).fit(X_dask, y_dask)
    gaussian_log_likelihood = fitted.log_likelihood_
    expected.set_params(expert="student_t").fit(X, y)
    fitted.set_params(expert="student_t").fit(X_dask, y_dask)
    assert fitted.n_iter_ == expected.n_iter_
    assert fitted.log_likelihood_ == pytest.approx(expected.log_likelihood_,
                                                   abs=LOG_LIKELIHOOD_ATOL)
    np.testing.assert_allclose(fitted.expert_dof_, expected.expert_dof_, rtol=1e-6)
    # t nests the Gaussian experts: the warm-started fit is no worse
    assert fitted.log_likelihood_ >= gaussian_log_likelihood - 1e-12


def test_poisson_experts_on_dask_match_in_memory():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 2))
    counts = rng.poisson(np.exp(0.5 + np.where(X[:, 0] > 0, X[:, 1], -X[:, 1])))
    settings = {**SETTINGS, "n_experts": 2, "expert": "poisson"}
    expected = MixtureOfExpertsRegressor(**settings).fit(X, counts)
    fitted = MixtureOfExpertsRegressor(**settings).fit(_as_dask(X, 700), _as_dask(counts, 700))
    assert fitted.n_iter_ == expected.n_iter_
    assert fitted.log_likelihood_ == pytest.approx(expected.log_likelihood_,
                                                   abs=LOG_LIKELIHOOD_ATOL)
    # the count check runs on the blocks, with the in-memory messages
    for bad in (counts - 3.0, counts + 0.5):
        with pytest.raises(ValueError) as in_memory:
            MixtureOfExpertsRegressor(**settings).fit(X, bad)
        with pytest.raises(ValueError, match=re.escape(str(in_memory.value))):
            MixtureOfExpertsRegressor(**settings).fit(_as_dask(X, 700), _as_dask(bad, 700))


# ---- scikit-learn estimators as experts: partial_fit streamed through the blocks ----

# shuffle=False: SGD's updates then follow the row order alone, whatever the chunking
STREAMED = {"n_experts": 3, "expert": SGDRegressor(shuffle=False, random_state=0),
            "random_state": 0, "max_iter": 15, "tol": 1e-6}


def _expert_coefs(est):
    return np.array([np.r_[np.ravel(e.coef_), np.ravel(e.intercept_)] for e in est.experts_])


def test_streamed_estimator_experts(data):
    X, y, weight = data
    with _no_convergence_warnings():
        fits = [MixtureOfExpertsRegressor(**settings).fit(
                    _as_dask(X, rows), _as_dask(y, rows), sample_weight=_as_dask(weight, rows))
                for settings, rows in ((STREAMED, 700), (STREAMED, 700), (STREAMED, 1000),
                                       ({**STREAMED, "n_experts": 1}, 700))]
    first, again, rechunked, single = fits
    # the same run twice: the same experts
    np.testing.assert_array_equal(_expert_coefs(again), _expert_coefs(first))
    assert again.objective_history_.tolist() == first.objective_history_.tolist()
    # another chunking, the same block order: the same updates up to rounding
    np.testing.assert_allclose(_expert_coefs(rechunked), _expert_coefs(first), rtol=1e-9)
    assert rechunked.log_likelihood_ == pytest.approx(first.log_likelihood_, abs=1e-9)
    # the objective rose (the conftest checks that it never fell); three experts
    # fit the three regimes far better than one (measured -0.23 against -2.00)
    assert first.objective_history_[-1] > first.objective_history_[0] + 0.1
    assert first.log_likelihood_ > single.log_likelihood_ + 1.0
    assert all(isinstance(e, SGDRegressor) for e in first.experts_)
    predicted = first.predict(_as_dask(X, 700))
    assert isinstance(predicted, da.Array)
    np.testing.assert_allclose(predicted.compute(), first.predict(X), rtol=1e-12)


def test_streamed_classifier_experts(labelled):
    X, labels, _ = labelled
    settings = {"n_experts": 3, "random_state": 0, "max_iter": 10, "tol": 1e-6,
                "expert": SGDClassifier(loss="log_loss", shuffle=False, random_state=0)}
    dX, dy = _as_dask(X, 700), _as_dask(labels, 700)
    with _no_convergence_warnings():
        first = MixtureOfExpertsClassifier(**settings).fit(dX, dy)
        again = MixtureOfExpertsClassifier(**settings).fit(dX, dy)
        single = MixtureOfExpertsClassifier(**{**settings, "n_experts": 1}).fit(dX, dy)
    np.testing.assert_array_equal(first.classes_, ["cat", "dog", "emu"])
    np.testing.assert_array_equal(_expert_coefs(again), _expert_coefs(first))
    assert first.objective_history_[-1] > first.objective_history_[0]
    # measured: -0.55 against -0.69 for one expert
    assert first.log_likelihood_ > single.log_likelihood_ + 0.05
    assert first.score(dX, dy) > single.score(dX, dy)


def test_streamed_experts_gather_nothing_of_size_n(client, monkeypatch):
    n = 4 * _MAX_INIT_ROWS
    X, y, _ = make_moe_regression(n_samples=n, n_features=2, n_experts=2, noise=0.2,
                                  random_state=1)
    dX, dy = _as_dask(X, 5000), _as_dask(y, 5000)
    gathered = _Gathered(monkeypatch)
    with _no_convergence_warnings():
        est = MixtureOfExpertsRegressor(**{**STREAMED, "n_experts": 2, "max_iter": 3}).fit(
            dX, dy)
    # the initial sample is the largest thing gathered; then models and sums
    assert 0 < gathered.longest <= 1.1 * _MAX_INIT_ROWS
    # three passes per iteration (the streamed pass, the guard's, the evaluation)
    # plus the gate's halvings, the first pass, the sample and the summary
    assert gathered.calls <= 6 * est.n_iter_ + 5


def test_the_streamed_guard_keeps_an_expert_that_scores_higher():
    from mixexp._experts._estimator import EstimatorRegressionExperts

    family = EstimatorRegressionExperts(SGDRegressor(), x_mean=np.zeros(1), x_scale=np.ones(1),
                                        variance_floor=np.array([1e-6]))
    old, new = np.array(["old0", "old1", "old2"], dtype=object), ["new0", "new1", "new2"]
    experts = {"estimator": old, "variance": np.ones((3, 1))}
    # expert 0's candidate has larger residuals, expert 1's smaller; expert 2 is inactive
    statistics = {"w_sum": np.array([10.0, 10.0, 0.0]), "old": np.array([[5.0], [5.0], [0.0]]),
                  "new": np.array([[8.0], [2.0], [0.0]])}
    solved = family.stream_solve(statistics, experts, np.array(new, dtype=object),
                                 np.array([True, True, False]))
    assert solved["estimator"].tolist() == ["old0", "new1", "old2"]
    # each kept expert's variance refitted to its own residuals; the inactive one as it was
    np.testing.assert_allclose(solved["variance"], [[0.5], [0.2], [1.0]])
    assert experts["estimator"].tolist() == ["old0", "old1", "old2"]  # input unchanged


class _SGDWithoutWeightedPartialFit(SGDRegressor):
    def partial_fit(self, X, y):
        return super().partial_fit(X, y)


@pytest.mark.parametrize(("settings", "message"), [
    ({"expert": DecisionTreeRegressor(max_depth=2)},
     ("DecisionTreeRegressor has no partial_fit. Use an estimator whose partial_fit takes "
      "sample_weight")),
    ({"expert": _SGDWithoutWeightedPartialFit()},
     "_SGDWithoutWeightedPartialFit has a partial_fit without sample_weight"),
    ({"expert": SGDRegressor(), "gating": "hard"},
     "expert=SGDRegressor(...) with gating='hard' is not supported on Dask input"),
    ({"expert": SGDRegressor(), "balance": 0.5},
     "expert=SGDRegressor(...) with balance=0.5 is not supported on Dask input"),
])
def test_streamed_expert_refusals(data, settings, message):
    X, y, _ = data
    est = MixtureOfExpertsRegressor(n_experts=2, **settings)
    with pytest.raises(ValueError, match=re.escape(message)):
        est.fit(_as_dask(X, 1000), _as_dask(y, 1000))
    assert not hasattr(est, "n_features_in_")
