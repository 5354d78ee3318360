"""Shared estimator base: parameters, the fit loop, prediction plumbing.

Subclasses (regressor, classifier) provide small hooks: how targets are
encoded and which expert family to use. Everything about the experts
belongs to the family object (``mixexp._experts``), everything about the
gate to the gate object (``mixexp._gates``); the two are composed by
``mixexp._model.MixtureModel``, which is what the solvers train. Input
checks and host/device moves are in ``mixexp._validation``.

A fitted estimator stores arrays and hyper-parameters only: the internal
parameters (``_params``, nested as ``{"gate": ..., "experts": ...}``), the
family's configuration (``_family_state``) and the input standardisation;
the gate, family and model objects are rebuilt from them when needed.
"""

import math
import warnings
from abc import ABCMeta, abstractmethod
from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import _num_samples, check_is_fitted

from ._backend import (
    BACKENDS,
    array_namespace,
    as_caller,
    resolve_backend,
    single_threaded_blas,
)
from ._constraints import IntInterval
from ._experts._family import MAX_WEIGHT_PENALTY
from ._experts._gaussian import GCV_PENALTY_GRID
from ._gates import SoftmaxGate
from ._init import (
    initial_params,
    initial_responsibilities,
    start_kind,
)
from ._model import MixtureModel, select_columns
from ._resize import resize_experts
from ._routing import routed_e_step, routed_log_gate, routing_k, training_summary
from ._solvers import (
    SOLVER_NAMES,
    SOLVERS,
    STOCHASTIC_SOLVERS,
    VANISHED_SHARE,
    SolverOptions,
    adam_partial_fit,
    check_solver_options,
)
from ._validation import (
    checked_sample_weight,
    column_moments,
    dask_support,
    is_dask_input,
    merge_moments,
    moments_mean_scale,
    prediction_rows,
    rescaled_sample_weight,
    resolve_columns,
    training_rows,
    validate_training_input,
    weighted_mean_and_scale,
)

# Initialisation runs on at most this many distinct rows (a hash-chosen
# subsample above it); EM itself always uses all the data. 10,000 rows place
# a start's clusters as well as 20,000 did (flexmix benchmark, n=1e5: the
# log-likelihood after 10 EM iterations within 5e-6 per sample) for half of
# the start's cost.
_MAX_INIT_ROWS = 10_000

# alpha="auto": the gate's penalty per weight of a standardised feature. As a
# prior it is N(0, 1 / (2 * 0.01)), a standard deviation of about 7 in the
# logit's slope per standard deviation of the feature: it hardly moves a gate
# the data determine, and keeps one whose regions separate perfectly (where
# the likelihood alone would send the slope to infinity) from claiming
# certainty it has not seen (see the user guide, "Regularisation").
AUTO_GATE_ALPHA = 1e-2
# alpha="auto": the experts' penalty where none is chosen by GCV (Poisson
# experts; the fit that GCV is computed from): the earlier fixed default.
AUTO_EXPERT_ALPHA = 1e-4
# partial_fit refits a rescaled model by an EM step on a batch of at least this
# many rows per free parameter (see BaseMixtureOfExperts._follow_stream).
_REFIT_ROWS_PER_PARAMETER = 2
# partial_fit warns of vanished experts from batches of at least this many rows
# per expert.
_WARN_ROWS_PER_EXPERT = 50


def _same_columns(a, b):
    """Whether two ``(gate, expert)`` column selections are the same."""
    return all((x is None and y is None) or (x is not None and y is not None
                                             and np.array_equal(x, y))
               for x, y in zip(a, b, strict=True))


class BaseMixtureOfExperts(BaseEstimator, metaclass=ABCMeta):
    """Base class for mixture-of-experts estimators (not for direct use)."""

    _parameter_constraints: dict = {
        "n_experts": [IntInterval(1, None, closed="left")],
        "gate_features": ["array-like", None],
        "expert_features": ["array-like", None],
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
        gate_features,
        expert_features,
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
        self.gate_features = gate_features
        self.expert_features = expert_features
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
    def _make_family(self, x_scale, Y, sample_weight, alpha, x_mean=None):
        """The expert family for this fit (configured from the data), with penalty ``alpha``;
        ``x_mean`` and ``x_scale``: the standardisation of the experts' columns (``x_mean``
        is only needed by estimator experts, which fit on the user's scale)."""

    @abstractmethod
    def _family_class(self):
        """The fitted expert family's class (rebuilt from ``_family_state``)."""

    def _squeeze_outputs(self):
        """Whether public expert attributes drop their output axis (1-D targets)."""
        return False

    def _same_family(self):
        """Whether the fitted experts are of the family the parameters now ask for."""
        return True

    def _warm_family(self):
        """Whether ``warm_start`` can continue the fitted experts in the family asked for."""
        return self._same_family()

    def _complete_warm_params(self, model, kernels, rows, params):
        """Warm-start parameters, completed where the fitted family lacked some."""
        return params

    # ---- the model -------------------------------------------------------
    def _gate_alpha(self, weight_exponent=0):
        """The gate's alpha against weights rescaled by 2^-weight_exponent (see
        rescaled_sample_weight)."""
        alpha = AUTO_GATE_ALPHA if isinstance(self.alpha, str) else float(self.alpha)
        return math.ldexp(alpha, -weight_exponent)

    def _expert_alpha(self, weight_exponent=0):
        """The experts' alpha (before any choice by GCV), as :meth:`_gate_alpha`."""
        alpha = AUTO_EXPERT_ALPHA if isinstance(self.alpha, str) else float(self.alpha)
        return math.ldexp(alpha, -weight_exponent)

    def _make_model(self, family, weight_exponent=0, columns=(None, None)):
        """The model of ``family`` behind a softmax gate; ``columns``: the gate's and the
        experts' (see :meth:`_selected_columns`)."""
        return MixtureModel(SoftmaxGate(self._gate_alpha(weight_exponent)), family,
                            *columns)

    def _fitted_penalties(self):
        """The fitted model's penalties against the original sample weights:
        ``(gate, experts)``, the gate's per weight of a standardised input, the
        experts' (K, d) per weight on the user's scale (None for estimator experts)."""
        model = self._fitted_model
        weight_scale = math.ldexp(1.0, getattr(self, "_weight_exponent", 0))
        gate = model.gate.alpha * weight_scale
        penalty = getattr(model.family, "weight_penalty", None)
        if penalty is None:
            return gate, None
        coef = self._params["experts"]["coef"]
        scale = np.asarray(select_columns(self._x_scale, model.expert_columns), dtype=float)
        penalty = np.broadcast_to(penalty, (coef.shape[0], coef.shape[-1]))
        return gate, penalty * scale**2 * weight_scale

    @property
    def _fitted_model(self):
        """The fitted model, rebuilt from stored arrays (see the module docstring)."""
        return self._make_model(self._family_class()(**self._family_state),
                                getattr(self, "_weight_exponent", 0),
                                getattr(self, "_columns", (None, None)))

    def _selected_columns(self, n_features):
        """``(gate, expert)`` column indices from ``gate_features`` and ``expert_features``
        (None for all columns), checked against the validated input's columns."""
        names = getattr(self, "feature_names_in_", None)
        return (resolve_columns(self.gate_features, "gate_features", n_features, names),
                resolve_columns(self.expert_features, "expert_features", n_features, names))

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
            ``"cupy"`` (and moved to the host for a CPU backend). A Dask
            array or DataFrame is fitted where its blocks are, one pass per
            iteration, with ``y`` and ``sample_weight`` as Dask or NumPy
            arrays (see the user guide, "Data beyond one machine: Dask",
            for the settings supported there).
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; they multiply the responsibilities in the
            M-step, so an integer weight acts as repeating the row (and
            their scale matters against ``alpha``). Weights whose mean is
            beyond 2^+/-60 are rescaled by a power of two, ``alpha`` with
            them: the same fit, without overflowing sums.

        Returns
        -------
        self : object
        """
        self._check_solver_options()
        kernels = resolve_backend(self.backend, X)
        if is_dask_input(X, y, sample_weight):
            # checked, standardised and kept on the workers (mixexp._dask);
            # Y and sample_weight: two rows standing for the targets' moments
            rows, weight_exponent = dask_support().training_rows(self, X, y, sample_weight,
                                                                 kernels)
            Y, sample_weight = rows.targets()
        else:
            X, Y, sample_weight = validate_training_input(
                self, X, y, sample_weight, kernels, reset=True,
                encode=lambda y: self._encode_targets(y, fitting=True),
            )
            # weights whose total would overflow (or vanish) are rescaled, the penalty with them
            sample_weight, weight_exponent = rescaled_sample_weight(sample_weight)
            x_mean, x_scale = weighted_mean_and_scale(X, sample_weight)
            rows = training_rows(X, Y, sample_weight, x_mean, x_scale, kernels)
        x_mean, x_scale = rows.x_mean, rows.x_scale
        columns = self._selected_columns(rows.n_features)
        warm = self.warm_start and self._warm_startable(rows.n_features, Y.shape[1], columns)
        model = self._make_model(
            self._make_family(select_columns(x_scale, columns[1]), Y, sample_weight,
                              self._expert_alpha(weight_exponent),
                              x_mean=select_columns(x_mean, columns[1])),
            weight_exponent, columns)
        solve = SOLVERS[self.solver]
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)

        if warm:
            params = self._params_from_user(model, x_mean, x_scale)
            if model.n_experts(params) != self.n_experts:
                # a different n_experts grows (splits) or prunes the previous fit
                params = resize_experts(model, kernels, rows, params, self.n_experts,
                                        np.random.default_rng([seed, 2]))
            starts = [("warm", self._complete_warm_params(model, kernels, rows, params))]
            chosen = getattr(self, "_family_state", {}).get("weight_penalty")
            if (self._chooses_expert_penalties(model) and np.ndim(chosen) == 2
                    and np.shape(chosen) == np.shape(params["experts"]["coef"])[::2]):
                # alpha="auto": continue at the penalties chosen last time (GCV then
                # chooses again), not at the calibration's, which would move the fit away
                model.family.weight_penalty = chosen
        else:
            starts = self._initial_starts(Y, sample_weight, rows, model, kernels)

        best = None
        for index, (kind, params) in enumerate(starts):
            if kind != "warm":
                params = params()
            result = solve(
                model, kernels, rows, params, max_iter=self.max_iter, tol=self.tol,
                verbose=self.verbose > 1, options=self._solver_options((seed, index)),
            )
            if self.verbose:
                print(
                    f"Start {index + 1}/{len(starts)} ({kind}): {result.n_iter} iterations, "
                    f"log-likelihood {result.log_likelihood:.6f}, converged={result.converged}"
                )
            if best is None or result.objective > best.objective:
                best = result

        if self._chooses_expert_penalties(model):
            best = self._refit_with_chosen_penalties(model, kernels, rows, best, weight_exponent,
                                                     (seed, len(starts)))
        else:
            self.__dict__.pop("expert_alpha_", None)
        if not best.converged:
            self._warn_not_converged(len(starts), best)
        self._x_mean, self._x_scale = x_mean, x_scale
        self._weight_exponent = weight_exponent
        self._stream = None  # a later partial_fit starts its stream from this fit
        self._store_fit(model, best.params, rows.n_features, Y.shape[1])
        self.n_iter_ = best.n_iter
        self.converged_ = best.converged
        self.log_likelihood_ = best.log_likelihood
        self.log_likelihood_history_ = np.asarray(best.log_likelihood_history)
        self.objective_history_ = np.asarray(best.objective_history)
        self._finish_fit(model, kernels, rows, best)
        return self

    def _chooses_expert_penalties(self, model):
        """alpha="auto" with experts whose M-step is a weighted ridge regression."""
        return isinstance(self.alpha, str) and hasattr(model.family, "choose_penalties")

    def _refit_with_chosen_penalties(self, model, kernels, rows, best, weight_exponent, seed):
        """alpha="auto": each expert's penalty by GCV, then the fit continued with them.

        At the best start's fit, one pass over the rows gathers each
        expert's weighted moments at its posterior weights; GCV chooses its
        penalty per standardised weight from :data:`GCV_PENALTY_GRID`
        (``model.family.choose_penalties``); the solver then continues from
        the experts' M-step at these penalties (from the same statistics)
        with the penalties fixed, so its objective is one function
        throughout (EM stays monotone). Sets ``expert_alpha_``; returns the
        continued fit's result (its histories and iterations are the fit's).
        """
        params = best.params
        statistics = model.map_reduce_weighted(
            kernels, rows, params,
            lambda X, Y, W: model.family.penalty_choice_statistics(kernels, X, Y, W,
                                                                   params["experts"]))
        # rescaled weights (see rescaled_sample_weight): the grid and counts with them
        weight_scale = math.ldexp(1.0, weight_exponent)
        # capped as the user-scale penalties are (weights whose mean is near 1e-308)
        with np.errstate(over="ignore"):
            grid = np.minimum(GCV_PENALTY_GRID / weight_scale, MAX_WEIGHT_PENALTY)
        chosen = model.family.choose_penalties(statistics, params["experts"], grid,
                                               count_scale=weight_scale)
        n_weights = params["experts"]["coef"].shape[2]
        model.family.weight_penalty = np.repeat(chosen[:, None], n_weights, axis=1)
        # the experts' M-step at the chosen penalties from the same statistics: the
        # continued run starts there (one expert: at its optimum, which gradient
        # solvers would only approach)
        params = {**params, "experts": model.family.solve(statistics, params["experts"])}
        result = SOLVERS[self.solver](
            model, kernels, rows, params, max_iter=self.max_iter, tol=self.tol,
            verbose=self.verbose > 1, options=self._solver_options(seed))
        if self.verbose:
            print(f"Penalties chosen by GCV: {result.n_iter} more iterations, "
                  f"log-likelihood {result.log_likelihood:.6f}, converged={result.converged}")
        self.expert_alpha_ = chosen * weight_scale
        return result

    # The estimators standardise the inputs themselves: scaling them is no
    # advice. What helps depends on the solver.
    _CONVERGENCE_ADVICE = {
        "em": "Increase max_iter, or tol (EM crawls on flat likelihoods; more starts, "
              "n_init, may find a better-conditioned optimum).",
        "lbfgs": "Increase max_iter, or tol.",
        "adam": "Increase max_iter or n_iter_no_change, raise tol, or lower "
                "learning_rate_init (steps too large to settle) or raise batch_size "
                "(noisier steps).",
    }

    def _warn_not_converged(self, n_starts, best):
        history = np.asarray(best.objective_history)
        gain = (f" Its last iteration changed the objective by {history[-1] - history[-2]:.2g} "
                "per sample." if history.size > 1 else "")
        warnings.warn(
            f"The best of {n_starts} {SOLVER_NAMES[self.solver]} run(s) did not converge "
            f"within max_iter={self.max_iter} iterations (tol={self.tol}).{gain} "
            + self._CONVERGENCE_ADVICE[self.solver],
            ConvergenceWarning,
        )

    def _store_fit(self, model, params, n_features, n_outputs):
        """Keep the fitted model as arrays (see the module docstring); set public attributes.

        ``n_features``: columns of the input (the gate and experts may see fewer).
        """
        self._params = params
        self._family_state = model.family.state()
        self._columns = (model.gate_columns, model.expert_columns)
        self._fitted_shape = (n_features, n_outputs)
        self._set_user_params(model, params)

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

    def _finish_fit(self, model, kernels, rows, result, warn=True):
        """Attributes that depend on the gating mode: usage, routed log-likelihood."""
        log_likelihood, self.expert_usage_, share = training_summary(
            model, kernels, rows, result.params, self.gating, self.top_k
        )
        if warn:
            self._warn_vanished_experts(share, local=getattr(rows, "local", True))
        # soft gating keeps the solver's own value (the same number, no re-rounding)
        if routing_k(self.gating, self.top_k, self.n_experts) is not None:
            self.log_likelihood_ = log_likelihood
        self._solver_state = result.state

    def _warn_vanished_experts(self, share, local=True):
        """Warn about experts no training sample is attributed to any more
        (``local``: the rows were in memory, where EM can re-initialise them)."""
        vanished = np.flatnonzero(share < VANISHED_SHARE)
        if vanished.size == 0 or share.size == 1:
            return
        warnings.warn(
            f"{vanished.size} of {share.size} experts (indices {vanished.tolist()}) receive no "
            f"share of the training data: their responsibilities vanished "
            f"({self._revival_note(local)}). They do not affect predictions; fewer experts "
            f"({self._fewer_experts_hint}) would fit as well.",
            ConvergenceWarning,
        )

    _fewer_experts_hint = "a smaller n_experts"

    def _revival_note(self, local=True):
        """Why vanished experts stayed (for the warning)."""
        if self.solver == "em" and not local:
            return ("EM re-initialises vanished experts only on data in memory, not on "
                    "Dask input")
        if self.solver == "em":
            return "EM's attempt to re-initialise them did not improve the fit"
        return "only solver='em' re-initialises vanished experts"

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
        estimator) initialises the model from its batch; later calls, and
        calls after ``fit``, continue from the current parameters and Adam
        state. The input standardisation and the targets' scale follow the
        running statistics of the stream (the model is rescaled when they
        move materially; see the user guide, "Training"), so the first
        batch need not represent the stream. Each call
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
        if is_dask_input(X, y, sample_weight):
            dask_support().refuse_partial_fit(self)
        first_call = not hasattr(self, "_params")
        kernels = resolve_backend(self.backend, X)
        X, Y, sample_weight = validate_training_input(
            self, X, y, sample_weight, kernels, reset=first_call,
            encode=lambda y: self._encode_partial_targets(y, first_call),
        )
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        if first_call:
            # the first batch fixes the weights' scale, and starts the input
            # standardisation and the expert family, which follow the stream
            sample_weight, self._weight_exponent = rescaled_sample_weight(sample_weight)
            self._x_mean, self._x_scale = weighted_mean_and_scale(X, sample_weight)
            alpha = self._expert_alpha(self._weight_exponent)
            columns = self._selected_columns(X.shape[1])
            family = self._make_family(select_columns(self._x_scale, columns[1]), Y,
                                       sample_weight, alpha)
            model = self._make_model(family, self._weight_exponent, columns)
            self._stream = self._stream_anchor(column_moments(X, sample_weight),
                                               column_moments(Y, sample_weight))
        else:
            sample_weight = rescaled_sample_weight(sample_weight,
                                                   getattr(self, "_weight_exponent", 0))[0]
            self._check_same_columns(X.shape[1])
            model = self._fitted_model
            params, state = self._follow_stream(model, X, Y, sample_weight)
            rebuilt = params is not None
            if rebuilt:
                model = self._fitted_model
                self._params, self._solver_state = params, state
        rows = training_rows(X, Y, sample_weight, self._x_mean, self._x_scale, kernels)
        if first_call:
            start = self._initial_starts(Y, sample_weight, rows, model, kernels)[0]
            params, state = start[1](), None
            self.n_iter_ = 0
            self.log_likelihood_history_ = self.objective_history_ = np.empty(0)
        else:
            params, state = self._params, getattr(self, "_solver_state", None)
            if rebuilt and _REFIT_ROWS_PER_PARAMETER * model.n_parameters(
                    model.n_experts(params), X.shape[1], Y.shape[1]) <= X.shape[0]:
                # rescaled: one EM step on this batch refits what the earlier, narrower
                # batches extrapolated (a batch too small to refit keeps the function)
                data = rows.whole()
                resp = kernels.xp.empty((X.shape[0], model.n_experts(params)), dtype=X.dtype)
                model.e_step(kernels, data.X, data.Y, params, resp)
                params = initial_params(model, kernels, data, params, resp)
            if model.n_experts(params) != self.n_experts:
                params, state = resize_experts(
                    model, kernels, rows, params, self.n_experts,
                    np.random.default_rng([seed, 2]),
                ), None
        result = adam_partial_fit(model, kernels, rows, params, state,
                                  self._solver_options((seed, 0)))
        self._store_fit(model, result.params, X.shape[1], Y.shape[1])
        self.n_iter_ += 1
        self.converged_ = False
        self.log_likelihood_ = result.log_likelihood
        self.log_likelihood_history_ = np.append(self.log_likelihood_history_,
                                                 result.log_likelihood)
        self.objective_history_ = np.append(self.objective_history_, result.objective)
        # a small batch need not reach every expert: its shares say nothing of the
        # stream's (one row per call warned on most calls); expert_usage_ reports them
        self._finish_fit(model, kernels, rows, result,
                         warn=X.shape[0] >= _WARN_ROWS_PER_EXPERT * self.n_experts)
        return self

    # ---- streams ---------------------------------------------------------
    def _stream_anchor(self, x_moments, y_moments):
        """The running moments of a stream, and the scaling the model was last built on."""
        y_variance = y_moments["m2"] / y_moments["weight"]
        return {"x": x_moments, "y": y_moments, "x_mean": self._x_mean.copy(),
                "x_scale": self._x_scale.copy(), "y_variance": y_variance}

    def _follow_stream(self, model, X, Y, sample_weight):
        """Merge a batch into the stream's moments; rescale the model if they moved.

        The first batch need not represent the stream (a constant target,
        one row, a shifted region). When the running mean of a feature has
        moved by half its scale, a scale has changed by 2x, or a target's
        variance by 4x since the model was last built, the model is rebuilt
        on the running statistics: the same function re-expressed in the new
        standardisation, a family from the running target moments (whose
        noise levels widen with the target, see ``ExpertFamily.adapt``), and
        a fresh Adam state. A stationary stream settles after a few batches.
        Returns ``(params, state)`` of the rebuilt model, or ``(None, None)``.
        """
        batch_x, batch_y = column_moments(X, sample_weight), column_moments(Y, sample_weight)
        stream = getattr(self, "_stream", None)
        if stream is None:  # partial_fit after fit: the fit's scaling is the anchor
            self._stream = self._stream_anchor(batch_x, batch_y)
            return None, None
        stream["x"] = merge_moments(stream["x"], batch_x)
        stream["y"] = merge_moments(stream["y"], batch_y)
        x_mean, x_scale = moments_mean_scale(stream["x"])
        y_variance = stream["y"]["m2"] / stream["y"]["weight"]
        old_mean, old_scale = stream["x_mean"], stream["x_scale"]
        with np.errstate(divide="ignore", invalid="ignore"):
            moved = (np.any(np.abs(x_mean - old_mean) > 0.5 * old_scale)
                     or np.any(np.abs(np.log(x_scale / old_scale)) > np.log(2.0))
                     or np.any(np.abs(np.log(y_variance / stream["y_variance"])) > np.log(4.0)))
        if not moved:
            return None, None
        y_mean = stream["y"]["mean"]
        spread = np.sqrt(y_variance)
        # two rows with the stream's target mean and variance: the family's inputs
        moment_rows = np.stack([y_mean - spread, y_mean + spread])
        columns = getattr(self, "_columns", (None, None))
        family = self._make_family(select_columns(x_scale, columns[1]), moment_rows,
                                   np.full(2, 0.5),
                                   self._expert_alpha(getattr(self, "_weight_exponent", 0)))
        rebuilt = self._make_model(family, getattr(self, "_weight_exponent", 0), columns)
        params = self._params_from_user(rebuilt, x_mean, x_scale)
        params["experts"] = family.adapt(params["experts"], y_variance, stream["y_variance"])
        self._x_mean, self._x_scale = x_mean, x_scale
        self._family_state = family.state()
        stream.update(x_mean=x_mean.copy(), x_scale=x_scale.copy(), y_variance=y_variance)
        return params, None

    def _warm_startable(self, n_features, n_targets, columns):
        """A previous fit can seed this one if its parameters have the right shapes
        (the same input and target columns, and the same columns for the gate and
        the experts)."""
        if not hasattr(self, "_params"):
            return False
        # any number of experts: resize_experts adds or removes experts
        return (self._fitted_shape == (n_features, n_targets) and self._warm_family()
                and _same_columns(getattr(self, "_columns", (None, None)), columns))

    def _check_same_columns(self, n_features):
        """partial_fit continues a model: its experts keep their family, and its gate
        and experts their columns."""
        if not self._same_family():
            raise ValueError(
                "expert changed since the model was fitted; partial_fit continues the "
                "fitted model. Call fit to start again with the new family.")
        columns = self._selected_columns(n_features)
        if not _same_columns(getattr(self, "_columns", (None, None)), columns):
            raise ValueError(
                "gate_features or expert_features changed since the model was fitted; "
                "partial_fit continues the fitted model, whose gate and experts keep their "
                "columns. Call fit to start again with the new selection.")

    def _initial_starts(self, Y, sample_weight, rows, model, kernels):
        """Lazily built starts: (kind, callable returning params), nested in n_init.

        ``Y`` and ``sample_weight`` are the validated targets and weights
        (or rows standing for their moments, ``rows.targets()``), which the
        neutral model is built from. The initial responsibilities are drawn
        on the host from the canonical rows (at most ``_MAX_INIT_ROWS``, the
        only rows that cross to the host, from a GPU or a cluster), so a
        seed gives the same start on every backend; the M-step that turns
        them into parameters runs in the fit's namespace.
        """
        xp = kernels.xp
        init_data, weight = rows.canonical_sample(_MAX_INIT_ROWS)
        host_X, host_Y = kernels.to_host(init_data.X), kernels.to_host(init_data.Y)
        y_mean, y_scale = weighted_mean_and_scale(host_Y, weight)
        Z = np.hstack([host_X, (host_Y - y_mean) / y_scale])
        neutral = model.neutral(Y, sample_weight, self.n_experts, rows.n_features)
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)

        def make_start(i):
            kind = start_kind(self.init_params, i)
            rng = np.random.default_rng([seed, i])

            def build():
                resp = self._arrange_initial_responsibilities(
                    initial_responsibilities(kind, Z, weight, self.n_experts, rng), Z, weight)
                return initial_params(model, kernels, init_data, neutral, xp.asarray(resp))

            return kind, build

        return [make_start(i) for i in range(self.n_init)]

    def _arrange_initial_responsibilities(self, resp, Z, weight):
        """Starting responsibilities (n, K) of the rows ``Z``, in the gate's expert order."""
        return resp

    # ---- scale conversion ---------------------------------------------
    def _set_user_params(self, model, params):
        public = model.to_user(params, self._x_mean, self._x_scale,
                               squeeze=self._squeeze_outputs())
        # a previous fit of another family leaves no attribute of its own behind
        for name in getattr(self, "_public_names", ()):
            if name not in public and hasattr(self, name):
                delattr(self, name)
        for name, value in public.items():
            setattr(self, name, value)
        self._public_names = tuple(public)

    def _params_from_user(self, model, x_mean, x_scale):
        """Internal parameters for standardisation (x_mean, x_scale), from the public ones
        (as fitted: ``n_experts`` may have changed since)."""
        return model.from_user(vars(self), x_mean, x_scale)

    # ---- prediction plumbing -------------------------------------------
    @property
    def _fitted_n_experts(self):
        """Experts of the fitted model (``n_experts`` may have been set since)."""
        return self._fitted_model.n_experts(self._params)

    def _map_rows(self, X, function, y=None):
        """``function(Xs, kernels[, Y])`` over chunks of validated, standardised rows.

        ``function`` returns a tuple of arrays with the chunk's rows first;
        they are gathered into arrays of all rows, in the namespace of the
        backend that serves ``X``. No standardised copy of X, and no
        temporary larger than a chunk besides the outputs (``mixexp._rows``).
        """
        encode = None if y is None else (lambda y: self._encode_targets(y, fitting=False))
        if is_dask_input(X):  # lazy, over X's blocks (mixexp._dask)
            return dask_support().map_rows(self, X, function, encode, y)
        if is_dask_input(y):
            raise TypeError("y is a Dask collection but X is not: pass X as a Dask array or "
                            "DataFrame too, or compute y.")
        rows = prediction_rows(self, X, encode, y)
        if y is None:
            return rows.map(lambda chunk: function(chunk.X, rows.kernels))
        return rows.map(lambda chunk: function(chunk.X, rows.kernels, chunk.Y))

    def _log_gate(self, Xs, kernels, routed=True):
        """Log gate (n, K); routed: the one prediction mixes with (``gating``, ``top_k``)."""
        log_g = self._fitted_model.log_prior(kernels, Xs, self._params)
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
            Rows sum to 1. A CuPy array for CuPy input, a lazy Dask array
            for Dask input.
        """
        (gate,) = self._map_rows(
            X, lambda Xs, kernels: (kernels.xp.exp(self._log_gate(Xs, kernels, routed=False)),))
        return as_caller(gate, X)

    def _e_step(self, X, y):
        """Routed E-step: ``(log_norm (n,), resp (n, K))`` in the namespace of the backend."""
        model, n_experts = self._fitted_model, self._fitted_n_experts

        def chunk_e_step(Xs, kernels, Y):
            resp = kernels.xp.empty((Xs.shape[0], n_experts), dtype=Xs.dtype)
            log_norm = routed_e_step(model, kernels, Xs, Y, self._params, resp, self.gating,
                                     self.top_k)
            return log_norm, resp

        return self._map_rows(X, chunk_e_step, y)

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
            Rows sum to 1. A CuPy array for CuPy input, a lazy Dask array
            for Dask input.
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
        if is_dask_input(log_norm):  # one pass on the workers
            return dask_support().weighted_mean(log_norm, sample_weight)
        # a weighted mean: only relative weights matter (their total may overflow)
        sample_weight = rescaled_sample_weight(checked_sample_weight(sample_weight, log_norm))[0]
        return float(array_namespace(log_norm).average(log_norm, weights=sample_weight))

    def _n_parameters(self):
        """Free parameters: the gate's (one expert's logits are redundant) and the experts'."""
        check_is_fitted(self)
        n_features, n_outputs = self._fitted_shape
        return self._fitted_model.n_parameters(self._fitted_n_experts, n_features, n_outputs)

    def bic(self, X, y):
        """Bayesian information criterion on (X, y); lower is better.

        Returns
        -------
        bic : float
            -2 log L + n_parameters * log(n_samples).
        """
        n_samples = _n_rows(X)
        total = self.log_likelihood(X, y) * n_samples
        return -2.0 * total + self._n_parameters() * np.log(n_samples)

    def aic(self, X, y):
        """Akaike information criterion on (X, y); lower is better.

        Returns
        -------
        aic : float
            -2 log L + 2 n_parameters.
        """
        total = self.log_likelihood(X, y) * _n_rows(X)
        return -2.0 * total + 2.0 * self._n_parameters()


def _n_rows(X):
    """Rows of ``X`` (of a Dask collection, without computing anything but lengths)."""
    return dask_support().n_rows(X) if is_dask_input(X) else _num_samples(X)
