"""Any scikit-learn estimator as experts, trained by generalised EM.

Each expert is a clone of one prototype estimator, fitted in the M-step on
the experts' columns of the rows *on the user's scale* with
``sample_weight`` = responsibilities x sample weights.

* Regressors (:class:`EstimatorRegressionExperts`): the expert's noise is
  Gaussian with a variance of its own per target, p_k(y | x) =
  N(y; f_k(x), diag(sigma2_k)), sigma2_k the weighted mean squared residual
  (floored as the Gaussian family's). Parameters ``{"estimator": (K,)
  object array of fitted clones, "variance": (K, t)}``.
* Classifiers (:class:`EstimatorClassificationExperts`): p_k(y = c | x) is
  the clone's ``predict_proba``, its columns aligned to the classes by the
  clone's ``classes_`` (a class a clone never saw gets probability 0), and
  floored at :data:`PROBA_FLOOR` before the log. Parameters
  ``{"estimator": (K,) object array}``.

The M-step is a *guarded* generalised M-step: the new clone is kept only if
its weighted expected log-likelihood (less its penalty, where known) is no
lower than that of the expert it replaces under the same weights; otherwise
the previous expert stays (with its variance refitted). So EM never lowers
its objective whatever the estimator (a weighted decision tree is a greedy
fit, not a maximiser, and may fit new weights worse than the old tree does);
with weighted least squares the new fit always wins and the M-step is
exact.

The objective counts an estimator's own penalty where mixexp knows it
(:func:`known_penalty`: ``LinearRegression`` none, ``Ridge`` alpha ||w||^2,
L2 ``LogisticRegression`` ||w||^2 / (2 C)); other estimators' regularisation
(tree depth, leaf sizes, unknown penalties) is not in the objective, which
is then the plain log-likelihood (less the gate's penalty).

On rows held on Dask workers a plain ``fit`` would need every row in one
process. There the experts follow dask-ml's ``Incremental`` convention
instead: an estimator whose ``partial_fit`` takes ``sample_weight`` (SGD
models, naive Bayes) is *streamed* through the blocks. Each EM iteration
copies every expert into a candidate (:meth:`_EstimatorExperts.stream_start`),
one sequential pass over the blocks calls ``partial_fit`` on the candidates
with the responsibilities at theta_t as weights
(:meth:`_EstimatorExperts.stream_update`), a parallel pass sums the old
experts' and the candidates' weighted log-likelihoods under those same
weights (``stream_statistics``), and the guard keeps the better of the two
(``stream_solve``): the generalised M-step above, with one more epoch of
the estimator's online updates in place of a refit (``partial_fit`` is
not ``fit``: the candidate continues from the current expert and need not
be the weighted optimum). ``mixexp._solvers._em_stream`` drives it.

Object arrays keep the protocol's "expert axis first": taking, appending
and copying experts act on them as on float arrays. Clones are never
changed after they are fitted (every M-step fits a new clone), so copies
may share them.
"""

import copy
import inspect
import numbers

import numpy as np
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import has_fit_parameter

from .._parameters import append_expert
from ._family import SPLIT_STEP, ExpertFamily, active_experts
from ._gaussian import target_moments

# Smallest probability a classifier expert gives a class (before the log): a
# tree's pure leaf says 0 for the other classes, and log 0 = -inf would make
# one misclassified row decide the fit (or give every expert zero density).
# log(1e-10) = -23 nats, far below any probability a fitted model means.
PROBA_FLOOR = 1e-10
# Relative size of the log-variance step that tells the halves of a split
# apart (their means are those of one estimator: only the noise can differ).
_SPLIT_LOG_VARIANCE = SPLIT_STEP


def estimator_name(estimator):
    """The estimator's class name, for messages."""
    return type(estimator).__name__


def sample_weight_key(estimator):
    """The keyword that passes sample weights to ``estimator.fit``: ``sample_weight``, or
    ``<last step>__sample_weight`` for a Pipeline (its final estimator is weighted, the
    steps before it, such as feature maps and scalers, are fitted unweighted); None if
    the estimator takes none."""
    if isinstance(estimator, Pipeline):
        name, last = estimator.steps[-1]
        inner = sample_weight_key(last) if last not in (None, "passthrough") else None
        return None if inner is None else f"{name}__{inner}"
    return "sample_weight" if has_fit_parameter(estimator, "sample_weight") else None


def check_expert_estimator(estimator, kind):
    """ValueError unless ``estimator`` can be a ``kind`` ("regressor", "classifier") expert.

    It must be cloneable, of the right kind, take ``sample_weight`` in
    ``fit`` (a Pipeline: its final step), and (classifiers) have
    ``predict_proba``.
    """
    name = estimator_name(estimator)
    try:
        clone(estimator)
    except Exception as error:  # any failure to clone is the user's to fix
        raise ValueError(
            f"expert={name} cannot be cloned ({error}); each expert is a clone of it. Pass a "
            "scikit-learn estimator (get_params / set_params)."
        ) from error
    estimator_kind = ("regressor" if is_regressor(estimator)
                      else "classifier" if is_classifier(estimator) else None)
    if estimator_kind != kind:
        use = {"regressor": "MixtureOfExpertsRegressor",
               "classifier": "MixtureOfExpertsClassifier"}.get(estimator_kind)
        what = f"a {estimator_kind}" if estimator_kind else "neither a regressor nor a classifier"
        hint = f" Use it with {use}." if use else ""
        raise ValueError(
            f"expert={name} is {what}, but this estimator needs a scikit-learn {kind} as its "
            f"experts.{hint}"
        )
    if sample_weight_key(estimator) is None:
        if isinstance(estimator, Pipeline):
            name = f"{name} whose final step {estimator_name(estimator.steps[-1][1])}"
        raise ValueError(
            f"expert={name} does not accept sample_weight in fit: each expert is fitted with "
            "the responsibilities as sample weights (generalised EM). Use an estimator "
            "whose fit takes sample_weight."
        )
    if kind == "classifier" and not hasattr(estimator, "predict_proba"):
        raise ValueError(
            f"expert={name} has no predict_proba: a classifier expert's density is its class "
            "probabilities. Use a probabilistic classifier (for SVC, probability=True)."
        )


def known_penalty(estimator):
    """Penalty of a fitted clone in its own objective, per target (t,) or scalar; None if
    mixexp does not know it.

    Exact types only (a subclass may change the objective): ``LinearRegression``
    0, ``Ridge`` with a scalar alpha ``alpha ||w_t||^2`` per target, an
    L2-penalised ``LogisticRegression`` ``||W||^2 / (2 C)``.
    """
    kind = type(estimator)
    if kind is LinearRegression:
        return 0.0
    if kind is Ridge and isinstance(estimator.alpha, numbers.Real):
        coef = np.atleast_2d(estimator.coef_)
        return float(estimator.alpha) * np.sum(coef**2, axis=1)
    if kind is LogisticRegression and _l2_logistic(estimator):
        return float(np.sum(estimator.coef_**2)) / (2.0 * float(estimator.C))
    return None


def _l2_logistic(estimator):
    """Whether a LogisticRegression's penalty is pure L2 (scikit-learn >= 1.8 spells it
    ``l1_ratio=0``, earlier versions ``penalty="l2"``)."""
    penalty = estimator.get_params().get("penalty", "l2")
    l1_ratio = estimator.get_params().get("l1_ratio")
    if penalty in ("l2", "deprecated"):
        return l1_ratio in (None, 0, 0.0)
    if penalty == "elasticnet":
        return l1_ratio in (0, 0.0)
    return False


def n_linear_parameters(estimator, n_features, n_outputs):
    """Parameters of one linear estimator expert (weights and intercepts), or None for an
    estimator whose parameter count mixexp does not know."""
    kind = type(estimator)
    if kind in (LinearRegression, Ridge):
        return n_outputs * (n_features + int(bool(estimator.fit_intercept)))
    if kind is LogisticRegression:
        # n_outputs: classes; one class per expert is redundant under the softmax
        return (n_outputs - 1) * (n_features + int(bool(estimator.fit_intercept)))
    return None


def partial_fit_takes_weights(estimator):
    """Whether ``estimator.partial_fit`` exists and takes ``sample_weight`` (what
    streaming the experts through Dask blocks needs)."""
    partial_fit = getattr(estimator, "partial_fit", None)
    if not callable(partial_fit):
        return False
    try:
        return "sample_weight" in inspect.signature(partial_fit).parameters
    except (TypeError, ValueError):  # no signature to read
        return False


def _object_array(items):
    """A 1-D object array of ``items`` (never iterated into: a Pipeline is a sequence)."""
    array = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        array[i] = item
    return array


def _user_rows(kernels, X, x_mean, x_scale):
    """Standardised rows back on the user's scale: a host float64 array (n, d)."""
    return kernels.to_host(X).astype(np.float64) * x_scale + x_mean


def _refuse_gradient():
    raise ValueError(
        "scikit-learn estimators as experts are trained by EM only (solver='em'): they have "
        "no gradient in their parameters."
    )


class _EstimatorExperts(ExpertFamily):
    """What regression and classification estimator experts share."""

    kind = None  # "regressor" or "classifier"

    def __init__(self, estimator, x_mean, x_scale, seed=0):
        self.estimator = estimator
        self.x_mean = np.asarray(x_mean, dtype=float)
        self.x_scale = np.asarray(x_scale, dtype=float)
        self.seed = int(seed)

    def state(self):
        return {"estimator": self.estimator, "x_mean": self.x_mean, "x_scale": self.x_scale,
                "seed": self.seed}

    def n_parameters(self, n_experts, n_features, n_outputs):
        """Free parameters of the experts (BIC, AIC), where mixexp can count them.

        Linear estimators (``LinearRegression``, ``Ridge``, ``LogisticRegression``)
        count as the matching parametric family (weights, intercepts, and a
        regression expert's noise variances, ignoring the shrinkage of a
        penalty); any other estimator raises a ValueError.
        """
        per_expert = n_linear_parameters(self.estimator, n_features, n_outputs)
        if per_expert is None:
            raise ValueError(
                f"The number of parameters of {estimator_name(self.estimator)} experts is not "
                "defined, so bic, aic and select_n_experts' criteria are not available. "
                "Compare models by their held-out log_likelihood instead (for example with "
                "cross-validation)."
            )
        return n_experts * (per_expert + self._n_noise_parameters(n_outputs))

    @staticmethod
    def _n_noise_parameters(n_outputs):
        return 0

    def _fit_clone(self, X_user, y, weight, k):
        """A clone of the prototype fitted as expert ``k``."""
        estimator = clone(self.estimator)
        # randomised estimators (a tree's tie-breaking among features) get a seed
        # of their own per expert, the same every iteration, so that a fit is
        # reproducible; a random_state the user fixed is kept
        unset = {key: np.random.default_rng([self.seed, k, i]).integers(2**31 - 1)
                 for i, (key, value) in enumerate(sorted(estimator.get_params().items()))
                 if key.split("__")[-1] == "random_state"
                 and (value is None or isinstance(value, np.random.RandomState))}
        if unset:
            estimator.set_params(**{key: int(value) for key, value in unset.items()})
        return estimator.fit(X_user, y, **{sample_weight_key(estimator): weight})

    def _partial_fit_clone(self, candidate, X_user, y, weight, k):
        """``candidate`` (a clone of its own) moved by ``partial_fit`` on these rows."""
        if candidate is None:  # (an expert never fitted: a fresh clone starts)
            candidate = clone(self.estimator)
        return candidate.partial_fit(X_user, y, **self._partial_fit_extra(candidate),
                                     sample_weight=weight)

    def _partial_fit_extra(self, candidate):
        return {}

    # ---- streaming through Dask blocks (see the module docstring) -----------
    @staticmethod
    def stream_start(experts):
        """Candidates of one streamed M-step: a copy of each expert (K,) object array; the
        fitted experts themselves are never changed."""
        return _object_array([copy.deepcopy(estimator) for estimator in experts["estimator"]])

    def stream_update(self, kernels, X, Y, W, candidates, active):
        """``partial_fit`` of each active candidate on one chunk with weights ``W[:, k]``
        (responsibilities x sample weights, (n, K)); returns the candidates."""
        X_user = _user_rows(kernels, X, self.x_mean, self.x_scale)
        W = kernels.to_host(W).astype(np.float64)
        y = self._stream_targets(kernels.to_host(Y).astype(np.float64))
        for k in np.flatnonzero(active):
            if W[:, k].any():  # (a chunk none of whose rows is this expert's teaches nothing)
                candidates[k] = self._partial_fit_clone(candidates[k], X_user, y, W[:, k], k)
        return candidates

    # ---- gradient solvers: refused -------------------------------------------
    def gradient(self, kernels, X, Y, W, experts, penalty_scale=1.0):
        _refuse_gradient()

    def coordinates(self, experts, reference):
        _refuse_gradient()

    # ---- user scale ------------------------------------------------------
    @staticmethod
    def _estimators(experts):
        return list(experts["estimator"])


class EstimatorRegressionExperts(_EstimatorExperts):
    """Scikit-learn regressors as experts with Gaussian noise of their own variance.

    Parameters
    ----------
    estimator : regressor
        The unfitted prototype every expert is a clone of.
    x_mean, x_scale : ndarray of shape (d,)
        Standardisation of the experts' columns: the clones see
        ``X * x_scale + x_mean``, the rows as the user gave them.
    variance_floor : ndarray of shape (t,)
        Smallest variance an expert may take, per target.
    seed : int, default=0
        Seeds the clones' ``random_state`` where the prototype leaves it None
        (one seed per expert, the same every iteration).
    """

    kind = "regressor"

    def __init__(self, estimator, x_mean, x_scale, variance_floor, seed=0):
        super().__init__(estimator, x_mean, x_scale, seed)
        self.variance_floor = np.asarray(variance_floor, dtype=float)

    def state(self):
        return {**super().state(), "variance_floor": self.variance_floor}

    @staticmethod
    def _n_noise_parameters(n_outputs):
        return n_outputs

    def neutral(self, Y, sample_weight, n_experts, n_features):
        """No fitted expert yet (the first M-step fits them), the target's variance."""
        variance = np.maximum(target_moments(Y, sample_weight)[1], self.variance_floor)
        return {"estimator": _object_array([None] * n_experts),
                "variance": np.tile(variance, (n_experts, 1))}

    @staticmethod
    def _predict(estimator, X_user, n_targets):
        return np.asarray(estimator.predict(X_user), dtype=np.float64).reshape(-1, n_targets)

    def _targets(self, Y):
        # one target is passed 1-D: many regressors refuse a column vector
        return Y[:, 0] if Y.shape[1] == 1 else Y

    @staticmethod
    def _gaussian_log_density(residual, variance):
        """log N(r; 0, diag(variance)) summed over targets: (n,)."""
        return -0.5 * np.sum(np.log(2.0 * np.pi * variance) + residual**2 / variance, axis=1)

    def log_density(self, kernels, X, Y, experts):
        """Each expert's Gaussian log-density around its clone's prediction: (n, K)."""
        X_user = _user_rows(kernels, X, self.x_mean, self.x_scale)
        Y = kernels.to_host(Y).astype(np.float64)
        out = np.empty((Y.shape[0], len(experts["estimator"])))
        for k, estimator in enumerate(experts["estimator"]):
            residual = Y - self._predict(estimator, X_user, Y.shape[1])
            out[:, k] = self._gaussian_log_density(residual, experts["variance"][k])
        return kernels.xp.asarray(out)

    def _penalties(self, experts):
        """Each expert's known penalty per target, 0 where unknown: (K, t)."""
        n_experts, n_targets = experts["variance"].shape
        out = np.zeros((n_experts, n_targets))
        for k, estimator in enumerate(experts["estimator"]):
            penalty = None if estimator is None else known_penalty(estimator)
            if penalty is not None:
                out[k] = penalty
        return out

    def penalty(self, experts):
        """Known penalties in units of the noise, sum_kt pen_kt / (2 sigma2_kt) (as the
        Gaussian family's ridge penalty); 0 for estimators whose penalty is unknown."""
        return float(np.sum(self._penalties(experts) / (2.0 * experts["variance"])))

    def _scored(self, estimator, X_user, Y, weight, w_sum):
        """An expert's best variance and its expected log-likelihood less penalty (Q_k)."""
        residual = Y - self._predict(estimator, X_user, Y.shape[1])
        return self._scored_spread(estimator, weight @ residual**2, w_sum)

    def _scored_spread(self, estimator, squares, w_sum):
        """:meth:`_scored` from the weighted sum of squared residuals (t,)."""
        penalty = known_penalty(estimator)
        spread = squares + (0.0 if penalty is None else penalty)  # (t,)
        variance = np.maximum(spread / w_sum, self.variance_floor)
        q = -0.5 * float(np.sum(w_sum * np.log(variance) + spread / variance))
        return variance, q

    def _stream_targets(self, Y):
        return self._targets(Y)

    def stream_statistics(self, kernels, X, Y, W, experts, candidates):
        """What the guard of a streamed M-step compares, on one chunk (float64, additive):
        the weights' sums (K,) and the weighted squared residuals (K, t) of the experts
        (``"old"``) and of the candidates (``"new"``)."""
        X_user = _user_rows(kernels, X, self.x_mean, self.x_scale)
        Y = kernels.to_host(Y).astype(np.float64)
        W = kernels.to_host(W).astype(np.float64)
        squares = {}
        for name, estimators in (("old", experts["estimator"]), ("new", candidates)):
            squares[name] = np.stack([
                W[:, k] @ (Y - self._predict(estimator, X_user, Y.shape[1]))**2
                for k, estimator in enumerate(estimators)])
        return {"w_sum": W.sum(axis=0), **squares}

    def stream_solve(self, statistics, experts, candidates, active):
        """The guarded M-step from :meth:`stream_statistics`: each active expert's candidate
        with its variance, unless the expert (its variance refitted) scores higher."""
        estimators = experts["estimator"].copy()
        variance = experts["variance"].copy()
        w_sum = statistics["w_sum"]
        for k in np.flatnonzero(active):
            new_variance, q = self._scored_spread(candidates[k], statistics["new"][k],
                                                  w_sum[k])
            old_variance, q_old = self._scored_spread(estimators[k], statistics["old"][k],
                                                      w_sum[k])
            if q_old > q:  # the candidate fits these weights worse: keep the expert
                variance[k] = old_variance
            else:
                estimators[k], variance[k] = candidates[k], new_variance
        return {"estimator": estimators, "variance": variance}

    def m_step(self, kernels, X, Y, W, experts):
        """Each active expert: a clone fitted with weights ``W[:, k]``, its variance from
        the weighted residuals (plus its known penalty), kept unless the previous
        expert scores higher under the same weights (see the module docstring)."""
        X_user = _user_rows(kernels, X, self.x_mean, self.x_scale)
        Y = kernels.to_host(Y).astype(np.float64)
        W = kernels.to_host(W).astype(np.float64)
        w_sum = W.sum(axis=0)
        active = active_experts(w_sum)
        estimators = experts["estimator"].copy()
        variance = experts["variance"].copy()
        for k in range(len(estimators)):
            previous = estimators[k]
            if not active[k]:
                if previous is None:  # a start with an empty expert: the pooled fit
                    weight = np.ones(Y.shape[0])
                    estimators[k] = self._fit_clone(X_user, self._targets(Y), weight, k)
                continue
            weight = W[:, k]
            fitted = self._fit_clone(X_user, self._targets(Y), weight, k)
            new_variance, q = self._scored(fitted, X_user, Y, weight, w_sum[k])
            if previous is not None:
                old_variance, q_old = self._scored(previous, X_user, Y, weight, w_sum[k])
                if q_old > q:  # the clone fitted these weights worse: keep the expert
                    fitted, new_variance = previous, old_variance
            estimators[k], variance[k] = fitted, new_variance
        return {"estimator": estimators, "variance": variance}

    # ---- growing -----------------------------------------------------------
    def split(self, experts, j, rng):
        """Expert ``j`` copied last (the same fitted clone), the two variances moved apart
        by a factor exp(+/-0.01): the halves then weigh residuals differently, and
        EM separates them."""
        grown = append_expert(experts, j)
        step = _SPLIT_LOG_VARIANCE * (1.0 if rng.random() < 0.5 else -1.0)
        grown["variance"][j] *= np.exp(step)
        grown["variance"][-1] *= np.exp(-step)
        return grown

    # ---- prediction --------------------------------------------------------
    def mean(self, kernels, X, experts):
        """Each expert's prediction: (n, K, t)."""
        X_user = _user_rows(kernels, X, self.x_mean, self.x_scale)
        n_targets = experts["variance"].shape[1]
        means = np.stack([self._predict(estimator, X_user, n_targets)
                          for estimator in experts["estimator"]], axis=1)
        return kernels.xp.asarray(means.astype(X.dtype, copy=False))

    @staticmethod
    def variance(experts):
        """Each expert's noise variance: (K, t)."""
        return experts["variance"]

    @staticmethod
    def noise_variance(xp, gate, means, experts):
        """The experts' noise variance mixed by ``gate`` (n, K): sum_k g_k sigma2_k, (n, t)."""
        return gate @ xp.asarray(experts["variance"], dtype=gate.dtype)

    # ---- user scale ------------------------------------------------------
    def to_user(self, experts, x_mean, x_scale, squeeze=False):
        variance = experts["variance"].copy()
        return {"experts_": self._estimators(experts),
                "expert_variance_": variance[:, 0] if squeeze else variance}

    def from_user(self, attributes, n_experts, x_mean, x_scale):
        n_targets = self.variance_floor.shape[0]
        return {"estimator": _object_array(list(attributes["experts_"])),
                "variance": np.reshape(attributes["expert_variance_"],
                                       (n_experts, n_targets)).astype(float)}


class EstimatorClassificationExperts(_EstimatorExperts):
    """Scikit-learn probabilistic classifiers as experts.

    Targets ``Y`` are one-hot classes (n, C); the clones are fitted on the
    class indices 0..C-1, so a clone's ``classes_`` are indices into
    ``Y``'s columns, whatever labels the user has.

    Parameters
    ----------
    estimator : classifier
        The unfitted prototype every expert is a clone of.
    x_mean, x_scale : ndarray of shape (d,)
        Standardisation of the experts' columns (see
        :class:`EstimatorRegressionExperts`).
    n_classes : int
        Number of classes C.
    seed : int, default=0
        As :class:`EstimatorRegressionExperts`'s.
    """

    kind = "classifier"

    def __init__(self, estimator, x_mean, x_scale, n_classes, seed=0):
        super().__init__(estimator, x_mean, x_scale, seed)
        self.n_classes = int(n_classes)

    def state(self):
        return {**super().state(), "n_classes": self.n_classes}

    def neutral(self, Y, sample_weight, n_experts, n_features):
        """No fitted expert yet: the first M-step fits them."""
        return {"estimator": _object_array([None] * n_experts)}

    @staticmethod
    def _aligned_log_proba(estimator, X_user, n_classes):
        """log max(p_k(c | x), PROBA_FLOOR) with one column per class: (n, C).

        A clone that saw only some classes (the others had no rows, or
        weights of 0) has fewer ``predict_proba`` columns; the classes it
        never saw get the floor.
        """
        proba = np.zeros((X_user.shape[0], n_classes))
        proba[:, np.asarray(estimator.classes_, dtype=int)] = estimator.predict_proba(X_user)
        return np.log(np.maximum(proba, PROBA_FLOOR))

    def log_density(self, kernels, X, Y, experts):
        """Each expert's floored log-probability of the observed class: (n, K)."""
        X_user = _user_rows(kernels, X, self.x_mean, self.x_scale)
        Y = kernels.to_host(Y)
        out = np.stack([np.sum(Y * self._aligned_log_proba(estimator, X_user, Y.shape[1]),
                               axis=1)
                        for estimator in experts["estimator"]], axis=1)
        return kernels.xp.asarray(out)

    def penalty(self, experts):
        """Known penalties (L2 LogisticRegression: ||W||^2 / (2 C)), summed; 0 for others."""
        penalties = [known_penalty(estimator) for estimator in experts["estimator"]
                     if estimator is not None]
        return float(sum(p for p in penalties if p is not None))

    @staticmethod
    def _score(estimator, X_user, Y, weight):
        """An expert's weighted log-likelihood less its known penalty (Q_k)."""
        log_p = EstimatorClassificationExperts._aligned_log_proba(estimator, X_user, Y.shape[1])
        penalty = known_penalty(estimator)
        return float(weight @ np.sum(Y * log_p, axis=1)) - (0.0 if penalty is None else penalty)

    def _stream_targets(self, Y):
        return np.argmax(Y, axis=1)  # class indices, as the clones are fitted on

    def _partial_fit_extra(self, candidate):
        # every class, on a candidate's first call (later calls must not change them)
        return {} if hasattr(candidate, "classes_") else {"classes": np.arange(self.n_classes)}

    def stream_statistics(self, kernels, X, Y, W, experts, candidates):
        """The weighted log-likelihoods (K,) of the experts (``"old"``) and of the
        candidates (``"new"``) on one chunk (float64, additive)."""
        X_user = _user_rows(kernels, X, self.x_mean, self.x_scale)
        Y = kernels.to_host(Y).astype(np.float64)
        W = kernels.to_host(W).astype(np.float64)
        return {name: np.array([
            W[:, k] @ np.sum(Y * self._aligned_log_proba(estimator, X_user, Y.shape[1]),
                             axis=1)
            for k, estimator in enumerate(estimators)])
            for name, estimators in (("old", experts["estimator"]), ("new", candidates))}

    def stream_solve(self, statistics, experts, candidates, active):
        """The guarded M-step from :meth:`stream_statistics` (see the regressor's)."""
        estimators = experts["estimator"].copy()
        for k in np.flatnonzero(active):
            penalties = [known_penalty(e) for e in (estimators[k], candidates[k])]
            q_old, q = (statistics[name][k] - (0.0 if p is None else p)
                        for name, p in zip(("old", "new"), penalties, strict=True))
            if not q_old > q:
                estimators[k] = candidates[k]
        return {"estimator": estimators}

    def m_step(self, kernels, X, Y, W, experts):
        """Each active expert: a clone fitted on the class indices with weights ``W[:, k]``,
        kept unless the previous expert scores higher under the same weights."""
        X_user = _user_rows(kernels, X, self.x_mean, self.x_scale)
        Y = kernels.to_host(Y).astype(np.float64)
        W = kernels.to_host(W).astype(np.float64)
        labels = np.argmax(Y, axis=1)
        active = active_experts(W.sum(axis=0))
        estimators = experts["estimator"].copy()
        for k in range(len(estimators)):
            previous = estimators[k]
            if not active[k]:
                if previous is None:  # a start with an empty expert: the pooled fit
                    estimators[k] = self._fit_clone(X_user, labels, np.ones(Y.shape[0]), k)
                continue
            weight = W[:, k]
            fitted = self._fit_clone(X_user, labels, weight, k)
            if previous is not None and (self._score(previous, X_user, Y, weight)
                                         > self._score(fitted, X_user, Y, weight)):
                fitted = previous  # the clone fitted these weights worse: keep the expert
            estimators[k] = fitted
        return {"estimator": estimators}

    # ---- growing -----------------------------------------------------------
    def split(self, experts, j, rng):
        """Expert ``j`` copied last (the same fitted clone).

        A classifier expert has no parameter of mixexp's own to move the halves
        apart with, and the gate's split gives both halves the same gate row, so
        the halves stay identical under EM: the estimator refuses to grow such
        experts by ``warm_start``, and a vanished expert revived this way
        duplicates another (which changes no prediction).
        """
        return append_expert(experts, j)

    # ---- prediction --------------------------------------------------------
    def log_proba(self, kernels, X, experts):
        """Each expert's floored class log-probabilities: (n, K, C)."""
        X_user = _user_rows(kernels, X, self.x_mean, self.x_scale)
        n_classes = self.n_classes
        out = np.stack([self._aligned_log_proba(estimator, X_user, n_classes)
                        for estimator in experts["estimator"]], axis=1)
        return kernels.xp.asarray(out.astype(X.dtype, copy=False))

    # ---- user scale ------------------------------------------------------
    def to_user(self, experts, x_mean, x_scale, squeeze=False):
        return {"experts_": self._estimators(experts)}

    def from_user(self, attributes, n_experts, x_mean, x_scale):
        return {"estimator": _object_array(list(attributes["experts_"]))}
