"""Shared estimator base: parameters, validation, the fit loop, prediction plumbing.

Subclasses (regressor, classifier) provide small hooks: how targets are
encoded, which expert family to use, its neutral starting parameters, and how
its parameters are reported on the user's scale.
"""

import warnings
from abc import ABCMeta, abstractmethod
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ._backend import BACKENDS, resolve_backend, single_threaded_blas
from ._init import canonical_rows, initial_params, initial_responsibilities, start_kind
from ._solvers import SOLVERS

# Initialisation runs on at most this many distinct rows (a hash-chosen
# subsample above it); EM itself always uses all the data.
_MAX_INIT_ROWS = 20_000


@dataclass
class TrainingData:
    """What a solver sees: standardised X, 2-D targets, weights, penalty."""

    X: np.ndarray
    Y: np.ndarray
    sample_weight: np.ndarray
    alpha: float

    @property
    def total_weight(self):
        return float(self.sample_weight.sum())


def weighted_mean_and_scale(A, sample_weight):
    """Column means and standard deviations under ``sample_weight``; zero scales become 1."""
    weights = sample_weight / sample_weight.sum()
    mean = weights @ A
    scale = np.sqrt(weights @ (A - mean) ** 2)
    # A constant column (or one whose spread is lost in rounding) is not scaled.
    scale[scale <= 1e-12 * np.maximum(np.abs(mean), 1e-300)] = 1.0
    return mean, scale


def to_internal_scale(coef, intercept, mean, scale):
    """Linear maps (..., d), (...,) acting on raw x -> the same map on (x - mean) / scale."""
    return coef * scale, intercept + coef @ mean


def to_user_scale(coef, intercept, mean, scale):
    """Inverse of :func:`to_internal_scale`."""
    user_coef = coef / scale
    return user_coef, intercept - user_coef @ mean


class BaseMixtureOfExperts(BaseEstimator, metaclass=ABCMeta):
    """Base class for mixture-of-experts estimators (not for direct use)."""

    _parameter_constraints: dict = {
        "n_experts": [Interval(Integral, 1, None, closed="left")],
        "solver": [StrOptions(set(SOLVERS))],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "init_params": [StrOptions({"kmeans", "random"})],
        "backend": [StrOptions(set(BACKENDS))],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    @abstractmethod
    def __init__(
        self,
        n_experts,
        *,
        solver,
        alpha,
        max_iter,
        tol,
        n_init,
        init_params,
        backend,
        warm_start,
        random_state,
        verbose,
    ):
        self.n_experts = n_experts
        self.solver = solver
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.init_params = init_params
        self.backend = backend
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose

    # ---- hooks -----------------------------------------------------------
    @abstractmethod
    def _encode_targets(self, y, *, fitting):
        """Validated targets as a 2-D float array (n, t); sets target attributes when fitting."""

    @abstractmethod
    def _make_family(self, x_scale, Y, sample_weight):
        """The expert family for this fit."""

    @abstractmethod
    def _neutral_expert_params(self, Y, sample_weight, n_features):
        """Expert parameters an initial M-step starts from (internal scale)."""

    @abstractmethod
    def _expert_params_to_user(self, params):
        """Set the public expert attributes from internal parameters."""

    @abstractmethod
    def _expert_params_from_user(self, x_mean, x_scale):
        """Expert parameters for standardisation (x_mean, x_scale), from the public attributes."""

    @staticmethod
    @abstractmethod
    def _expert_family_class():
        """The expert family class (for counting parameters)."""

    # ---- fitting ---------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    @single_threaded_blas
    def fit(self, X, y, sample_weight=None):
        """Fit the mixture of experts by EM.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; they multiply the responsibilities in the
            M-step, so an integer weight acts as repeating the row.

        Returns
        -------
        self : object
        """
        X, y = validate_data(
            self, X, y, dtype=np.float64, multi_output=self._multi_output,
            y_numeric=self._y_numeric,
        )
        sample_weight = _check_sample_weight(
            sample_weight, X, dtype=np.float64, ensure_non_negative=True
        )
        Y = self._encode_targets(y, fitting=True)
        warm = self.warm_start and self._warm_startable(X.shape[1], Y.shape[1])
        kernels = resolve_backend(self.backend, X)
        x_mean, x_scale = weighted_mean_and_scale(X, sample_weight)
        data = TrainingData((X - x_mean) / x_scale, Y, sample_weight, float(self.alpha))
        family = self._make_family(x_scale, Y, sample_weight)
        solve = SOLVERS[self.solver]

        if warm:
            starts = [("warm", self._params_from_user(x_mean, x_scale))]
        else:
            starts = self._initial_starts(X, Y, data, family, kernels)

        best = None
        for index, (kind, params) in enumerate(starts):
            if kind != "warm":
                params = params()
            result = solve(
                family, kernels, data, params, max_iter=self.max_iter, tol=self.tol,
                verbose=self.verbose > 1,
            )
            if self.verbose:
                print(
                    f"Start {index + 1}/{len(starts)} ({kind}): {result.n_iter} iterations, "
                    f"log-likelihood {result.log_likelihood:.6f}, converged={result.converged}"
                )
            if best is None or result.objective > best.objective:
                best = result

        if not best.converged:
            warnings.warn(
                f"The best of {len(starts)} EM run(s) did not converge within "
                f"max_iter={self.max_iter} iterations (tol={self.tol}). Increase max_iter "
                "or tol, or scale the input.",
                ConvergenceWarning,
            )
        self._x_mean, self._x_scale = x_mean, x_scale
        self._params = best.params
        self._family = family
        self._set_user_params(best.params)
        self.n_iter_ = best.n_iter
        self.converged_ = best.converged
        self.log_likelihood_ = best.log_likelihood
        self.log_likelihood_history_ = np.asarray(best.log_likelihood_history)
        self.objective_history_ = np.asarray(best.objective_history)
        return self

    def _warm_startable(self, n_features, n_targets):
        """A previous fit can seed this one if its parameters have the right shapes."""
        if not hasattr(self, "_params"):
            return False
        return self._params["coef"].shape == (self.n_experts, n_targets, n_features)

    def _initial_starts(self, X, Y, data, family, kernels):
        """Lazily built starts: (kind, callable returning params), nested in n_init."""
        index, weight = canonical_rows(np.hstack([X, Y]), data.sample_weight, _MAX_INIT_ROWS)
        init_data = TrainingData(data.X[index], Y[index], weight, data.alpha)
        y_mean, y_scale = weighted_mean_and_scale(Y[index], weight)
        Z = np.hstack([init_data.X, (init_data.Y - y_mean) / y_scale])
        neutral = self._neutral_params(Y, data.sample_weight, X.shape[1])
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)

        def make_start(i):
            kind = start_kind(self.init_params, i)
            rng = np.random.default_rng([seed, i])

            def build():
                resp = initial_responsibilities(kind, Z, weight, self.n_experts, rng)
                return initial_params(family, kernels, init_data, neutral, resp)

            return kind, build

        return [make_start(i) for i in range(self.n_init)]

    def _neutral_params(self, Y, sample_weight, n_features):
        params = self._neutral_expert_params(Y, sample_weight, n_features)
        params["gate_coef"] = np.zeros((self.n_experts, n_features))
        params["gate_intercept"] = np.zeros(self.n_experts)
        return params

    # ---- scale conversion ---------------------------------------------
    def _set_user_params(self, params):
        self.gate_coef_, self.gate_intercept_ = to_user_scale(
            params["gate_coef"], params["gate_intercept"], self._x_mean, self._x_scale
        )
        self._expert_params_to_user(params)

    def _params_from_user(self, x_mean, x_scale):
        """Internal parameters for standardisation (x_mean, x_scale), from the public ones."""
        params = self._expert_params_from_user(x_mean, x_scale)
        params["gate_coef"], params["gate_intercept"] = to_internal_scale(
            self.gate_coef_, self.gate_intercept_, x_mean, x_scale
        )
        return params

    # ---- prediction plumbing -------------------------------------------
    def _standardize(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return (X - self._x_mean) / self._x_scale

    def _log_gate(self, Xs):
        kernels = resolve_backend(self.backend, Xs)
        return kernels.log_gate(Xs, self._params["gate_coef"], self._params["gate_intercept"])

    @single_threaded_blas
    def predict_gate(self, X):
        """Gate probabilities g_k(x).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        gate : ndarray of shape (n_samples, n_experts)
            Rows sum to 1.
        """
        return np.exp(self._log_gate(self._standardize(X)))

    def _e_step(self, X, y):
        Xs = self._standardize(X)
        Y = self._encode_targets(y, fitting=False)
        if Y.shape[0] != Xs.shape[0]:
            raise ValueError(
                f"X and y have inconsistent numbers of samples: {Xs.shape[0]} and {Y.shape[0]}."
            )
        kernels = resolve_backend(self.backend, Xs)
        resp = np.empty((Xs.shape[0], self.n_experts))
        log_norm = self._family.e_step(kernels, Xs, Y, self._params, resp)
        return log_norm, resp

    @single_threaded_blas
    def predict_responsibilities(self, X, y):
        """Posterior probability h_ik that expert k generated (x_i, y_i).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)

        Returns
        -------
        resp : ndarray of shape (n_samples, n_experts)
            Rows sum to 1.
        """
        return self._e_step(X, y)[1]

    @single_threaded_blas
    def log_likelihood(self, X, y, sample_weight=None):
        """Mean per-sample log-likelihood log p(y | x) under the fitted model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of a weighted mean.

        Returns
        -------
        log_likelihood : float
        """
        log_norm = self._e_step(X, y)[0]
        sample_weight = _check_sample_weight(sample_weight, log_norm[:, None])
        return float(np.average(log_norm, weights=sample_weight))

    def _n_parameters(self):
        """Free parameters: the gate's (one expert's logits are redundant) and the experts'."""
        check_is_fitted(self)
        n_features = self.n_features_in_
        gate = (self.n_experts - 1) * (n_features + 1)
        return gate + self._expert_family_class().n_parameters(
            self.n_experts, n_features, self._n_targets
        )

    def bic(self, X, y):
        """Bayesian information criterion on (X, y); lower is better.

        Returns
        -------
        bic : float
            -2 log L + n_parameters * log(n_samples).
        """
        n_samples = np.shape(X)[0]
        total = self.log_likelihood(X, y) * n_samples
        return -2.0 * total + self._n_parameters() * np.log(n_samples)

    def aic(self, X, y):
        """Akaike information criterion on (X, y); lower is better.

        Returns
        -------
        aic : float
            -2 log L + 2 n_parameters.
        """
        total = self.log_likelihood(X, y) * np.shape(X)[0]
        return -2.0 * total + 2.0 * self._n_parameters()
