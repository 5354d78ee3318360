"""Standard errors, the observed information, bootstrap and ICL (mixexp/_inference.py)."""

import copy
import warnings

import numpy as np
import pandas as pd
import pytest
from joblib import parallel_config
from scipy.optimize import linear_sum_assignment
from scipy.special import entr
from sklearn.exceptions import NotFittedError

from mixexp import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from mixexp._inference import (
    SingularInformationWarning,
    _Model,
    _validated,
    observed_information,
)
from mixexp._testing import central_differences, central_second_differences
from mixexp.datasets import make_moe_classification, make_moe_regression

ignore_convergence = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning"
)


def _fitted(kind, n_experts, n_features, n_samples=200, seed=0, n_targets=1, **params):
    if kind == "regressor":
        X, y, _ = make_moe_regression(n_samples, n_features, n_experts, noise=0.3,
                                      random_state=seed)
        if n_targets > 1:
            y = np.column_stack([y, 0.5 * y + X[:, 0] + 0.1 * np.cos(np.arange(n_samples))])
        params = {"alpha": 0.0, **params}
        est = MixtureOfExpertsRegressor(n_experts, random_state=0, max_iter=30, **params)
    else:
        X, y, _ = make_moe_classification(n_samples, n_features, n_experts, n_classes=3,
                                          random_state=seed)
        est = MixtureOfExpertsClassifier(n_experts, random_state=0, max_iter=30, **params)
    return est.fit(X, y), X, y


# ---- the analytic information against finite differences ---------------------
@ignore_convergence
@pytest.mark.parametrize("kind", ["regressor", "classifier"])
@pytest.mark.parametrize("n_experts, n_features", [(2, 1), (2, 5), (3, 2), (3, 4), (4, 1),
                                                   (4, 3)])
def test_information_matches_finite_differences(kind, n_experts, n_features):
    est, X, y = _fitted(kind, n_experts, n_features, n_samples=150, seed=n_experts + n_features)
    model, Xv, Y, w = _validated(est, X, y, None)
    # the likelihood of the table's parametrisation is the estimator's
    theta = model.theta(est)
    assert model.log_likelihood(theta, Xv, Y, w) == pytest.approx(
        est.log_likelihood(X, y) * len(y), rel=1e-12)
    # away from the optimum too, where the score term of the Hessian matters
    theta = theta + 0.05 * np.random.default_rng(0).standard_normal(theta.size)

    def loglik(t):
        return model.log_likelihood(t, Xv, Y, w)

    def score(t):
        return model.score_and_information(t, Xv, Y, w)[0]

    step = 1e-6
    E = np.eye(theta.size) * step
    fd_score = np.array([(loglik(theta + e) - loglik(theta - e)) / (2 * step) for e in E])
    np.testing.assert_allclose(score(theta), fd_score, rtol=1e-4,
                               atol=1e-4 * np.abs(fd_score).max())
    info = model.score_and_information(theta, Xv, Y, w)[1]
    if theta.size <= 12:
        # second differences of the log-likelihood itself (O(P^2) evaluations)
        fd_info = -central_second_differences(loglik, theta)
    else:
        # differences of the score, itself checked against the log-likelihood above
        fd_info = -np.array([(score(theta + e) - score(theta - e)) / (2 * step) for e in E])
        fd_info = (fd_info + fd_info.T) / 2
    scale = np.abs(fd_info).max()
    assert np.abs(info - fd_info).max() <= 1e-4 * scale
    np.testing.assert_allclose(info, fd_info, rtol=1e-4, atol=1e-5 * scale)


@ignore_convergence
def test_multi_output_regression_information():
    est, X, y = _fitted("regressor", 2, 2, n_samples=150, n_targets=2)
    table = est.summary(X, y)
    assert ("expert", 1, "y1:sigma") in table.index
    assert ("expert", 0, "y0:x1") in table.index
    model, Xv, Y, w = _validated(est, X, y, None)
    theta = model.theta(est)
    info = model.score_and_information(theta, Xv, Y, w)[1]
    fd_info = -central_second_differences(lambda t: model.log_likelihood(t, Xv, Y, w), theta)
    assert np.abs(info - fd_info).max() <= 1e-4 * np.abs(fd_info).max()


@pytest.mark.parametrize("kind", ["regressor", "classifier", "binary"])
def test_penalised_score_vanishes_at_the_fit(kind):
    """With alpha > 0 the penalty used for the information is the one training maximised."""
    rng = np.random.default_rng(3)
    if kind == "regressor":
        X, y, _ = make_moe_regression(300, 2, 2, noise=0.3, random_state=1)
        est = MixtureOfExpertsRegressor(2, alpha=5.0, tol=1e-12, max_iter=3000, random_state=0)
    else:  # two classes: the penalty is on the binary logit (issue 17)
        X, y, _ = make_moe_classification(300, 2, 2, n_classes=3 if kind == "classifier" else 2,
                                          random_state=1)
        est = MixtureOfExpertsClassifier(2, alpha=2.0, tol=1e-12, max_iter=3000,
                                         random_state=0)
    X = X * [1.0, 20.0]  # the gate's penalty acts on standardised weights
    w = rng.uniform(0.5, 2.0, len(y))
    est.fit(X, y, sample_weight=w)
    model, Xv, Y, weight = _validated(est, X, y, w)
    theta = model.theta(est)
    score = model.score_and_information(theta, Xv, Y, weight)[0]
    scale = est._x_scale  # the standardisation the fit's gate penalty acted on
    grad, hess = model.penalty(theta, scale)
    assert np.abs(score - grad).max() < 1e-3 * np.abs(score).max()
    step = 1e-6
    fd = np.array([(model.penalty(theta + step * e, scale)[0]
                    - model.penalty(theta - step * e, scale)[0]) / (2 * step)
                   for e in np.eye(theta.size)])
    np.testing.assert_allclose(hess, fd, atol=1e-6 * np.abs(hess).max())
    # the reported information is the penalised one
    _, _, info = observed_information(est, X, y, sample_weight=w)
    np.testing.assert_allclose(
        info, model.score_and_information(theta, Xv, Y, weight)[1] + hess, rtol=1e-12)


# ---- the table -------------------------------------------------------------------
@pytest.fixture(scope="module")
def regression_fit():
    X, y, _ = make_moe_regression(400, 2, 2, noise=0.3, random_state=0)
    X = pd.DataFrame(X, columns=["age", "dose"])
    est = MixtureOfExpertsRegressor(2, alpha=0.0, n_init=3, random_state=0).fit(X, y)
    return est, X, y


def test_summary_table_layout(regression_fit):
    est, X, y = regression_fit
    table = est.summary(X, y)
    assert table.index.names == ["part", "expert", "term"]
    assert list(table.columns) == ["coef", "std_err", "z", "p_value", "ci_lower", "ci_upper"]
    assert table.loc["gate"].index.get_level_values("expert").unique().tolist() == [1]
    assert table.loc[("gate", 1)].index.tolist() == ["intercept", "age", "dose"]
    assert table.loc[("expert", 0)].index.tolist() == ["intercept", "age", "dose", "sigma"]
    # reference coding on expert 0, user scale
    gate = table.loc[("gate", 1), "coef"].to_numpy()
    expected = np.r_[est.gate_intercept_[1] - est.gate_intercept_[0],
                     est.gate_coef_[1] - est.gate_coef_[0]]
    np.testing.assert_allclose(gate, expected)
    np.testing.assert_allclose(table.loc[("expert", 1, "sigma"), "coef"],
                               np.sqrt(est.expert_variance_[1]))
    np.testing.assert_allclose(table.loc[("expert", 1, "dose"), "coef"], est.expert_coef_[1, 1])
    assert (table["std_err"] > 0).all()
    assert (table["ci_lower"] < table["coef"]).all() and (table["coef"] < table["ci_upper"]).all()
    sigma = table.xs("sigma", level="term")
    assert sigma["z"].isna().all() and sigma["p_value"].isna().all()
    rest = table.drop(index="sigma", level="term")
    np.testing.assert_allclose(rest["z"], rest["coef"] / rest["std_err"])
    assert ((rest["p_value"] >= 0) & (rest["p_value"] <= 1)).all()
    with warnings.catch_warnings():
        # the index is lexsorted: partial indexing does not warn about performance
        warnings.simplefilter("error")
        table.loc[("expert", 1)]
    # 95% normal intervals; a narrower confidence gives narrower intervals
    np.testing.assert_allclose(rest["ci_upper"] - rest["coef"], 1.959964 * rest["std_err"],
                               rtol=1e-6)
    narrow = est.summary(X, y, confidence=0.5)
    assert ((narrow["ci_upper"] - narrow["ci_lower"])
            < (table["ci_upper"] - table["ci_lower"])).all()
    assert table.attrs["method"] == "hessian"
    # the covariance matrix behind it
    cov = est.parameter_covariance(X, y)
    assert cov.index.equals(table.index) and cov.columns.equals(table.index)
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), table["std_err"])
    np.testing.assert_allclose(cov.to_numpy(), cov.to_numpy().T)
    assert np.all(np.linalg.eigvalsh(cov.to_numpy()) > 0)


@ignore_convergence
def test_classifier_table_is_reference_coded_on_the_first_class():
    X, y, _ = make_moe_classification(400, 2, 2, n_classes=3, class_strength=1.5,
                                      random_state=0)
    labels = np.array(["cat", "dog", "emu"])[y]
    est = MixtureOfExpertsClassifier(2, random_state=0, max_iter=200).fit(X, labels)
    table = est.summary(X, labels)
    assert table.loc[("expert", 0)].index.tolist() == [
        "dog:intercept", "dog:x0", "dog:x1", "emu:intercept", "emu:x0", "emu:x1"]
    np.testing.assert_allclose(
        table.loc[("expert", 1, "emu:x0"), "coef"],
        est.expert_coef_[1, 2, 0] - est.expert_coef_[1, 0, 0])
    assert np.isfinite(table["std_err"]).all()


def test_integer_weights_act_as_repeated_rows(regression_fit):
    est, X, y = regression_fit
    counts = np.arange(len(y)) % 3
    weighted = est.summary(X, y, sample_weight=counts)
    repeated = est.summary(X.iloc[np.repeat(np.arange(len(y)), counts)],
                           np.repeat(y, counts))
    np.testing.assert_allclose(weighted["std_err"], repeated["std_err"], rtol=1e-9)


def test_standard_errors_shrink_with_the_square_root_of_n(regression_fit):
    est, X, y = regression_fit
    once = est.summary(X, y)["std_err"]
    # the same data four times: the information quadruples
    four = est.summary(X, y, sample_weight=np.full(len(y), 4.0))["std_err"]
    np.testing.assert_allclose(four, once / 2, rtol=1e-9)


def test_flexmix_layout_motorcycle_k1_matches_ols():
    """One expert: the Gaussian MLE, whose covariance is sigma^2 (X^T X)^-1."""
    from mixexp.datasets import load_motorcycle

    X, y = load_motorcycle(return_X_y=True)
    est = MixtureOfExpertsRegressor(1, alpha=0.0).fit(X, y)
    table = est.summary(X, y)
    X1 = np.column_stack([np.ones(len(y)), X])
    sigma2 = est.expert_variance_[0]
    ols = np.sqrt(np.diag(sigma2 * np.linalg.inv(X1.T @ X1)))
    np.testing.assert_allclose(table["std_err"].to_numpy()[:2], ols, rtol=1e-8)
    # sigma's MLE has variance sigma^2 / (2n)
    assert table["std_err"].iloc[2] == pytest.approx(np.sqrt(sigma2 / (2 * len(y))), rel=1e-8)


# ---- warnings and refusals -------------------------------------------------------
@ignore_convergence
def test_collinear_design_warns_naming_the_parameters():
    X, y, _ = make_moe_regression(300, 1, 2, noise=0.3, random_state=0)
    X = np.column_stack([X[:, 0], 2.0 * X[:, 0]])
    est = MixtureOfExpertsRegressor(2, alpha=0.0, random_state=0, max_iter=50).fit(X, y)
    with pytest.warns(SingularInformationWarning, match=r"\('expert', 0, 'x1'\)"):
        table = est.summary(X, y)
    assert table.loc[("expert", 0, "x0"), "std_err"] != table.loc[("expert", 0, "x0"),
                                                                   "std_err"]  # NaN
    assert np.isfinite(table.loc[("expert", 0, "sigma"), "std_err"])


def _copy_with(est, **params):
    other = copy.deepcopy(est)
    return other.set_params(**params)


@pytest.mark.parametrize("params, match", [
    ({"gating": "hard"}, "gating='hard'"),
    ({"top_k": 1}, "top_k=1"),
    ({"balance": 0.1}, "balance=0.1"),
])
def test_models_without_a_hessian_are_refused(regression_fit, params, match):
    est, X, y = regression_fit
    other = _copy_with(est, **params)
    with pytest.raises(ValueError, match=match):
        other.summary(X, y)
    with pytest.raises(ValueError, match=match):
        other.parameter_covariance(X, y)


def test_top_k_equal_to_n_experts_is_soft_gating(regression_fit):
    est, X, y = regression_fit
    pd.testing.assert_frame_equal(_copy_with(est, top_k=2).summary(X, y), est.summary(X, y))


@pytest.mark.parametrize("kwargs, match", [
    ({"confidence": 1.0}, "confidence"),
    ({"confidence": 0}, "confidence"),
    ({"method": "jackknife"}, "method"),
    ({"method": "bootstrap", "n_boot": 1}, "n_boot"),
    ({"method": "bootstrap", "n_boot": 2.5}, "n_boot"),
])
def test_bad_arguments(regression_fit, kwargs, match):
    est, X, y = regression_fit
    with pytest.raises(ValueError, match=match):
        est.summary(X, y, **kwargs)


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_unfitted_and_mismatched_input(regression_fit):
    est, X, y = regression_fit
    with pytest.raises(NotFittedError):
        MixtureOfExpertsRegressor().summary(X, y)
    with pytest.raises(NotFittedError):
        MixtureOfExpertsClassifier().icl(X, y)
    with pytest.raises(ValueError, match="features"):
        est.summary(X.to_numpy()[:, :1], y)
    with pytest.raises(ValueError, match="inconsistent"):
        est.summary(X, y[:-1])


# ---- bootstrap -------------------------------------------------------------------
def test_bootstrap_agrees_with_the_hessian():
    X, y, _ = make_moe_regression(400, 1, 2, noise=0.3, gate_strength=2.0, random_state=2)
    est = MixtureOfExpertsRegressor(2, alpha=0.0, n_init=3, random_state=0).fit(X, y)
    hessian = est.summary(X, y)
    boot = est.summary(X, y, method="bootstrap", n_boot=50, random_state=0)
    assert boot.attrs["n_boot"] == 50
    pd.testing.assert_series_equal(boot["coef"], hessian["coef"])
    ratio = boot["std_err"] / hessian["std_err"]
    # 50 replicates estimate an SE to about +-10%
    assert 0.75 < np.median(ratio) < 1.3, ratio
    assert ratio.between(0.5, 2.0).all(), ratio
    assert (boot["ci_lower"] < boot["coef"]).all() and (boot["coef"] < boot["ci_upper"]).all()


def test_bootstrap_is_reproducible_in_parallel(regression_fit):
    est, X, y = regression_fit
    serial = est.summary(X, y, method="bootstrap", n_boot=4, random_state=0)
    # threads: the seeding is what is tested, and processes take seconds to start
    with parallel_config(backend="threading"):
        parallel = est.summary(X, y, method="bootstrap", n_boot=4, random_state=0, n_jobs=2)
    pd.testing.assert_frame_equal(serial, parallel)


# ---- ICL -----------------------------------------------------------------------------
def test_icl_is_bic_plus_twice_the_entropy(regression_fit):
    est, X, y = regression_fit
    resp = est.predict_responsibilities(X, y)
    assert est.icl(X, y) == pytest.approx(est.bic(X, y) + 2 * entr(resp).sum(), rel=1e-12)
    assert est.icl(X, y) > est.bic(X, y)
    hard = MixtureOfExpertsRegressor(2, gating="hard", random_state=0).fit(X, y)
    assert hard.icl(X, y) == pytest.approx(hard.bic(X, y), rel=1e-12)


def test_parameter_count_matches_bic(regression_fit):
    est, X, y = regression_fit
    n = len(y)
    count = (est.bic(X, y) - est.aic(X, y)) / (np.log(n) - 2)
    assert _Model(est).n_params == round(count) == len(est.summary(X, y))


# ---- coverage ----------------------------------------------------------------------
def test_wald_intervals_cover_the_truth():
    """Small version of benchmarks/bench_inference.py: pooled z-scores are standard normal."""
    z = []
    for seed in range(25):
        X, y, truth = make_moe_regression(400, 1, 2, noise=0.5, gate_strength=2.0,
                                          random_state=100 + seed)
        est = MixtureOfExpertsRegressor(2, alpha=0.0, n_init=2, random_state=0).fit(X, y)
        table = est.summary(X, y)
        # label switching: expert 0 of the fit is the true expert nearest to it
        fitted = np.c_[est.expert_intercept_, est.expert_coef_]
        true_experts = np.c_[truth.expert_intercept, truth.expert_coef]
        cost = np.abs(fitted[:, None, :] - true_experts[None, :, :]).sum(axis=2)
        order = linear_sum_assignment(cost)[1]  # fitted expert k is true expert order[k]
        gate = np.c_[truth.gate_intercept, truth.gate_coef][order]
        true = np.r_[gate[1] - gate[0],
                     np.c_[truth.expert_intercept, truth.expert_coef,
                           np.sqrt(truth.expert_variance)][order].ravel()]
        z.append((table["coef"].to_numpy() - true) / table["std_err"].to_numpy())
    z = np.concatenate(z)
    coverage = np.mean(np.abs(z) < 1.96)
    assert 0.88 <= coverage <= 0.99, coverage
    assert 0.8 < np.std(z) < 1.25, np.std(z)


# ---- Poisson experts and column selections -------------------------------------
def _counts(n, n_features, n_experts, seed=0, n_targets=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    gate = rng.normal(size=(n_experts, n_features))
    k = np.array([rng.choice(n_experts, p=p) for p in
                  np.exp(X @ gate.T) / np.exp(X @ gate.T).sum(axis=1, keepdims=True)])
    coef = 0.5 * rng.normal(size=(n_experts, n_targets, n_features))
    intercept = rng.normal(1.0, 0.7, size=(n_experts, n_targets))
    y = rng.poisson(np.exp(np.einsum("nd,ntd->nt", X, coef[k]) + intercept[k]))
    return X, (y[:, 0] if n_targets == 1 else y)


# R 4 glm(Patents ~ lgRD + RDS, family = poisson, data = patent.csv,
# weights = rep(c(1, 2, 3), length.out = nrow(data)),
# control = glm.control(epsilon = 1e-14, maxit = 100)): estimates, standard errors
R_GLM_POISSON = np.array([[0.554623653112, 0.0645411701585],
                          [0.938760196898, 0.0163156331550],
                          [0.361446620359, 0.0291890737693]])


def test_one_poisson_expert_has_glm_standard_errors():
    from pathlib import Path

    data = pd.read_csv(Path(__file__).parent / "data" / "patent.csv")
    weight = np.resize([1.0, 2.0, 3.0], len(data))
    est = MixtureOfExpertsRegressor(1, expert="poisson", alpha=0.0, tol=1e-12, max_iter=1000,
                                    random_state=0)
    est.fit(data[["lgRD", "RDS"]], data["Patents"], sample_weight=weight)
    table = est.summary(data[["lgRD", "RDS"]], data["Patents"], sample_weight=weight)
    rows = [("expert", 0, term) for term in ["intercept", "lgRD", "RDS"]]
    assert table.index.tolist() == rows
    np.testing.assert_allclose(table.loc[rows, "coef"], R_GLM_POISSON[:, 0], rtol=1e-6)
    np.testing.assert_allclose(table.loc[rows, "std_err"], R_GLM_POISSON[:, 1], rtol=1e-5)


@ignore_convergence
@pytest.mark.parametrize("n_experts, n_features, n_targets", [(2, 1, 1), (2, 3, 1), (3, 2, 1),
                                                              (2, 2, 2)])
def test_poisson_information_matches_finite_differences(n_experts, n_features, n_targets):
    X, y = _counts(200, n_features, n_experts, seed=n_experts + n_features,
                   n_targets=n_targets)
    est = MixtureOfExpertsRegressor(n_experts, expert="poisson", alpha=0.0, max_iter=50,
                                    random_state=0).fit(X, y)
    model, Xv, Y, w = _validated(est, X, y, None)
    theta = model.theta(est)
    assert model.log_likelihood(theta, Xv, Y, w) == pytest.approx(
        est.log_likelihood(X, y) * len(y), rel=1e-12)
    theta = theta + 0.05 * np.random.default_rng(0).standard_normal(theta.size)

    def loglik(t):
        return model.log_likelihood(t, Xv, Y, w)

    score, info = model.score_and_information(theta, Xv, Y, w)
    step = 1e-6
    fd_score = central_differences(loglik, theta, step)
    np.testing.assert_allclose(score, fd_score, rtol=1e-4, atol=1e-4 * np.abs(fd_score).max())
    fd_info = -central_second_differences(loglik, theta)
    scale = np.abs(fd_info).max()
    np.testing.assert_allclose(info, fd_info, rtol=1e-4, atol=1e-5 * scale)
    table = est.summary(X, y)
    assert len(table) == theta.size and np.all(np.isfinite(table["std_err"]))


def test_penalised_poisson_score_vanishes_at_the_fit():
    X, y = _counts(300, 2, 2, seed=4)
    X = X * [1.0, 20.0]
    est = MixtureOfExpertsRegressor(2, expert="poisson", alpha=3.0, tol=1e-12, max_iter=5000,
                                    random_state=0).fit(X, y)
    model, Xv, Y, weight = _validated(est, X, y, None)
    theta = model.theta(est)
    score = model.score_and_information(theta, Xv, Y, weight)[0]
    grad, hess = model.penalty(theta, est._x_scale)
    assert np.abs(score - grad).max() < 1e-3 * np.abs(score).max()
    fd = np.array([(model.penalty(theta + 1e-6 * e, est._x_scale)[0]
                    - model.penalty(theta - 1e-6 * e, est._x_scale)[0]) / 2e-6
                   for e in np.eye(theta.size)])
    np.testing.assert_allclose(hess, fd, atol=1e-6 * np.abs(hess).max())


@ignore_convergence
@pytest.mark.filterwarnings("ignore:The observed information")  # (50 iterations only)
@pytest.mark.parametrize("expert", ["gaussian", "poisson", "classifier"])
@pytest.mark.parametrize("gate_features, expert_features", [([2], [0, 1]), (None, [1]),
                                                            ([0, 2], None)])
def test_column_selections_get_tables_of_their_own_columns(expert, gate_features,
                                                           expert_features):
    if expert == "poisson":
        X, y = _counts(200, 3, 2, seed=5)
        est = MixtureOfExpertsRegressor(2, expert="poisson", alpha=0.0, max_iter=50,
                                        random_state=0)
    elif expert == "gaussian":
        X, y, _ = make_moe_regression(200, 3, 2, noise=0.3, random_state=5)
        est = MixtureOfExpertsRegressor(2, alpha=0.0, max_iter=50, random_state=0)
    else:
        X, y, _ = make_moe_classification(200, 3, 2, n_classes=3, random_state=5)
        est = MixtureOfExpertsClassifier(2, max_iter=50, random_state=0)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    est.set_params(gate_features=gate_features, expert_features=expert_features).fit(frame, y)
    table = est.summary(frame, y)
    names = np.array(["a", "b", "c"])
    gate_terms = {t for part, _, t in table.index if part == "gate"}
    expert_terms = {t.split(":")[-1] for part, _, t in table.index if part == "expert"}
    gate_names = set(names[gate_features] if gate_features is not None else names)
    expert_names = set(names[expert_features] if expert_features is not None else names)
    assert gate_terms == {"intercept", *gate_names}
    assert expert_terms - {"intercept", "sigma"} == expert_names
    model, Xv, Y, w = _validated(est, frame, y, None)
    theta = model.theta(est)
    assert len(table) == theta.size
    assert model.log_likelihood(theta, Xv, Y, w) == pytest.approx(
        est.log_likelihood(frame, y) * len(y), rel=1e-12)
    theta = theta + 0.05 * np.random.default_rng(1).standard_normal(theta.size)
    info = model.score_and_information(theta, Xv, Y, w)[1]
    fd_info = -central_second_differences(lambda t: model.log_likelihood(t, Xv, Y, w), theta)
    scale = np.abs(fd_info).max()
    np.testing.assert_allclose(info, fd_info, rtol=1e-4, atol=1e-5 * scale)
