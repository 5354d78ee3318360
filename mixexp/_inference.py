"""Inference for fitted mixtures of experts: observed information, standard errors, ICL.

Everything here is computed from the estimators' public fitted attributes
(``gate_coef_``, ``gate_intercept_``, ``expert_coef_``, ...) on the user's
scale, so it does not depend on how the estimators store or train their
parameters.

Parametrisation
---------------
The softmax gate and the multinomial experts are over-parametrised (adding
the same vector to every row changes nothing), so they are reference-coded:
the gate on expert 0 (rows for experts 1..K-1, ``v_k - v_0``), a classifier
expert on its first class (``w_kc - w_k0``), as flexmix and statsmodels'
MNLogit do. A Gaussian expert's noise enters as ``log sigma``; the table
reports ``sigma`` (delta method). A Student-t expert's scale and degrees of
freedom enter as ``log sigma`` and ``log nu`` and are reported as ``sigma``
and ``dof`` likewise; a nu on its bound is held fixed (see
:func:`_covariance`).

Observed information
--------------------
With ``a_ik = log g_k(x_i) + log f_k(y_i | x_i)`` and responsibilities
``h_ik``, the per-row log-likelihood ``l_i = logsumexp_k a_ik`` has the exact
Hessian (Louis 1982)::

    -d2 l_i = E_h[-d2 a_k] - Cov_h[d a_k]

the complete-data information minus the missing information. Both pieces
are block-structured: the gate's complete-data part is the softmax
information ``(diag(g) - g g^T) (x) x x^T``, an expert's is its own
(responsibility-weighted) GLM information, and the covariance over the
latent expert is ``E_h[v v^T] - E_h[v] E_h[v]^T`` with ``v`` the
complete-data score. Each is summed over rows as weighted Gram products
(BLAS), a block of rows at a time.
"""

import copy
import numbers
import warnings

import numpy as np
from scipy.linalg.blas import dsyrk
from scipy.optimize import linear_sum_assignment
from scipy.special import (
    digamma,
    entr,
    gammaln,
    log_softmax,
    logsumexp,
    ndtr,
    ndtri,
    polygamma,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_consistent_length,
    check_is_fitted,
    validate_data,
)

from ._backend import to_host
from ._experts._logistic import class_penalty_factor
from ._experts._poisson import check_counts
from ._experts._student_t import MAX_DOF, MIN_DOF

# Rows per block when summing the information: bounds the (rows, P)
# temporaries (a few tens of MB at P of a few hundred).
_BLOCK_ROWS = 8192
# Reciprocal condition number of the correlation-scaled information below
# which the standard errors are not trusted (and the parameters are named).
_SINGULAR_RCOND = 1e-10
# A parameter is named when its loading on a null direction is at least this
# fraction of the direction's largest loading.
_LOADING = 0.5
# A Student-t expert's nu within this distance of a bound, in log nu, is on it:
# the fit clips nu to [MIN_DOF, MAX_DOF] (in log nu for the gradient solvers).
_ON_BOUND = 1e-6


class SingularInformationWarning(UserWarning):
    """The observed information is (near-)singular: some standard errors are unreliable."""


# ---------------------------------------------------------------------------
# Expert families on the user's scale
# ---------------------------------------------------------------------------
class _LinearPredictorPart:
    """Experts with a linear predictor per target: ``[intercept, w_1..w_d]`` and then
    the family's own ``TRAILING_TERMS`` per target (shared layout, labels and targets)."""

    TRAILING_TERMS = ()

    def __init__(self, est):
        coef = np.asarray(est.expert_coef_, dtype=np.float64)
        self.n_experts = coef.shape[0]
        self.multi = np.ndim(est.expert_intercept_) == 2
        self.n_targets = coef.shape[1] if self.multi else 1
        self.n_features = coef.shape[-1]
        # each expert's penalty per weight on the user's scale: (K, d)
        self.alpha = est._fitted_penalties()[1]

    @property
    def n_params(self):
        return self.n_targets * (self.n_features + 1 + len(self.TRAILING_TERMS))

    def terms(self, features):
        names = []
        for t in range(self.n_targets):
            prefix = f"y{t}:" if self.n_targets > 1 else ""
            names += [prefix + name
                      for name in ["intercept", *features, *self.TRAILING_TERMS]]
        return names

    def fixed(self):
        """(K, p): parameters the table holds at their fitted values (none here)."""
        return np.zeros((self.n_experts, self.n_params), dtype=bool)

    def encode(self, est, y):
        y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
        Y = y.reshape(len(y), -1)
        if Y.shape[1] != self.n_targets:
            raise ValueError(
                f"y has {Y.shape[1]} target(s) but the model was fitted on {self.n_targets}."
            )
        return Y


class _GaussianPart(_LinearPredictorPart):
    """Linear-Gaussian experts: per expert and target ``[intercept, w_1..w_d, log sigma]``."""

    TRAILING_TERMS = ("sigma",)

    def theta(self, est, order):
        """(K, p) parameter rows, experts in ``order``."""
        K, T, d = self.n_experts, self.n_targets, self.n_features
        coef = np.reshape(est.expert_coef_, (K, T, d))[order]
        intercept = np.reshape(est.expert_intercept_, (K, T))[order]
        log_sigma = 0.5 * np.log(np.reshape(est.expert_variance_, (K, T))[order])
        return np.concatenate([intercept[..., None], coef, log_sigma[..., None]],
                              axis=2).reshape(K, -1)

    def scale_mask(self):
        """True where the parameter is a log sigma (reported as sigma)."""
        mask = np.zeros((self.n_targets, self.n_features + 2), dtype=bool)
        mask[:, -1] = True
        return mask.ravel()

    def _split(self, theta_k):
        block = theta_k.reshape(self.n_targets, self.n_features + 2)
        return block[:, :-1], block[:, -1]  # beta (T, d+1), log sigma (T,)

    def prepare(self, theta, X1, Y):
        """Per-expert row quantities: log density (n, K) and residuals."""
        n = X1.shape[0]
        log_f = np.zeros((n, self.n_experts))
        cache = []
        for k in range(self.n_experts):
            beta, log_sigma = self._split(theta[k])
            inv_var = np.exp(-2.0 * log_sigma)
            resid = Y - X1 @ beta.T  # (n, T)
            z2 = resid**2 * inv_var
            log_f[:, k] = np.sum(-0.5 * np.log(2.0 * np.pi) - log_sigma - 0.5 * z2, axis=1)
            cache.append((resid, inv_var, z2))
        return log_f, cache

    def score_rows(self, cache, k, X1):
        """d log f_k / d theta_k per row: (n, p)."""
        resid, inv_var, z2 = cache[k]
        n = X1.shape[0]
        coef_part = (resid * inv_var)[:, :, None] * X1[:, None, :]
        return np.concatenate([coef_part, (z2 - 1.0)[:, :, None]], axis=2).reshape(n, -1)

    def complete_information(self, cache, k, X1, weight):
        """sum_i weight_i (-d2 log f_k): (p, p)."""
        resid, inv_var, z2 = cache[k]
        q = self.n_features + 1
        info = np.zeros((self.n_targets, q + 1, self.n_targets, q + 1))
        for t in range(self.n_targets):
            u = weight * inv_var[t]
            info[t, :q, t, :q] = _gram(X1, u)
            cross = 2.0 * X1.T @ (u * resid[:, t])
            info[t, :q, t, q] = cross
            info[t, q, t, :q] = cross
            info[t, q, t, q] = 2.0 * weight @ z2[:, t]
        return info.reshape(self.n_params, self.n_params)

    def penalty(self, theta_k, k):
        """Gradient and Hessian of sum_j alpha_kj w_j^2 / (2 sigma^2) for expert k
        (Ridge's convention)."""
        q = self.n_features + 1
        grad = np.zeros((self.n_targets, q + 1))
        hess = np.zeros((self.n_targets, q + 1, self.n_targets, q + 1))
        beta, log_sigma = self._split(theta_k)
        for t in range(self.n_targets):
            w = beta[t, 1:]
            s = self.alpha[k] * np.exp(-2.0 * log_sigma[t])  # (d,)
            grad[t, 1:q] = s * w
            grad[t, q] = -(s * w) @ w
            hess[t, 1:q, t, 1:q] = np.diag(s)
            hess[t, 1:q, t, q] = hess[t, q, t, 1:q] = -2.0 * s * w
            hess[t, q, t, q] = 2.0 * (s * w) @ w
        size = grad.size
        return grad.ravel(), hess.reshape(size, size)


class _StudentTPart(_GaussianPart):
    """Student-t experts: per expert the Gaussian part's rows per target ``[intercept,
    w_1..w_d, log sigma]`` (sigma the t's scale), then one ``log nu`` (shared by the targets).

    With ``z_t = (y_t - x beta_t) / sigma_t``, ``delta = sum_t z_t^2`` and the latent
    weight ``u = (nu + p) / (nu + delta)``, each row's log-density is
    ``log G((nu + p)/2) - log G(nu/2) - p/2 log(nu pi) - sum_t log sigma_t
    - (nu + p)/2 log(1 + delta / nu)``. The layout, parameter rows and ridge penalty
    (``alpha ||w||^2 / (2 sigma^2)``, free of nu) are the Gaussian part's plus the nu.
    """

    def __init__(self, est):
        super().__init__(est)
        self.dof = np.reshape(np.asarray(est.expert_dof_, dtype=np.float64), self.n_experts)

    @property
    def n_params(self):
        return super().n_params + 1

    def terms(self, features):
        return super().terms(features) + ["dof"]

    def theta(self, est, order):
        log_dof = np.log(np.reshape(np.asarray(est.expert_dof_, dtype=np.float64),
                                    self.n_experts)[order])
        return np.concatenate([super().theta(est, order), log_dof[:, None]], axis=1)

    def scale_mask(self):
        """True where the parameter is a log sigma or the log nu (reported as sigma, nu)."""
        return np.append(super().scale_mask(), True)

    def fixed(self):
        """(K, p): True for a nu on its bound (MIN_DOF, MAX_DOF), which the fit did not
        estimate freely; the table holds it fixed (see :func:`_covariance`)."""
        mask = np.zeros((self.n_experts, self.n_params), dtype=bool)
        log_dof = np.log(self.dof)
        mask[:, -1] = ((np.abs(log_dof - np.log(MIN_DOF)) <= _ON_BOUND)
                       | (np.abs(log_dof - np.log(MAX_DOF)) <= _ON_BOUND))
        return mask

    def prepare(self, theta, X1, Y):
        """Per-expert log density (n, K) and the row quantities the derivatives use."""
        n, p = X1.shape[0], self.n_targets
        log_f = np.zeros((n, self.n_experts))
        cache = []
        for k in range(self.n_experts):
            beta, log_sigma = self._split(theta[k, :-1])
            dof = np.exp(theta[k, -1])
            inv_sigma = np.exp(-log_sigma)
            z = (Y - X1 @ beta.T) * inv_sigma  # (n, T)
            delta = np.sum(z**2, axis=1)
            log_f[:, k] = (gammaln(0.5 * (dof + p)) - gammaln(0.5 * dof)
                           - 0.5 * p * np.log(dof * np.pi) - np.sum(log_sigma)
                           - 0.5 * (dof + p) * np.log1p(delta / dof))
            u = (dof + p) / (dof + delta)
            cache.append((z, inv_sigma, delta, u, dof))
        return log_f, cache

    def _score_parts(self, cache, k, X1):
        """Rows ``a`` (n, T (d + 2)) with ``d delta / d theta = -2 a`` over the Gaussian
        block (``a = (z_t x / sigma_t, z_t^2)`` per target), and the nu score (n,)."""
        z, inv_sigma, delta, _, dof = cache[k]
        n, p = X1.shape[0], self.n_targets
        a = np.concatenate([(z * inv_sigma)[:, :, None] * X1[:, None, :], (z**2)[:, :, None]],
                           axis=2).reshape(n, -1)
        # d log f / d log nu; 1 - u written as (delta - p) / (nu + delta), which keeps
        # its digits where nu is large
        dof_score = 0.5 * dof * (digamma(0.5 * (dof + p)) - digamma(0.5 * dof)
                                 - np.log1p(delta / dof) + (delta - p) / (dof + delta))
        return a, dof_score

    def score_rows(self, cache, k, X1):
        """d log f_k / d theta_k per row: ``u a`` (and -1 on each log sigma), then nu: (n, p)."""
        u = cache[k][3]
        a, dof_score = self._score_parts(cache, k, X1)
        score = u[:, None] * a
        score[:, self.n_features + 1::self.n_features + 2] -= 1.0
        return np.concatenate([score, dof_score[:, None]], axis=1)

    def complete_information(self, cache, k, X1, weight):
        """sum_i weight_i (-d2 log f_k): (p, p).

        In the Gaussian block ``u/2 d2 delta - 2 u^2 / (nu + p) a a^T`` (``log f``
        depends on it through delta only); with nu, ``-d(u a) / d log nu =
        -nu (delta - p) / (nu + delta)^2 a``, and minus the derivative of the nu score.
        """
        z, inv_sigma, delta, u, dof = cache[k]
        p, q = self.n_targets, self.n_features + 1
        a, dof_score = self._score_parts(cache, k, X1)
        P = self.n_params
        info = np.zeros((P, P))
        for t in range(p):
            block = slice(t * (q + 1), (t + 1) * (q + 1))
            inner = np.zeros((q + 1, q + 1))
            wu = weight * u
            inner[:q, :q] = _gram(X1, wu * inv_sigma[t] ** 2)
            cross = 2.0 * inv_sigma[t] * (X1.T @ (wu * z[:, t]))
            inner[:q, q] = inner[q, :q] = cross
            inner[q, q] = 2.0 * wu @ z[:, t] ** 2
            info[block, block] = inner
        info[:-1, :-1] -= _gram(a, weight * 2.0 * u**2 / (dof + p))
        spread = dof * (delta - p) / (dof + delta) ** 2  # d u / d log nu
        cross = -(weight * spread) @ a
        info[:-1, -1] = info[-1, :-1] = cross
        # d (dof_score) / d log nu = dof_score + nu^2 dD/dnu, D = dof_score / nu
        d_dof = 0.5 * (0.5 * (polygamma(1, 0.5 * (dof + p)) - polygamma(1, 0.5 * dof))
                       + delta / (dof * (dof + delta)) - (delta - p) / (dof + delta) ** 2)
        info[-1, -1] = -weight @ (dof_score + dof**2 * d_dof)
        return info

    def penalty(self, theta_k, k):
        """The Gaussian part's ridge penalty on the lines and scales; nu is not penalised."""
        grad, hess = super().penalty(theta_k[:-1], k)
        P = self.n_params
        full = np.zeros((P, P))
        full[:-1, :-1] = hess
        return np.append(grad, 0.0), full


class _MultinomialPart:
    """Multinomial logistic experts, reference-coded on the first class."""

    def __init__(self, est):
        coef = np.asarray(est.expert_coef_, dtype=np.float64)
        self.n_experts, self.n_classes, self.n_features = coef.shape
        self.classes = np.asarray(est.classes_)
        # the penalty training maximised (doubled on the binary logit's classes)
        self.alpha = float(est.alpha) * class_penalty_factor(self.n_classes)

    @property
    def n_params(self):
        return (self.n_classes - 1) * (self.n_features + 1)

    def terms(self, features):
        return [f"{c}:{name}" for c in self.classes[1:] for name in ["intercept", *features]]

    def fixed(self):
        return np.zeros((self.n_experts, self.n_params), dtype=bool)

    def encode(self, est, y):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(f"y must be one-dimensional class labels, got shape {y.shape}.")
        unseen = ~np.isin(y, self.classes)
        if unseen.any():
            raise ValueError(
                f"y contains labels not seen during fit: {np.unique(y[unseen])[:5]!r}; "
                f"known classes are {self.classes!r}."
            )
        return np.searchsorted(self.classes, y)

    def theta(self, est, order):
        coef = np.asarray(est.expert_coef_, dtype=np.float64)[order]
        intercept = np.asarray(est.expert_intercept_, dtype=np.float64)[order]
        full = np.concatenate([intercept[..., None], coef], axis=2)  # (K, C, d+1)
        return (full[:, 1:] - full[:, :1]).reshape(self.n_experts, -1)

    def scale_mask(self):
        return np.zeros(self.n_params, dtype=bool)

    def prepare(self, theta, X1, codes):
        n = X1.shape[0]
        log_f = np.empty((n, self.n_experts))
        rows = np.arange(n)
        cache = []
        for k in range(self.n_experts):
            logits = np.zeros((n, self.n_classes))
            logits[:, 1:] = X1 @ theta[k].reshape(self.n_classes - 1, -1).T
            log_p = log_softmax(logits, axis=1)
            log_f[:, k] = log_p[rows, codes]
            cache.append(np.exp(log_p))
        one_hot = np.zeros((n, self.n_classes))
        one_hot[rows, codes] = 1.0
        return log_f, (cache, one_hot)

    def score_rows(self, cache, k, X1):
        proba, one_hot = cache[0][k], cache[1]
        return _kron_rows((one_hot - proba)[:, 1:], X1)

    def complete_information(self, cache, k, X1, weight):
        return _softmax_information(cache[0][k], X1, weight)

    def penalty(self, theta_k, k):
        return _reference_coded_penalty(theta_k.reshape(self.n_classes - 1, -1), self.alpha,
                                        np.ones(self.n_features), self.n_classes)


class _PoissonPart(_LinearPredictorPart):
    """Poisson experts with a log link: per expert and target ``[intercept, w_1..w_d]``."""

    def encode(self, est, y):
        Y = super().encode(est, y)
        check_counts(Y)
        return Y

    def theta(self, est, order):
        K, T, d = self.n_experts, self.n_targets, self.n_features
        coef = np.reshape(est.expert_coef_, (K, T, d))[order]
        intercept = np.reshape(est.expert_intercept_, (K, T))[order]
        return np.concatenate([intercept[..., None], coef], axis=2).reshape(K, -1)

    def scale_mask(self):
        return np.zeros(self.n_params, dtype=bool)

    def prepare(self, theta, X1, Y):
        """Per-expert log-probabilities of the counts (n, K), and the rates."""
        log_f = np.zeros((X1.shape[0], self.n_experts))
        log_factorial = gammaln(Y + 1.0)
        cache = []
        for k in range(self.n_experts):
            eta = X1 @ theta[k].reshape(self.n_targets, -1).T  # (n, T)
            rate = np.exp(eta)
            log_f[:, k] = np.sum(Y * eta - rate - log_factorial, axis=1)
            cache.append(rate)
        return log_f, (cache, Y)

    def score_rows(self, cache, k, X1):
        """d log f_k / d theta_k per row: (y - mu) (x, 1) per target, (n, p)."""
        rate, Y = cache[0][k], cache[1]
        return _kron_rows(Y - rate, X1)

    def complete_information(self, cache, k, X1, weight):
        """sum_i weight_i mu_it x_i x_i^T per target (block diagonal): (p, p)."""
        rate = cache[0][k]
        q = self.n_features + 1
        info = np.zeros((self.n_params, self.n_params))
        for t in range(self.n_targets):
            block = slice(t * q, (t + 1) * q)
            info[block, block] = _gram(X1, weight * rate[:, t])
        return info

    def penalty(self, theta_k, k):
        """Gradient and Hessian of sum_j alpha_kj w_tj^2 per target for expert k (the
        weights, user's scale)."""
        q = self.n_features + 1
        beta = theta_k.reshape(self.n_targets, q)
        grad = np.zeros((self.n_targets, q))
        grad[:, 1:] = 2.0 * self.alpha[k] * beta[:, 1:]
        diagonal = np.tile(np.concatenate([[0.0], 2.0 * self.alpha[k]]), self.n_targets)
        return grad.ravel(), np.diag(diagonal)


def _gram(A, weight=None):
    """A^T diag(weight) A for non-negative weights, by a symmetric rank-k update (BLAS syrk)."""
    B = A if weight is None else A * np.sqrt(weight)[:, None]
    # B.T of a C-ordered B is Fortran-ordered: syrk reads it without a copy
    upper = dsyrk(1.0, np.asarray(B, dtype=np.float64).T, trans=0)
    return np.triu(upper) + np.triu(upper, 1).T


def _kron_rows(A, X1):
    """Row-wise Kronecker product: row i is ``A[i] (x) X1[i]``, shape (n, a * q)."""
    return (A[:, :, None] * X1[:, None, :]).reshape(X1.shape[0], -1)


def _softmax_information(proba, X1, weight):
    """sum_i w_i (diag(p_i) - p_i p_i^T)[1:, 1:] (x) x_i x_i^T for reference-coded softmax."""
    n_ref = proba.shape[1] - 1
    q = X1.shape[1]
    Z = _kron_rows(proba[:, 1:], X1)
    info = -_gram(Z, weight)
    for c in range(n_ref):
        block = slice(c * q, (c + 1) * q)
        info[block, block] += _gram(X1, weight * proba[:, c + 1])
    return info


def _reference_coded_penalty(beta, alpha, weight_scale2, n_levels):
    """Gradient and Hessian of alpha ||V||^2 in reference coding.

    The estimators penalise all ``n_levels`` rows of an over-parametrised
    softmax, V; only differences to the reference row are identified, and
    the penalised optimum is centred, so in reference coding ``beta_k =
    v_k - v_0`` the penalty is ``alpha (sum_k ||beta_k||^2 - ||sum_k
    beta_k||^2 / n_levels)`` on the weights (not the intercepts), each
    weight j measured with ``weight_scale2[j]``.
    """
    n_ref, q = beta.shape
    D = np.concatenate([[0.0], weight_scale2])  # intercepts are not penalised
    centred = beta - beta.sum(axis=0) / n_levels
    grad = 2.0 * alpha * centred * D
    level = np.eye(n_ref) - 1.0 / n_levels
    hess = 2.0 * alpha * np.kron(level, np.diag(D))
    return grad.ravel(), hess


# ---------------------------------------------------------------------------
# The model: layout, log-likelihood, score and information
# ---------------------------------------------------------------------------
# Each expert family's part of the likelihood on the user's scale (its parameter
# rows, log-density, per-row score, complete-data information and penalty), by the
# regressor's ``expert``; the classifier's experts are multinomial.
_REGRESSOR_PARTS = {"gaussian": _GaussianPart, "poisson": _PoissonPart,
                    "student_t": _StudentTPart}


def _family_part(est):
    """The family part of a fitted estimator's experts."""
    if hasattr(est, "classes_"):
        return _MultinomialPart(est)
    kind = getattr(est, "_expert_kind", "gaussian")
    if kind not in _REGRESSOR_PARTS:
        raise ValueError(
            f"Standard errors are not available for expert={kind!r}: the observed "
            f"information is implemented for {sorted(_REGRESSOR_PARTS)} experts "
            "(bic, aic and icl are available)."
        )
    return _REGRESSOR_PARTS[kind](est)


class _Model:
    """Reference-coded parameter vector of a fitted estimator, and its likelihood.

    The gate and the experts may see different columns (``gate_features``,
    ``expert_features``): each gets its own columns of X, and the table
    labels each part's terms with its own columns' names.
    """

    def __init__(self, est):
        self.n_experts = np.shape(est.gate_intercept_)[0]
        self.n_features = int(est.n_features_in_)
        self.gate_columns, self.expert_columns = getattr(est, "_columns", (None, None))
        self.family = _family_part(est)
        # the gate's penalty per weight of a standardised input (alpha="auto": its own)
        self.alpha = est._fitted_penalties()[0]
        self.n_gate_features = np.shape(est.gate_coef_)[1]
        K, q = self.n_experts, self.n_gate_features + 1
        self.n_gate = (K - 1) * q
        self.n_params = self.n_gate + K * self.family.n_params
        names = getattr(est, "feature_names_in_", None)
        features = np.array([str(f) for f in names] if names is not None
                            else [f"x{j}" for j in range(self.n_features)], dtype=object)
        gate_terms = list(self.gate_view(features))
        self.index = [("gate", k, t) for k in range(1, K) for t in ["intercept", *gate_terms]]
        terms = self.family.terms(list(self.expert_view(features)))
        self.index += [("expert", k, t) for k in range(K) for t in terms]
        self.log_scale = np.concatenate(
            [np.zeros(self.n_gate, dtype=bool), np.tile(self.family.scale_mask(), K)]
        )
        # parameters on a bound of the fit (a Student-t nu): no standard error
        self.fixed = np.concatenate([np.zeros(self.n_gate, dtype=bool),
                                     self.family.fixed().ravel()])

    def gate_view(self, a):
        """The gate's columns of ``a`` (its last axis)."""
        return a if self.gate_columns is None else a[..., np.asarray(self.gate_columns)]

    def expert_view(self, a):
        """The experts' columns of ``a`` (its last axis)."""
        return a if self.expert_columns is None else a[..., np.asarray(self.expert_columns)]

    def design(self, X):
        """The gate's and the experts' designs (1, x) of rows ``X``."""
        return _with_intercept(self.gate_view(X)), _with_intercept(self.expert_view(X))

    def theta(self, est, order=None):
        """The parameter vector of ``est`` (experts permuted by ``order``)."""
        K = self.n_experts
        order = np.arange(K) if order is None else np.asarray(order)
        gate = np.concatenate([np.asarray(est.gate_intercept_, dtype=np.float64)[:, None],
                               np.asarray(est.gate_coef_, dtype=np.float64)], axis=1)[order]
        gate = (gate[1:] - gate[:1]).ravel()
        return np.concatenate([gate, self.family.theta(est, order).ravel()])

    def reported(self, theta):
        """Parameters as the table shows them: sigma instead of log sigma."""
        out = theta.copy()
        out[self.log_scale] = np.exp(theta[self.log_scale])
        return out

    def _split(self, theta):
        K, q = self.n_experts, self.n_gate_features + 1
        gate = theta[: self.n_gate].reshape(K - 1, q)
        experts = theta[self.n_gate:].reshape(K, self.family.n_params)
        return gate, experts

    def _rows(self, theta, G1, X1, Y):
        """``G1``, ``X1``: the gate's and the experts' designs of the rows."""
        gate, experts = self._split(theta)
        eta = np.zeros((G1.shape[0], self.n_experts))
        eta[:, 1:] = G1 @ gate.T
        log_g = log_softmax(eta, axis=1)
        log_f, cache = self.family.prepare(experts, X1, Y)
        log_joint = log_g + log_f
        log_norm = logsumexp(log_joint, axis=1)
        return log_g, log_joint, log_norm, cache

    def log_likelihood(self, theta, X, Y, weight):
        """Weighted total log-likelihood sum_i w_i log p(y_i | x_i)."""
        total = 0.0
        for rows in _blocks(X.shape[0]):
            G1, X1 = self.design(X[rows])
            total += weight[rows] @ self._rows(theta, G1, X1, _take(Y, rows))[2]
        return float(total)

    def score_and_information(self, theta, X, Y, weight):
        """Total score (P,) and observed information (P, P) of the log-likelihood."""
        P, K, q, G = self.n_params, self.n_experts, self.n_gate_features + 1, self.n_gate
        p = self.family.n_params
        score = np.zeros(P)
        info = np.zeros((P, P))
        gate_block = [slice((k - 1) * q, k * q) for k in range(K)]  # k >= 1 used
        expert_block = [slice(G + k * p, G + (k + 1) * p) for k in range(K)]
        for rows in _blocks(X.shape[0]):
            (G1, X1), w = self.design(X[rows]), weight[rows]
            log_g, log_joint, log_norm, cache = self._rows(theta, G1, X1, _take(Y, rows))
            g = np.exp(log_g)
            h = np.exp(log_joint - log_norm[:, None])
            S = [self.family.score_rows(cache, k, X1) for k in range(K)]
            # E_h[v]: the complete-data score's expectation under h (the row's score,
            # up to the gate's -g term, which is constant in the latent expert)
            Ev = np.concatenate([_kron_rows(h[:, 1:], G1)] + [h[:, k:k + 1] * S[k]
                                                            for k in range(K)], axis=1)
            info += _gram(Ev, w)
            score += w @ Ev
            if K > 1:
                # gate: complete-data softmax information
                Zg = _kron_rows(g[:, 1:], G1)
                score[:G] -= w @ Zg
                info[:G, :G] += _softmax_information(g, G1, w)
            for k in range(K):
                wh = w * h[:, k]
                e = expert_block[k]
                info[e, e] += (self.family.complete_information(cache, k, X1, wh)
                               - _gram(S[k], wh))
                if k >= 1:
                    b = gate_block[k]
                    info[b, b] -= _gram(G1, wh)
                    cross = G1.T @ (wh[:, None] * S[k])
                    info[b, e] -= cross
                    info[e, b] -= cross.T
        return score, info

    def penalty(self, theta, gate_scale):
        """Gradient and Hessian of the fitted model's L2 penalty (0 when alpha == 0)."""
        P, G, p = self.n_params, self.n_gate, self.family.n_params
        grad, hess = np.zeros(P), np.zeros((P, P))
        if self.alpha == 0:
            return grad, hess
        gate, experts = self._split(theta)
        if self.n_experts > 1:
            # the gate's penalty acts on the weights of standardised inputs
            grad[:G], hess[:G, :G] = _reference_coded_penalty(
                gate, self.alpha, gate_scale**2, self.n_experts)
        for k in range(self.n_experts):
            e = slice(G + k * p, G + (k + 1) * p)
            grad[e], hess[e, e] = self.family.penalty(experts[k], k)
        return grad, hess


def _blocks(n):
    return [slice(start, min(start + _BLOCK_ROWS, n)) for start in range(0, n, _BLOCK_ROWS)]


def _take(Y, rows):
    return Y[rows]


def _with_intercept(X):
    return np.concatenate([np.ones((X.shape[0], 1)), X], axis=1)


# ---------------------------------------------------------------------------
# Checks and the covariance
# ---------------------------------------------------------------------------
def _check_supported(est, what):
    check_is_fitted(est)
    name = type(est).__name__
    kind = getattr(est, "_expert_kind", "gaussian")
    if not hasattr(est, "classes_") and kind not in _REGRESSOR_PARTS:
        raise ValueError(
            f"{what} is not available for expert={kind!r} yet: the observed information "
            f"and the coefficient tables are implemented for {sorted(_REGRESSOR_PARTS)} and "
            "logistic experts only (bic, aic and icl are available)."
        )
    if est.gating == "hard":
        raise ValueError(
            f"{what} is not available with gating='hard': the hard-gated likelihood is "
            "not differentiable in the gate, so the observed information (and a Wald "
            "standard error) is not defined. Refit with gating='soft' (for example "
            f"clone({name}).set_params(gating='soft')) to get standard errors."
        )
    n_experts = np.shape(est.gate_intercept_)[0]
    if est.top_k is not None and est.top_k < n_experts:
        raise ValueError(
            f"{what} is not available with top_k={est.top_k} < n_experts={n_experts}: the "
            "top-k likelihood jumps where a row's kept experts change, so it has no "
            "Hessian there. Set top_k=None to get the standard errors of the dense "
            "model that training fitted (top_k only changes prediction unless "
            "gate_noise > 0)."
        )
    if est.balance > 0:
        raise ValueError(
            f"{what} is not available with balance={est.balance}: the load-balancing "
            "penalty moves the fit away from the maximum of the (alpha-penalised) "
            "likelihood, whose curvature the standard errors describe. Refit with "
            "balance=0 (warm_start=True starts from the current fit)."
        )
    if getattr(est, "_expert_kind", None) == "estimator":
        raise ValueError(
            f"{what} is not available for scikit-learn estimators as experts: their "
            "parameters are the estimator's own, which mixexp does not differentiate. "
            "Compare models by held-out log_likelihood (bic and aic count linear "
            "estimators only)."
        )


def _validated(est, X, y, sample_weight):
    """Validated float64 X, encoded targets, weights, and the fitted model's layout."""
    X, y, sample_weight = to_host(X), to_host(y), to_host(sample_weight)
    X = validate_data(est, X, reset=False, dtype=np.float64)
    model = _Model(est)
    Y = model.family.encode(est, y)
    check_consistent_length(X, Y)
    weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
    return model, X, Y, weight


def _check_confidence(confidence):
    if not isinstance(confidence, numbers.Real) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a number in (0, 1), got {confidence!r}.")


def _invert_information(info, index):
    """Inverse of the information; warns naming the parameters of (near-)null directions.

    The matrix is scaled to unit diagonal first so the test does not depend on
    the parameters' units. Directions with a relative eigenvalue below
    ``_SINGULAR_RCOND`` are not identified, and a negative one means the
    parameters are not at a maximum: the parameters that dominate such a
    direction are named and get NaN variances; the others are computed with
    the direction left out.
    """
    diag = np.diag(info)
    bad = diag <= 0
    d = np.where(bad, 1.0, np.sqrt(np.abs(diag)))
    scaled = info / np.outer(d, d)
    scaled[bad, :] = 0.0
    scaled[:, bad] = 0.0
    values, vectors = np.linalg.eigh(scaled)
    top = max(values.max(initial=0.0), np.finfo(float).tiny)
    weak = values <= _SINGULAR_RCOND * top
    untrusted = bad.copy()
    for v in vectors[:, weak].T:
        untrusted |= np.abs(v) >= _LOADING * np.abs(v).max()
    keep = ~weak
    cov = ((vectors[:, keep] / values[keep]) @ vectors[:, keep].T) / np.outer(d, d)
    if untrusted.any():
        names = [index[i] for i in np.flatnonzero(untrusted)]
        shown = ", ".join(map(str, names[:10])) + (" ..." if len(names) > 10 else "")
        if values.min() < -_SINGULAR_RCOND * top:
            cause = ("is not positive definite: the parameters are not at a maximum of the "
                     "likelihood (did the fit converge? see converged_)")
        else:
            cause = (f"is singular or nearly so (reciprocal condition number "
                     f"{max(values.min(), 0.0) / top:.1e} after scaling to unit diagonal)")
        warnings.warn(
            f"The observed information {cause}; the standard errors of {len(names)} "
            f"parameter(s) are not identified and are reported as NaN: {shown}. Typical "
            "causes: collinear features, a gate so sharp that it is nearly hard (its "
            "weights run off to infinity), an expert that takes almost no samples, or a fit "
            "stopped short of convergence. A penalty (alpha > 0) or fewer experts "
            "regularises it.",
            SingularInformationWarning,
            stacklevel=5,
        )
        cov[untrusted, :] = np.nan
        cov[:, untrusted] = np.nan
    return cov


def observed_information(est, X, y, sample_weight=None):
    """Observed (penalised) information of a fitted estimator, and its layout.

    Returns
    -------
    model : _Model
    theta : ndarray of shape (P,)
        The reference-coded parameters (log sigma for Gaussian noise).
    information : ndarray of shape (P, P)
        Minus the Hessian of the penalised log-likelihood at ``theta``.
    """
    model, X, Y, weight = _validated(est, X, y, sample_weight)
    theta = model.theta(est)
    _, info = model.score_and_information(theta, X, Y, weight)
    if model.alpha > 0:
        # the gate's penalty acts on the weights of the inputs as the fit
        # standardised them
        info = info + model.penalty(theta, model.gate_view(np.asarray(est._x_scale)))[1]
    return model, theta, info


def _covariance(est, X, y, sample_weight):
    """(model, theta, covariance of theta) from the observed information.

    Parameters on a bound of the fit (``model.fixed``: a Student-t nu at
    MIN_DOF or MAX_DOF) are held fixed: the likelihood's maximum there is not
    a stationary point, so a curvature-based standard error would be wrong.
    Their rows and columns are NaN and the others are the covariance given
    them (the inverse of the information with theirs left out); a warning
    names them.
    """
    model, theta, info = observed_information(est, X, y, sample_weight)
    free = np.flatnonzero(~model.fixed)
    cov = np.full(info.shape, np.nan)
    cov[np.ix_(free, free)] = _invert_information(info[np.ix_(free, free)],
                                                  [model.index[i] for i in free])
    if model.fixed.any():
        names = ", ".join(f"{model.index[i]} = {np.exp(theta[i]):g}"
                          for i in np.flatnonzero(model.fixed))
        warnings.warn(
            f"The degrees of freedom of {int(model.fixed.sum())} Student-t expert(s) sit on "
            f"a bound of the fit ([{MIN_DOF:g}, {MAX_DOF:g}]): {names}. They are held "
            "fixed: their standard errors and intervals are NaN, and the other standard "
            "errors are conditional on them. A nu at 1e6 means the expert's noise is "
            "Gaussian to the data's resolution; expert='gaussian' gives the same fit with "
            "standard errors throughout.",
            UserWarning,
            stacklevel=4,
        )
    return model, theta, cov


def _reported_covariance(model, theta, cov):
    """Delta method: covariance of the reported parameters (sigma, not log sigma)."""
    jac = np.ones_like(theta)
    # (only the log-scale entries: exp of a large gate weight would overflow)
    jac[model.log_scale] = np.exp(theta[model.log_scale])
    return cov * np.outer(jac, jac)


# ---------------------------------------------------------------------------
# Bootstrap
# ---------------------------------------------------------------------------
def _bootstrap_one(est, X, y, weight, seed, reference_resp, model):
    """One warm-started refit on a resampled data set; its reported parameters, matched."""
    rng = np.random.default_rng(seed)
    n = X.shape[0]
    counts = rng.multinomial(n, np.full(n, 1.0 / n))
    refit = copy.deepcopy(est)
    refit.set_params(warm_start=True, verbose=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        refit.fit(X, y, sample_weight=weight * counts)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    # label switching: match the refit's experts to the original ones by the
    # overlap of their responsibilities on the original data
    resp = np.asarray(refit.predict_responsibilities(X, y))
    overlap = (reference_resp * weight[:, None]).T @ resp  # (K original, K refit)
    _, order = linear_sum_assignment(-overlap)
    return model.reported(model.theta(refit, order)), converged


def _bootstrap(est, X, y, sample_weight, n_boot, n_jobs, random_state):
    from joblib import Parallel, delayed

    model, Xv, _, weight = _validated(est, X, y, sample_weight)
    X, y = to_host(X), to_host(y)
    reference = np.asarray(est.predict_responsibilities(X, y))
    seeds = check_random_state(random_state).randint(np.iinfo(np.int32).max, size=n_boot)
    results = Parallel(n_jobs=n_jobs)(
        delayed(_bootstrap_one)(est, X, y, weight, seed, reference, model) for seed in seeds
    )
    draws = np.array([r[0] for r in results])
    failed = sum(not r[1] for r in results)
    if failed:
        warnings.warn(
            f"{failed} of {n_boot} bootstrap refits did not converge within "
            f"max_iter={est.max_iter}; their last iterates are used. Increase max_iter.",
            ConvergenceWarning,
            stacklevel=3,
        )
    return model, model.theta(est), draws


# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------
def _import_pandas():
    try:
        import pandas as pd
    except ImportError as error:  # pragma: no cover - pandas is in the test extras
        raise ImportError("summary and parameter_covariance return pandas DataFrames: "
                          "pip install pandas") from error
    return pd


def _multi_index(pd, rows):
    """The (part, expert, term) index, levels in order of appearance.

    Rows come gate first and terms in feature order; with levels in that
    order the index is lexsorted, so ``table.loc[("expert", 1)]`` is fast.
    """
    levels, codes = [], []
    for depth, values in enumerate(zip(*rows)):
        # experts by number; parts (gate first) and terms as they come
        code, uniques = pd.Index(list(values)).factorize(sort=depth == 1)
        levels.append(uniques)
        codes.append(code)
    return pd.MultiIndex(levels=levels, codes=codes, names=["part", "expert", "term"])


def _table(model, coef, std_err, lower, upper, z_defined, attrs):
    pd = _import_pandas()
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(z_defined, coef / std_err, np.nan)
    p_value = 2.0 * ndtr(-np.abs(z))
    index = _multi_index(pd, model.index)
    table = pd.DataFrame({"coef": coef, "std_err": std_err, "z": z, "p_value": p_value,
                          "ci_lower": lower, "ci_upper": upper}, index=index)
    table.attrs.update(attrs)
    return table


def summary(est, X, y, sample_weight, method, confidence, n_boot, n_jobs, random_state):
    """The body of :meth:`InferenceMixin.summary`."""
    if method not in ("hessian", "bootstrap"):
        raise ValueError(f"method must be 'hessian' or 'bootstrap', got {method!r}.")
    _check_confidence(confidence)
    if method == "bootstrap" and (not isinstance(n_boot, numbers.Integral) or n_boot < 2):
        raise ValueError(f"n_boot must be an integer >= 2, got {n_boot!r}.")
    _check_supported(est, "summary")
    alpha = est.alpha if isinstance(est.alpha, str) else float(est.alpha)
    attrs = {"method": method, "confidence": confidence, "alpha": alpha}
    if method == "hessian":
        model, theta, cov = _covariance(est, X, y, sample_weight)
        coef = model.reported(theta)
        std_err = np.sqrt(np.diag(_reported_covariance(model, theta, cov)))
        # intervals for sigma are built on the log scale (they stay positive)
        half = ndtri(0.5 + confidence / 2) * np.sqrt(np.diag(cov))
        lower, upper = model.reported(theta - half), model.reported(theta + half)
        attrs["fixed"] = [model.index[i] for i in np.flatnonzero(model.fixed)]
    else:
        model, theta, draws = _bootstrap(est, X, y, sample_weight, n_boot, n_jobs,
                                         random_state)
        coef = model.reported(theta)
        std_err = draws.std(axis=0, ddof=1)
        tail = 100 * (1 - confidence) / 2
        lower, upper = np.percentile(draws, [tail, 100 - tail], axis=0)
        attrs["n_boot"] = int(n_boot)
    # a test of sigma = 0 is meaningless (sigma > 0): no z or p-value for it
    return _table(model, coef, std_err, lower, upper, ~model.log_scale, attrs)


def parameter_covariance(est, X, y, sample_weight):
    """The body of :meth:`InferenceMixin.parameter_covariance`."""
    _check_supported(est, "parameter_covariance")
    model, theta, cov = _covariance(est, X, y, sample_weight)
    pd = _import_pandas()
    index = _multi_index(pd, model.index)
    return pd.DataFrame(_reported_covariance(model, theta, cov), index=index, columns=index)


def icl(est, X, y):
    """The body of :meth:`InferenceMixin.icl`."""
    check_is_fitted(est)
    resp = np.asarray(to_host(est.predict_responsibilities(X, y)), dtype=np.float64)
    return float(est.bic(X, y) + 2.0 * entr(resp).sum())


class InferenceMixin:
    """Standard errors, confidence intervals, p-values and ICL for fitted mixtures of experts.

    Mixed into :class:`~mixexp.MixtureOfExpertsRegressor` and
    :class:`~mixexp.MixtureOfExpertsClassifier`; see the user guide,
    "Inference and model choice".
    """

    def summary(self, X, y, sample_weight=None, method="hessian", confidence=0.95,
                n_boot=200, n_jobs=None, random_state=None):
        """Coefficient table: estimates, standard errors, z, p-values and confidence intervals.

        Parameters are on the user's scale. The gate is reference-coded on
        expert 0 (rows ``v_k - v_0`` for experts 1..K-1, as flexmix and
        statsmodels' MNLogit report it); a classifier's experts are
        reference-coded on the first class of ``classes_`` (terms
        ``"<class>:<feature>"``); a Gaussian expert reports its noise
        standard deviation ``sigma`` (terms ``"y<t>:<feature>"`` for
        multi-output targets); a Student-t expert its scale ``sigma`` and
        its degrees of freedom ``dof`` (one per expert). A ``dof`` on its
        bound ([0.5, 1e6]) is held fixed: NaN standard error and interval,
        the other standard errors given it, listed in
        ``table.attrs["fixed"]``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The training inputs: the information is a sum over the data the
            model was fitted on.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            The training targets.
        sample_weight : array-like of shape (n_samples,), default=None
            The training weights, treated as frequency weights.
        method : {"hessian", "bootstrap"}, default="hessian"
            ``"hessian"``: Wald standard errors from the inverse of the
            observed information (the exact Hessian of the log-likelihood,
            computed analytically), normal intervals (for ``sigma``, on the
            log scale). With ``alpha > 0`` the information is that of the
            penalised log-likelihood (the posterior covariance of the
            Gaussian prior that the ridge penalty is). ``"bootstrap"``:
            ``n_boot`` nonparametric bootstrap refits, each warm-started
            from this fit and matched to its experts (label switching);
            standard deviations of the replicates and percentile intervals.
        confidence : float, default=0.95
            Coverage of the intervals, in (0, 1).
        n_boot : int, default=200
            Bootstrap replicates (``method="bootstrap"`` only).
        n_jobs : int or None, default=None
            Parallel bootstrap refits (joblib).
        random_state : int, RandomState instance or None, default=None
            Seeds the bootstrap resampling.

        Returns
        -------
        table : pandas.DataFrame
            Index ``(part, expert, term)``; columns ``coef``, ``std_err``,
            ``z``, ``p_value`` (two-sided, normal), ``ci_lower``,
            ``ci_upper``. ``z`` and ``p_value`` are NaN for ``sigma`` and
            ``dof`` (testing sigma = 0 is meaningless). ``table.attrs``
            records the method and confidence (and, for
            ``method="hessian"``, the rows held ``fixed``).

        Raises
        ------
        ValueError
            For ``gating="hard"``, ``top_k < n_experts`` or ``balance > 0``
            (their likelihoods have no Hessian at the fit, or the fit is not
            its maximum), and for a bad ``method``, ``confidence`` or
            ``n_boot``.

        Warns
        -----
        SingularInformationWarning
            When the information is (nearly) singular; the parameters
            involved are named and get NaN standard errors.
        UserWarning
            When a Student-t expert's ``dof`` is on a bound and held fixed.

        Examples
        --------
        >>> from mixexp import MixtureOfExpertsRegressor
        >>> from mixexp.datasets import make_moe_regression
        >>> X, y, _ = make_moe_regression(n_samples=400, n_features=1, n_experts=2,
        ...                               noise=0.2, random_state=0)
        >>> est = MixtureOfExpertsRegressor(n_experts=2, alpha=0, n_init=3,
        ...                                 random_state=0).fit(X, y)
        >>> table = est.summary(X, y)
        >>> list(table.columns)
        ['coef', 'std_err', 'z', 'p_value', 'ci_lower', 'ci_upper']
        >>> table.index.tolist()[:3]
        [('gate', 1, 'intercept'), ('gate', 1, 'x0'), ('expert', 0, 'intercept')]
        >>> bool((table["ci_lower"] < table["coef"]).all())
        True
        """
        return summary(self, X, y, sample_weight, method, confidence, n_boot, n_jobs,
                       random_state)

    def parameter_covariance(self, X, y, sample_weight=None):
        """Covariance matrix of the reported parameters: the inverse observed information.

        The same parameters, order and labels as :meth:`summary`'s rows
        (``sigma`` and a Student-t ``dof`` by the delta method from their
        logs); with ``alpha > 0`` the inverse of the penalised information.
        A ``dof`` held fixed on its bound has NaN rows and columns.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The training inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            The training targets.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        covariance : pandas.DataFrame of shape (n_parameters, n_parameters)
            Rows and columns indexed by ``(part, expert, term)``.

        Examples
        --------
        >>> import numpy as np
        >>> from mixexp import MixtureOfExpertsRegressor
        >>> from mixexp.datasets import make_moe_regression
        >>> X, y, _ = make_moe_regression(n_samples=400, n_features=1, n_experts=2,
        ...                               noise=0.2, random_state=0)
        >>> est = MixtureOfExpertsRegressor(n_experts=2, alpha=0, n_init=3,
        ...                                 random_state=0).fit(X, y)
        >>> cov = est.parameter_covariance(X, y)
        >>> cov.shape
        (8, 8)
        >>> bool(np.allclose(np.sqrt(np.diag(cov)), est.summary(X, y)["std_err"]))
        True
        """
        return parameter_covariance(self, X, y, sample_weight)

    def icl(self, X, y):
        """Integrated completed likelihood (ICL-BIC) on (X, y); lower is better.

        ``ICL = BIC + 2 sum_i sum_k -h_ik log h_ik``: BIC plus twice the
        entropy of the responsibilities (Biernacki, Celeux & Govaert 2000),
        so it also penalises experts that overlap, and prefers models whose
        experts are well separated. With hard gating the responsibilities
        are one-hot and ICL equals BIC.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)

        Returns
        -------
        icl : float

        Examples
        --------
        >>> from mixexp import MixtureOfExpertsRegressor
        >>> from mixexp.datasets import make_moe_regression
        >>> X, y, _ = make_moe_regression(n_samples=400, n_features=1, n_experts=2,
        ...                               noise=0.2, random_state=0)
        >>> est = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
        >>> bool(est.icl(X, y) >= est.bic(X, y))
        True
        """
        return icl(self, X, y)
