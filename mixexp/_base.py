"""Shared estimator base: parameters, validation, the fit loop, prediction plumbing.

Subclasses (regressor, classifier) provide small hooks: how targets are
encoded, which expert family to use, its neutral starting parameters, and how
its parameters are reported on the user's scale.
"""

import warnings
from abc import ABCMeta, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import (
    _check_sample_weight,
    _check_y,
    _num_samples,
    check_is_fitted,
    validate_data,
)

from ._backend import (
    BACKENDS,
    array_namespace,
    as_caller,
    check_device_array,
    check_device_sample_weight,
    in_namespace,
    is_device_array,
    resolve_backend,
    single_threaded_blas,
    to_host,
)
from ._constraints import IntInterval
from ._init import (
    canonical_rows,
    initial_params,
    initial_responsibilities,
    start_kind,
)
from ._resize import resize_experts
from ._rows import row_blocks
from ._routing import routed_e_step, routed_log_gate, routing_k, training_summary
from ._solvers import (
    SOLVER_NAMES,
    SOLVERS,
    STOCHASTIC_SOLVERS,
    SolverOptions,
    check_solver_options,
)
from ._solvers._adam import adam_partial_fit
from ._solvers._em import VANISHED_SHARE

# Initialisation runs on at most this many distinct rows (a hash-chosen
# subsample above it); EM itself always uses all the data. 10,000 rows place
# a start's clusters as well as 20,000 did (flexmix benchmark, n=1e5: the
# log-likelihood after 10 EM iterations within 5e-6 per sample) for half of
# the start's cost.
_MAX_INIT_ROWS = 10_000


@dataclass
class TrainingData:
    """What a solver sees: standardised X, 2-D targets, weights, penalty.

    The arrays live in the namespace of the fit's kernel bundle (on the GPU
    for backend="cupy"); ``total_weight`` is a host float.
    """

    X: np.ndarray
    Y: np.ndarray
    sample_weight: np.ndarray
    alpha: float

    @cached_property
    def total_weight(self):
        # cached: on the GPU each sum is a round trip to the host
        return float(self.sample_weight.sum())


# Squares of larger values overflow (residuals, variances, Gram matrices),
# so such inputs are refused rather than fitted into NaN: per training dtype.
_MAX_MAGNITUDE = {np.dtype(np.float64): 1e150, np.dtype(np.float32): 1e18}


def _check_magnitude(A, name, dtype):
    xp = array_namespace(A)
    limit = _MAX_MAGNITUDE[np.dtype(dtype)]
    largest = float(xp.max(xp.abs(A))) if A.size else 0.0
    if largest > limit:
        raise ValueError(
            f"{name} has values as large as {largest:.3g}; with {np.dtype(dtype).name} "
            f"data, values beyond {limit:.0e} overflow when squared. Rescale {name} "
            "(for example with StandardScaler or by dividing by a constant)."
        )


def weighted_mean_and_scale(A, sample_weight):
    """Column means and standard deviations under ``sample_weight``; zero scales become 1.

    Accumulated in float64 over blocks of rows, so that no temporary the size
    of A (twice its size for float32 A) is made: at a million rows those
    dominated the peak memory of a fit. ``A`` and ``sample_weight`` may be
    CuPy arrays (computed on the device); the results are host arrays.
    """
    xp = array_namespace(A)
    weights = sample_weight / sample_weight.sum()
    blocks = row_blocks(A.shape[0])
    mean = sum(weights[rows] @ A[rows].astype(np.float64, copy=False) for rows in blocks)
    scale = xp.sqrt(sum(weights[rows] @ (A[rows] - mean) ** 2 for rows in blocks))
    # A constant column (or one whose spread is lost in rounding) is not scaled.
    scale[scale <= 1e-12 * xp.maximum(xp.abs(mean), 1e-300)] = 1.0
    return to_host(mean), to_host(scale)


# Input dtypes kept as they are (anything else becomes float64): float32 input
# stays float32 in X, Y and the (n, K) buffers; parameters stay float64.
FLOAT_DTYPES = (np.float64, np.float32)


def standardize(X, mean, scale):
    """(X - mean) / scale in the dtype and namespace of X, with a single temporary."""
    xp = array_namespace(X)
    Xs = X - xp.asarray(mean, dtype=X.dtype)
    Xs /= xp.asarray(scale, dtype=X.dtype)
    return Xs


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
        "n_experts": [IntInterval(1, None, closed="left")],
        "solver": [StrOptions(set(SOLVERS))],
        "gating": [StrOptions({"soft", "hard"})],
        "top_k": [IntInterval(1, None, closed="left"), None],
        "balance": [Interval(Real, 0, None, closed="left")],
        "gate_noise": [Interval(Real, 0, None, closed="left")],
        "batch_size": [IntInterval(1, None, closed="left"), StrOptions({"auto"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "shuffle": ["boolean"],
        "n_iter_no_change": [IntInterval(1, None, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "max_iter": [IntInterval(1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_init": [IntInterval(1, None, closed="left")],
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
        gating,
        top_k,
        alpha,
        balance,
        gate_noise,
        max_iter,
        tol,
        n_init,
        init_params,
        batch_size,
        learning_rate_init,
        shuffle,
        n_iter_no_change,
        backend,
        warm_start,
        random_state,
        verbose,
    ):
        self.n_experts = n_experts
        self.solver = solver
        self.gating = gating
        self.top_k = top_k
        self.alpha = alpha
        self.balance = balance
        self.gate_noise = gate_noise
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.shuffle = shuffle
        self.n_iter_no_change = n_iter_no_change
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

    def _check_target_kind(self, y):
        """Refuse a target of the wrong kind with a clear message (before conversion)."""

    # ---- fitting ---------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    @single_threaded_blas
    def fit(self, X, y, sample_weight=None):
        """Fit the mixture of experts with ``solver`` (EM by default).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A CuPy array is fitted on the GPU with ``backend="auto"`` or
            ``"cupy"`` (and moved to the host for a CPU backend).
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; they multiply the responsibilities in the
            M-step, so an integer weight acts as repeating the row.

        Returns
        -------
        self : object
        """
        self._check_solver_options()
        kernels = resolve_backend(self.backend, X)
        X, Y, sample_weight = self._validated(
            X, y, sample_weight, kernels, reset=True,
            encode=lambda y: self._encode_targets(y, fitting=True),
        )
        warm = self.warm_start and self._warm_startable(X.shape[1], Y.shape[1])
        x_mean, x_scale = weighted_mean_and_scale(X, sample_weight)
        data = self._training_data(X, Y, sample_weight, x_mean, x_scale, kernels)
        family = self._make_family(x_scale, Y, sample_weight)
        solve = SOLVERS[self.solver]
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)

        if warm:
            # a different n_experts grows (splits) or prunes the previous fit
            params = resize_experts(family, kernels, data, self._params_from_user(x_mean, x_scale),
                                    self.n_experts, np.random.default_rng([seed, 2]))
            starts = [("warm", params)]
        else:
            starts = self._initial_starts(X, Y, sample_weight, data, family, kernels)

        best = None
        for index, (kind, params) in enumerate(starts):
            if kind != "warm":
                params = params()
            result = solve(
                family, kernels, data, params, max_iter=self.max_iter, tol=self.tol,
                verbose=self.verbose > 1, options=self._solver_options((seed, index)),
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
                f"The best of {len(starts)} {SOLVER_NAMES[self.solver]} run(s) did not "
                "converge within "
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
        self._finish_fit(family, kernels, data, best)
        return self

    # ---- input -------------------------------------------------------------
    def _validated(self, X, y, sample_weight, kernels, *, encode, reset):
        """Validated ``(X, Y, sample_weight)``: Y the 2-D encoded targets in X's dtype.

        Host input is checked by scikit-learn; CuPy input is checked on the
        device for a GPU backend (and moved to the host for a CPU one). The
        arrays stay where they were checked: see :meth:`_training_data`.
        ``encode(y)`` turns validated targets into 2-D float64 ones.
        """
        if is_device_array(X) and kernels.device:
            return self._validated_on_device(X, y, sample_weight, kernels, encode, reset)
        X, y, sample_weight = to_host(X), to_host(y), to_host(sample_weight)
        self._check_target_kind(y)
        X, y = validate_data(
            self, X, y, dtype=FLOAT_DTYPES, reset=reset, multi_output=self._multi_output,
            y_numeric=self._y_numeric,
        )
        sample_weight = _check_sample_weight(
            sample_weight, X, dtype=np.float64, ensure_non_negative=True
        )
        _check_magnitude(X, "X", X.dtype)
        Y = encode(y)
        _check_magnitude(Y, "y", X.dtype)  # before the cast to X's dtype can overflow
        return X, Y.astype(X.dtype, copy=False), sample_weight

    def _validated_on_device(self, X, y, sample_weight, kernels, encode, reset):
        """:meth:`_validated` for a CuPy ``X``: nothing of size n leaves the device."""
        X = self._validated_device_X(X, reset)
        if is_device_array(y):
            y = check_device_array(y, input_name="y", estimator_name=type(self).__name__,
                                   ensure_2d=False, dtype=None)
        else:  # host targets (labels of any type): checked and encoded on the host
            self._check_target_kind(y)
            y = _check_y(y, multi_output=self._multi_output, y_numeric=self._y_numeric,
                         estimator=self)
        if y.shape[0] != X.shape[0]:
            raise ValueError("Found input variables with inconsistent numbers of samples: "
                             f"{[X.shape[0], y.shape[0]]}")
        sample_weight = check_device_sample_weight(sample_weight, X)
        _check_magnitude(X, "X", X.dtype)
        Y = in_namespace(encode(y), kernels)
        _check_magnitude(Y, "y", X.dtype)
        return X, Y.astype(X.dtype, copy=False), sample_weight

    def _validated_device_X(self, X, reset):
        """A CuPy X checked on the device; sets or checks ``n_features_in_``."""
        X = check_device_array(X, input_name="X", estimator_name=type(self).__name__,
                               ensure_2d=True, dtype=FLOAT_DTYPES)
        validate_data(self, X, skip_check_array=True, reset=reset)
        return X

    def _training_data(self, X, Y, sample_weight, x_mean, x_scale, kernels):
        """TrainingData in the namespace of ``kernels``: host input for the GPU moves once."""
        Xs = in_namespace(standardize(X, x_mean, x_scale), kernels)
        return TrainingData(Xs, in_namespace(Y, kernels), in_namespace(sample_weight, kernels),
                            float(self.alpha))

    # ---- solver options, partial_fit -------------------------------------
    def _check_solver_options(self):
        check_solver_options(self.solver, n_experts=self.n_experts, gating=self.gating,
                             top_k=self.top_k, gate_noise=self.gate_noise)

    def _solver_options(self, seed):
        return SolverOptions(
            gating=self.gating, top_k=self.top_k, balance=float(self.balance),
            gate_noise=float(self.gate_noise), batch_size=self.batch_size,
            learning_rate_init=float(self.learning_rate_init), shuffle=bool(self.shuffle),
            n_iter_no_change=int(self.n_iter_no_change), seed=tuple(int(v) for v in seed),
        )

    def _finish_fit(self, family, kernels, data, result):
        """Attributes that depend on the gating mode: usage, routed log-likelihood."""
        log_likelihood, self.expert_usage_, share = training_summary(
            family, kernels, data, result.params, self.gating, self.top_k
        )
        self._warn_vanished_experts(share)
        # soft gating keeps the solver's own value (the same number, no re-rounding)
        if routing_k(self.gating, self.top_k, self.n_experts) is not None:
            self.log_likelihood_ = log_likelihood
        self._solver_state = result.state

    def _warn_vanished_experts(self, share):
        """Warn about experts no training sample is attributed to any more."""
        vanished = np.flatnonzero(share < VANISHED_SHARE)
        if vanished.size == 0 or share.size == 1:
            return
        if self.solver == "em":
            tried = "EM's attempt to re-initialise them did not improve the fit"
        else:
            tried = "only solver='em' re-initialises vanished experts"
        warnings.warn(
            f"{vanished.size} of {share.size} experts (indices {vanished.tolist()}) receive no "
            f"share of the training data: their responsibilities vanished ({tried}). They do "
            "not affect predictions; fewer experts (a smaller n_experts) would fit as well.",
            ConvergenceWarning,
        )

    def _check_partial_fit_solver(self):
        if self.solver not in STOCHASTIC_SOLVERS:
            raise AttributeError(
                f"partial_fit is only available with solver='adam', not {self.solver!r}: "
                "it takes one pass of mini-batch gradient steps over the data it is given."
            )
        return True

    @available_if(_check_partial_fit_solver)
    @_fit_context(prefer_skip_nested_validation=True)
    @single_threaded_blas
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch of mini-batch Adam over (X, y), continuing from the current model.

        Only with ``solver="adam"``. The first call (on an unfitted
        estimator) initialises the model from its batch, which also fixes
        the input standardisation; later calls, and calls after ``fit``,
        continue from the current parameters and Adam state. Each call
        adds one entry to the histories (the objective on its own batch,
        which need not increase) and counts one iteration in ``n_iter_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : object
        """
        return self._partial_fit(X, y, sample_weight)

    def _encode_partial_targets(self, y, first_call):
        """Targets of a partial_fit batch (the classifier knows its classes beforehand)."""
        return self._encode_targets(y, fitting=first_call)

    def _partial_fit(self, X, y, sample_weight):
        self._check_solver_options()
        first_call = not hasattr(self, "_params")
        kernels = resolve_backend(self.backend, X)
        X, Y, sample_weight = self._validated(
            X, y, sample_weight, kernels, reset=first_call,
            encode=lambda y: self._encode_partial_targets(y, first_call),
        )
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        if first_call:
            # the first batch fixes the input standardisation and the expert family
            self._x_mean, self._x_scale = weighted_mean_and_scale(X, sample_weight)
            self._family = self._make_family(self._x_scale, Y, sample_weight)
        data = self._training_data(X, Y, sample_weight, self._x_mean, self._x_scale, kernels)
        if first_call:
            start = self._initial_starts(X, Y, sample_weight, data, self._family, kernels)[0]
            params, state = start[1](), None
            self.n_iter_ = 0
            self.log_likelihood_history_ = self.objective_history_ = np.empty(0)
        else:
            params, state = self._params, getattr(self, "_solver_state", None)
            if params["gate_coef"].shape[0] != self.n_experts:
                params, state = resize_experts(
                    self._family, kernels, data, params, self.n_experts,
                    np.random.default_rng([seed, 2]),
                ), None
        result = adam_partial_fit(self._family, kernels, data, params, state,
                                  self._solver_options((seed, 0)))
        self._params = result.params
        self._set_user_params(result.params)
        self.n_iter_ += 1
        self.converged_ = False
        self.log_likelihood_ = result.log_likelihood
        self.log_likelihood_history_ = np.append(self.log_likelihood_history_,
                                                 result.log_likelihood)
        self.objective_history_ = np.append(self.objective_history_, result.objective)
        self._finish_fit(self._family, kernels, data, result)
        return self

    def _warm_startable(self, n_features, n_targets):
        """A previous fit can seed this one if its parameters have the right shapes."""
        if not hasattr(self, "_params"):
            return False
        # any number of experts: resize_experts adds or removes experts
        return self._params["coef"].shape[1:] == (n_targets, n_features)

    def _initial_starts(self, X, Y, sample_weight, data, family, kernels):
        """Lazily built starts: (kind, callable returning params), nested in n_init.

        ``X``, ``Y`` and ``sample_weight`` are the validated input (unscaled,
        on the host or, for CuPy input, on the device). The initial
        responsibilities are drawn on the host from the canonical rows (at
        most ``_MAX_INIT_ROWS``, the only rows that cross to the host), so a
        seed gives the same start on every backend; the M-step that turns
        them into parameters runs in the fit's namespace.
        """
        xp = kernels.xp
        index, weight = canonical_rows(X, Y, sample_weight, _MAX_INIT_ROWS)
        rows = xp.asarray(index)
        init_data = TrainingData(data.X[rows], data.Y[rows], xp.asarray(weight), data.alpha)
        host_X, host_Y = kernels.to_host(init_data.X), kernels.to_host(init_data.Y)
        y_mean, y_scale = weighted_mean_and_scale(host_Y, weight)
        Z = np.hstack([host_X, (host_Y - y_mean) / y_scale])
        neutral = self._neutral_params(Y, sample_weight, X.shape[1])
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)

        def make_start(i):
            kind = start_kind(self.init_params, i)
            rng = np.random.default_rng([seed, i])

            def build():
                resp = initial_responsibilities(kind, Z, weight, self.n_experts, rng)
                return initial_params(family, kernels, init_data, neutral, xp.asarray(resp))

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
    @property
    def _fitted_n_experts(self):
        """Experts of the fitted model (``n_experts`` may have been set since)."""
        return self._params["gate_coef"].shape[0]

    def _standardize(self, X):
        """Validated, standardised X in the namespace of the backend that predicts on it."""
        check_is_fitted(self)
        kernels = resolve_backend(self.backend, X)
        if is_device_array(X) and kernels.device:
            X = self._validated_device_X(X, reset=False)
        else:
            X = validate_data(self, to_host(X), dtype=FLOAT_DTYPES, reset=False)
        return in_namespace(standardize(X, self._x_mean, self._x_scale), kernels)

    def _log_gate(self, Xs, routed=True):
        """Log gate (n, K); routed: the one prediction mixes with (``gating``, ``top_k``)."""
        kernels = resolve_backend(self.backend, Xs)
        log_g = kernels.log_gate(Xs, self._params["gate_coef"], self._params["gate_intercept"])
        return routed_log_gate(kernels, log_g, self.gating, self.top_k) if routed else log_g

    @single_threaded_blas
    def predict_gate(self, X):
        """Gate probabilities g_k(x).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        gate : ndarray of shape (n_samples, n_experts)
            Rows sum to 1. A CuPy array for CuPy input.
        """
        Xs = self._standardize(X)
        return as_caller(array_namespace(Xs).exp(self._log_gate(Xs, routed=False)), X)

    def _e_step(self, X, y):
        """Routed E-step: ``(log_norm (n,), resp (n, K))`` in the namespace of the backend."""
        Xs = self._standardize(X)
        kernels = resolve_backend(self.backend, Xs)
        # targets are encoded where they are (device labels stay on the device)
        y = y if kernels.device else to_host(y)
        Y = in_namespace(self._encode_targets(y, fitting=False), kernels)
        if Y.shape[0] != Xs.shape[0]:
            raise ValueError(
                f"X and y have inconsistent numbers of samples: {Xs.shape[0]} and {Y.shape[0]}."
            )
        resp = kernels.xp.empty((Xs.shape[0], self._fitted_n_experts), dtype=Xs.dtype)
        log_norm = routed_e_step(self._family, kernels, Xs, Y, self._params, resp, self.gating,
                                 self.top_k)
        return log_norm, resp

    @single_threaded_blas
    def predict_responsibilities(self, X, y):
        """Posterior probability h_ik that expert k generated (x_i, y_i).

        Under the gate prediction uses: with ``top_k`` zero outside each
        row's kept experts, with hard gating one-hot on the argmax-gate
        expert.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)

        Returns
        -------
        resp : ndarray of shape (n_samples, n_experts)
            Rows sum to 1. A CuPy array for CuPy input.
        """
        return as_caller(self._e_step(X, y)[1], X)

    @single_threaded_blas
    def log_likelihood(self, X, y, sample_weight=None):
        """Mean per-sample log-likelihood log p(y | x) under the fitted model.

        The density is the one prediction uses (``gating``, ``top_k``): the
        renormalised top-k mixture, or the argmax-gate expert alone for hard
        gating.

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
        if is_device_array(log_norm):
            sample_weight = check_device_sample_weight(sample_weight, log_norm,
                                                       ensure_non_negative=False)
            return float(array_namespace(log_norm).average(log_norm, weights=sample_weight))
        sample_weight = _check_sample_weight(sample_weight, log_norm[:, None])
        return float(np.average(log_norm, weights=sample_weight))

    def _n_parameters(self):
        """Free parameters: the gate's (one expert's logits are redundant) and the experts'."""
        check_is_fitted(self)
        n_features = self.n_features_in_
        n_experts = self._fitted_n_experts
        gate = (n_experts - 1) * (n_features + 1)
        return gate + self._expert_family_class().n_parameters(
            n_experts, n_features, self._n_targets
        )

    def bic(self, X, y):
        """Bayesian information criterion on (X, y); lower is better.

        Returns
        -------
        bic : float
            -2 log L + n_parameters * log(n_samples).
        """
        n_samples = _num_samples(X)
        total = self.log_likelihood(X, y) * n_samples
        return -2.0 * total + self._n_parameters() * np.log(n_samples)

    def aic(self, X, y):
        """Akaike information criterion on (X, y); lower is better.

        Returns
        -------
        aic : float
            -2 log L + 2 n_parameters.
        """
        total = self.log_likelihood(X, y) * _num_samples(X)
        return -2.0 * total + 2.0 * self._n_parameters()
