"""Wald tables for Student-t experts (mixexp/_inference.py, _StudentTPart): the analytic
observed information against an independent finite-difference Hessian, the Gaussian
limit, degrees of freedom on a bound, weights, the penalty and the refused gatings."""

import copy
import itertools
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import logsumexp

from mixexp import MixtureOfExpertsRegressor
from mixexp._experts._student_t import MAX_DOF, MIN_DOF
from mixexp._inference import _validated, observed_information
from mixexp._testing import central_second_differences

ignore_convergence = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning"
)


def _t_mixture(n, n_experts, n_targets=1, seed=0, dof=4.0):
    """One feature, a soft gate 2 x (experts 1..K-1), lines per expert and target, and
    multivariate t noise (one latent scale per row, shared by the targets)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 1))
    logits = np.column_stack([2.0 * k * X[:, 0] for k in range(n_experts)])
    gate = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    k = np.array([rng.choice(n_experts, p=g) for g in gate])
    intercept = np.array([[1.0, 0.5], [-1.0, -0.5], [0.0, 2.0]])[:n_experts, :n_targets]
    slope = np.array([[2.0, -1.0], [-1.0, 1.5], [0.5, 0.0]])[:n_experts, :n_targets]
    latent = rng.gamma(dof / 2, 2 / dof, size=n)
    noise = 0.4 * rng.normal(size=(n, n_targets)) / np.sqrt(latent)[:, None]
    Y = intercept[k] + slope[k] * X + noise
    return X, (Y[:, 0] if n_targets == 1 else Y)


def _scipy_log_likelihood(theta, X, Y, n_experts, n_targets):
    """The mixture's log-likelihood in the table's parametrisation, from scipy.stats:
    gate rows [b_k - b_0, v_k - v_0] for k >= 1, then per expert [intercept, w, log sigma]
    per target and log nu."""
    n, d = X.shape
    q = d + 1
    X1 = np.column_stack([np.ones(n), X])
    Y = Y.reshape(n, -1)
    gate = theta[: (n_experts - 1) * q].reshape(n_experts - 1, q)
    experts = theta[(n_experts - 1) * q:].reshape(n_experts, n_targets * (q + 1) + 1)
    logits = np.zeros((n, n_experts))
    logits[:, 1:] = X1 @ gate.T
    log_gate = logits - logsumexp(logits, axis=1, keepdims=True)
    log_f = np.empty((n, n_experts))
    for k in range(n_experts):
        block = experts[k, :-1].reshape(n_targets, q + 1)
        nu = np.exp(experts[k, -1])
        loc = X1 @ block[:, :q].T
        scale = np.exp(block[:, q])
        if n_targets == 1:
            log_f[:, k] = stats.t.logpdf(Y[:, 0], nu, loc=loc[:, 0], scale=scale[0])
        else:  # diagonal scale: the standard p-variate t of the standardised residuals
            standard = stats.multivariate_t(loc=np.zeros(n_targets), shape=np.eye(n_targets),
                                            df=nu)
            log_f[:, k] = standard.logpdf((Y - loc) / scale) - np.log(scale).sum()
    return float(logsumexp(log_gate + log_f, axis=1).sum())


# ---- the analytic information against scipy.stats and finite differences ---------------
@ignore_convergence
@pytest.mark.parametrize("n_experts, n_targets", [(1, 1), (2, 1), (1, 2), (2, 2)])
def test_information_is_the_hessian_of_the_scipy_log_likelihood(n_experts, n_targets):
    X, y = _t_mixture(400, n_experts, n_targets, seed=n_experts + 10 * n_targets)
    est = MixtureOfExpertsRegressor(n_experts, expert="student_t", alpha=0.0, n_init=2,
                                    max_iter=300, random_state=0).fit(X, y)
    assert np.all((est.expert_dof_ > 1.0) & (est.expert_dof_ < 100.0))  # interior nu
    model, Xv, Y, w = _validated(est, X, y, None)
    theta = model.theta(est)

    def loglik(t):
        return _scipy_log_likelihood(t, X, y, n_experts, n_targets)

    # the parametrisation is the estimator's, and its likelihood scipy's
    assert loglik(theta) == pytest.approx(est.log_likelihood(X, y) * len(X), rel=1e-10)
    info = model.score_and_information(theta, Xv, Y, w)[1]
    fd_info = -central_second_differences(loglik, theta)
    scale = np.abs(fd_info).max()
    np.testing.assert_allclose(info, fd_info, rtol=1e-4, atol=1e-5 * scale)
    # the score too, away from the optimum, where it is not zero
    shifted = theta + 0.05 * np.random.default_rng(1).standard_normal(theta.size)
    E = np.eye(theta.size) * 1e-6
    fd_score = np.array([(loglik(shifted + e) - loglik(shifted - e)) / 2e-6 for e in E])
    np.testing.assert_allclose(model.score_and_information(shifted, Xv, Y, w)[0], fd_score,
                               rtol=1e-5, atol=1e-6 * np.abs(fd_score).max())
    table = est.summary(X, y)
    assert len(table) == theta.size and np.all(np.isfinite(table["std_err"]))


def test_summary_layout_and_reported_parameters():
    X, y = _t_mixture(400, 2, seed=3)
    est = MixtureOfExpertsRegressor(2, expert="student_t", alpha=0.0, n_init=2, tol=1e-8,
                                    max_iter=500, random_state=0).fit(X, y)
    table = est.summary(X, y)
    expert_rows = [("expert", k, t) for k in range(2)
                   for t in ["intercept", "x0", "sigma", "dof"]]
    assert table.index.tolist() == [("gate", 1, "intercept"), ("gate", 1, "x0")] + expert_rows
    np.testing.assert_allclose(table.loc[("expert", slice(None), "dof"), "coef"],
                               est.expert_dof_, rtol=1e-12)
    np.testing.assert_allclose(table.loc[("expert", slice(None), "sigma"), "coef"],
                               np.sqrt(est.expert_variance_), rtol=1e-12)
    positive = table.loc[("expert", slice(None), ["sigma", "dof"]), :]
    # no test of sigma = 0 or nu = 0; intervals on the log scale stay positive
    assert positive["z"].isna().all() and positive["p_value"].isna().all()
    assert (positive["ci_lower"] > 0).all()
    assert (positive["ci_lower"] < positive["coef"]).all()
    assert (positive["coef"] < positive["ci_upper"]).all()
    assert table.attrs["fixed"] == []
    # the covariance is the one behind the table (nu by the delta method)
    cov = est.parameter_covariance(X, y)
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), table["std_err"], rtol=1e-12)
    info = observed_information(est, X, y)[2]
    se_log_dof = np.sqrt(np.diag(np.linalg.inv(info)))[-1]
    assert table["std_err"].iloc[-1] == pytest.approx(est.expert_dof_[1] * se_log_dof,
                                                      rel=1e-6)


# ---- the Gaussian limit ------------------------------------------------------------------
def _gaussian_and_t(noise):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 2))
    y = 1.0 + X @ [2.0, -1.0] + noise(rng, 300)
    fit = {"alpha": 0.0, "tol": 1e-12, "max_iter": 500}
    gaussian = MixtureOfExpertsRegressor(1, **fit).fit(X, y)
    t = MixtureOfExpertsRegressor(1, expert="student_t", **fit).fit(X, y)
    return X, y, gaussian, t


def test_dof_on_the_upper_bound_is_fixed_and_the_rest_are_the_gaussian_ones():
    # uniform noise has lighter tails than any t: the fit takes nu to MAX_DOF
    X, y, gaussian, t = _gaussian_and_t(lambda rng, n: rng.uniform(-1, 1, n))
    assert t.expert_dof_[0] == pytest.approx(MAX_DOF)
    with pytest.warns(UserWarning, match=r"\('expert', 0, 'dof'\) = 1e\+06.*held fixed"):
        table = t.summary(X, y)
    reference = gaussian.summary(X, y)
    assert table.attrs["fixed"] == [("expert", 0, "dof")]
    nu = table.loc[("expert", 0, "dof")]
    assert nu["coef"] == pytest.approx(MAX_DOF)
    assert nu[["std_err", "z", "p_value", "ci_lower", "ci_upper"]].isna().all()
    # at nu = 1e6 the t is Gaussian to about p / nu: the same estimates and errors
    np.testing.assert_allclose(table["coef"].iloc[:4], reference["coef"], rtol=1e-5)
    np.testing.assert_allclose(table["std_err"].iloc[:4], reference["std_err"], rtol=1e-5)
    with pytest.warns(UserWarning, match="held fixed"):
        cov = t.parameter_covariance(X, y).to_numpy()
    assert np.isnan(cov[-1]).all() and np.isnan(cov[:, -1]).all()
    assert np.isfinite(cov[:-1, :-1]).all()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_information_given_nu_approaches_the_gaussian_one_as_nu_grows():
    X, y, gaussian, t = _gaussian_and_t(lambda rng, n: 0.5 * rng.normal(size=n))
    _, _, gaussian_info = observed_information(gaussian, X, y)
    gaussian_se = np.sqrt(np.diag(np.linalg.inv(gaussian_info)))
    gaps = []
    for nu in [1e2, 1e3, 1e4, 1e5]:
        at = copy.deepcopy(t)  # the t expert at the Gaussian estimates, nu given
        at.expert_coef_, at.expert_intercept_ = gaussian.expert_coef_, gaussian.expert_intercept_
        at.expert_variance_, at.expert_dof_ = gaussian.expert_variance_, np.array([nu])
        _, _, info = observed_information(at, X, y)
        se = np.sqrt(np.diag(np.linalg.inv(info[:-1, :-1])))  # conditional on nu
        gaps.append(np.abs(se / gaussian_se - 1).max())
    # the t's information is the Gaussian one plus O(p / nu)
    assert gaps[0] > 1e-3
    assert all(later < 0.2 * earlier for earlier, later in itertools.pairwise(gaps)), gaps
    assert gaps[-1] < 1e-4, gaps


def test_dof_on_the_lower_bound_is_fixed():
    X, y = _t_mixture(300, 2, seed=5)
    est = MixtureOfExpertsRegressor(2, expert="student_t", alpha=0.0, max_iter=200,
                                    random_state=0).fit(X, y)
    at = copy.deepcopy(est)
    at.expert_dof_ = np.array([est.expert_dof_[0], MIN_DOF])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (the rest of the information is regular)
        with pytest.raises(UserWarning, match=r"\('expert', 1, 'dof'\) = 0\.5"):
            at.summary(X, y)
    with pytest.warns(UserWarning, match="held fixed"):
        table = at.summary(X, y)
    assert table.attrs["fixed"] == [("expert", 1, "dof")]
    assert np.isnan(table.loc[("expert", 1, "dof"), "std_err"])
    assert table["std_err"].drop(("expert", 1, "dof")).notna().all()


# ---- weights, the penalty, refused gatings ------------------------------------------------
@ignore_convergence
def test_integer_weights_act_as_repeated_rows():
    X, y = _t_mixture(200, 2, seed=7)
    counts = np.random.default_rng(0).integers(1, 4, size=len(y))
    est = MixtureOfExpertsRegressor(2, expert="student_t", alpha=0.0, max_iter=200,
                                    random_state=0).fit(X, y, sample_weight=counts)
    weighted = est.summary(X, y, sample_weight=counts)
    rows = np.repeat(np.arange(len(y)), counts)
    repeated = est.summary(X[rows], y[rows])
    np.testing.assert_allclose(weighted["std_err"], repeated["std_err"], rtol=1e-9)
    assert not np.allclose(weighted["std_err"], est.summary(X, y)["std_err"], rtol=1e-2)


def test_penalised_score_vanishes_at_the_fit():
    """With alpha > 0 the table's information is the penalised one, and the penalty is
    the one training maximised (its gradient balances the score at the fit)."""
    X, y = _t_mixture(300, 2, seed=4)
    X = X * 20.0  # the penalty is on the user's scale
    w = np.random.default_rng(3).uniform(0.5, 2.0, len(y))
    est = MixtureOfExpertsRegressor(2, expert="student_t", alpha=30.0, tol=1e-13,
                                    max_iter=5000, random_state=0).fit(X, y, sample_weight=w)
    model, Xv, Y, weight = _validated(est, X, y, w)
    theta = model.theta(est)
    score, plain = model.score_and_information(theta, Xv, Y, weight)
    grad, hess = model.penalty(theta, est._x_scale)
    assert np.abs(grad).max() > 1e-2 * np.abs(score).max()  # the penalty matters
    assert np.abs(score - grad).max() < 1e-3 * np.abs(score).max()
    fd = np.array([(model.penalty(theta + 1e-6 * e, est._x_scale)[0]
                    - model.penalty(theta - 1e-6 * e, est._x_scale)[0]) / 2e-6
                   for e in np.eye(theta.size)])
    np.testing.assert_allclose(hess, fd, atol=1e-6 * np.abs(hess).max())
    assert np.all(hess[:, -1] == 0.0)  # nu is not penalised
    _, _, info = observed_information(est, X, y, sample_weight=w)
    np.testing.assert_allclose(info, plain + hess, rtol=1e-12)


@ignore_convergence
@pytest.mark.parametrize("params, match", [({"gating": "hard"}, "gating='hard'"),
                                           ({"top_k": 1}, "top_k=1"),
                                           ({"balance": 0.1}, "balance=0.1")])
def test_models_without_a_hessian_are_refused(params, match):
    X, y = _t_mixture(200, 2, seed=2)
    est = MixtureOfExpertsRegressor(2, expert="student_t", max_iter=20, random_state=0,
                                    **params).fit(X, y)
    with pytest.raises(ValueError, match=match):
        est.summary(X, y)
    with pytest.raises(ValueError, match=match):
        est.parameter_covariance(X, y)


def test_bad_targets_are_refused():
    X, y = _t_mixture(200, 1, seed=2)
    est = MixtureOfExpertsRegressor(1, expert="student_t", max_iter=1000, random_state=0)
    est.fit(X, y)
    with pytest.raises(ValueError, match="target"):
        est.summary(X, np.column_stack([y, y]))
    y_before = y.copy()
    est.summary(X, y)
    np.testing.assert_array_equal(y, y_before)


# benchmarks/reference/student_t_regression_se.R (R 4, base R: stats::dt, nlminb, and
# optimHess with ndeps = 1e-5) on R's stackloss data: the log-likelihood and, per row,
# the estimate and its standard error (sigma and nu by the delta method)
R_STACKLOSS_LOG_LIKELIHOOD = -49.5676769064
R_STACKLOSS_T = np.array([[-38.482658271, 3.80270680351],
                          [0.851989928376, 0.0514770615101],
                          [0.490246892896, 0.135488385595],
                          [-0.0705649378027, 0.053297783341],
                          [0.914765013207, 0.389876437025],
                          [1.07669953117, 0.489082099652]])


def test_one_t_expert_matches_a_maximum_likelihood_t_regression_in_r():
    data = pd.read_csv(Path(__file__).parent / "data" / "stackloss.csv")
    X, y = data[["Air.Flow", "Water.Temp", "Acid.Conc."]], data["stack.loss"]
    est = MixtureOfExpertsRegressor(1, expert="student_t", alpha=0.0, tol=1e-14,
                                    max_iter=20000, random_state=0).fit(X, y)
    assert est.log_likelihood(X, y) * len(y) == pytest.approx(R_STACKLOSS_LOG_LIKELIHOOD,
                                                              abs=1e-9)
    table = est.summary(X, y)
    assert table.index.get_level_values("term").tolist() == [
        "intercept", "Air.Flow", "Water.Temp", "Acid.Conc.", "sigma", "dof"]
    np.testing.assert_allclose(table["coef"], R_STACKLOSS_T[:, 0], rtol=1e-5)
    # (R's Hessian is of finite differences: about 1e-4 from the analytic one)
    np.testing.assert_allclose(table["std_err"], R_STACKLOSS_T[:, 1], rtol=1e-3)
