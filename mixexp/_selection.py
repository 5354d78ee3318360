"""Choosing the number of experts: one fit per candidate, scored by BIC, AIC, ICL or CV."""

import numbers
import warnings

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import check_cv, cross_validate
from sklearn.utils.validation import _num_samples

from ._solvers import VANISHED_SHARE

_CRITERIA = ("bic", "aic", "icl", "cv")
_INFORMATION_CRITERIA = ("bic", "aic", "icl")
# The vanished-expert warning of BaseMixtureOfExperts._warn_vanished_experts.
_VANISHED_MESSAGE = r".* receive no share of the training data"


def _held_out_log_likelihood(estimator, X, y):
    return estimator.log_likelihood(X, y)


def select_n_experts(estimator, X, y, n_experts=range(1, 7), criterion="bic", cv=5,
                     min_rows_per_parameter=2.0):
    """Fit one model per number of experts and keep the best by a criterion.

    Each candidate is ``clone(estimator)`` with ``n_experts`` set, fitted on
    all of ``(X, y)`` (give the estimator a few restarts, ``n_init``, since
    a poor local maximum makes a larger model look worse than it is).

    Parameters
    ----------
    estimator : MixtureOfExpertsRegressor or MixtureOfExpertsClassifier
        The template; its ``n_experts`` is replaced.
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,) or (n_samples, n_targets)
    n_experts : iterable of int, default=range(1, 7)
        Candidate numbers of experts.
    criterion : {"bic", "aic", "icl", "cv"}, default="bic"
        ``"bic"``, ``"aic"``, ``"icl"``: the information criterion of the
        fit on all data, lower is better (see
        :meth:`~mixexp.MixtureOfExpertsRegressor.icl`). ``"cv"``: the mean
        held-out log-likelihood per sample over ``cv`` folds, higher is
        better (``cv`` more fits per candidate).
    cv : int, cross-validation generator or iterable, default=5
        Folds for ``criterion="cv"``, as in
        :func:`~sklearn.model_selection.cross_validate` (stratified for a
        classifier). Ignored by the other criteria.
    min_rows_per_parameter : float, default=2.0
        With an information criterion, a candidate is eligible only if each
        of its experts owns at least this many training rows (its share of
        the training weight, ``expert_usage_``, times n_samples) per
        parameter it estimates from each row (a Gaussian expert: its
        weights, intercept and variance per target; a Poisson expert: its
        weights and intercept per target; a logistic expert: all its
        weights and intercepts, since a row carries one label). An expert
        with fewer rows can nearly interpolate them: its maximum-likelihood
        variance, RSS / rows, then underestimates the noise by the factor
        (rows - parameters) / rows (below a half at 2 rows per parameter),
        the likelihood is inflated without bound, and BIC / AIC / ICL,
        which trust it, pick such a candidate for the wrong reason. Among
        the eligible candidates the criterion decides; if none is
        eligible, the candidate with the most rows per parameter is kept.
        0 disables the rule. ``criterion="cv"`` ignores it (held-out data
        see through interpolation).

    Returns
    -------
    best : estimator
        The fitted candidate with the best score.
    scores : pandas.DataFrame
        One row per candidate, indexed by ``n_experts``: ``n_parameters``,
        ``log_likelihood`` (total, on the training data), ``aic``, ``bic``,
        ``icl``, ``n_vanished`` (experts left with no share of the training
        data, which the sweep counts instead of warning about each: it
        overshoots on purpose), ``rows_per_parameter`` (the smallest over
        the candidate's experts, as ``min_rows_per_parameter`` counts it),
        ``eligible`` (whether an information criterion may select the
        candidate), and ``cv_log_likelihood`` with ``criterion="cv"``.

    See Also
    --------
    mixexp.MixtureOfExpertsRegressor.bic, mixexp.MixtureOfExpertsRegressor.icl

    Examples
    --------
    >>> from mixexp import MixtureOfExpertsRegressor, select_n_experts
    >>> from mixexp.datasets import make_moe_regression
    >>> X, y, _ = make_moe_regression(n_samples=400, n_features=1, n_experts=2,
    ...                               noise=0.2, random_state=0)
    >>> best, scores = select_n_experts(MixtureOfExpertsRegressor(n_init=3, random_state=0),
    ...                                 X, y, n_experts=[1, 2, 3])
    >>> best.n_experts
    2
    >>> list(scores.columns)[:6]
    ['n_parameters', 'log_likelihood', 'aic', 'bic', 'icl', 'n_vanished']
    >>> bool(scores["eligible"].all())
    True
    """
    import pandas as pd

    if criterion not in _CRITERIA:
        raise ValueError(f"criterion must be one of {_CRITERIA}, got {criterion!r}.")
    if "n_experts" not in estimator.get_params():
        raise ValueError(
            f"estimator must have an n_experts parameter, got {type(estimator).__name__}."
        )
    candidates = list(n_experts)
    if not candidates or not all(isinstance(k, numbers.Integral) and k >= 1
                                 for k in candidates):
        raise ValueError(
            f"n_experts must be a non-empty iterable of positive integers, got {n_experts!r}."
        )
    if len(set(candidates)) != len(candidates):
        raise ValueError(f"n_experts has repeated values: {candidates!r}.")
    if (not isinstance(min_rows_per_parameter, numbers.Real)
            or isinstance(min_rows_per_parameter, bool)
            or not np.isfinite(min_rows_per_parameter) or min_rows_per_parameter < 0):
        raise ValueError("min_rows_per_parameter must be a finite number >= 0, got "
                         f"{min_rows_per_parameter!r}.")
    folds = check_cv(cv, y, classifier=is_classifier(estimator)) if criterion == "cv" else None

    n_samples = _num_samples(X)
    rows, fits = [], []
    for k in candidates:
        with warnings.catch_warnings():
            # a sweep overshoots the number of experts the data support on purpose:
            # experts vanishing there is the finding, counted in n_vanished, not a
            # warning per candidate (other ConvergenceWarnings pass)
            warnings.filterwarnings("ignore", message=_VANISHED_MESSAGE,
                                    category=ConvergenceWarning)
            est = clone(estimator).set_params(n_experts=int(k)).fit(X, y)
        row = {
            "n_experts": int(k),
            "n_parameters": est._n_parameters(),  # the count bic and aic use
            "log_likelihood": est.log_likelihood(X, y) * n_samples,
            "aic": est.aic(X, y),
            "bic": est.bic(X, y),
            "icl": est.icl(X, y),
            "n_vanished": int(np.sum(est.expert_usage_ < VANISHED_SHARE)),
            "rows_per_parameter": _rows_per_parameter(est, n_samples),
        }
        row["eligible"] = bool(row["rows_per_parameter"] >= min_rows_per_parameter)
        if folds is not None:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_VANISHED_MESSAGE,
                                        category=ConvergenceWarning)
                result = cross_validate(clone(estimator).set_params(n_experts=int(k)), X, y,
                                        cv=folds, scoring=_held_out_log_likelihood)
            row["cv_log_likelihood"] = float(np.mean(result["test_score"]))
        rows.append(row)
        fits.append(est)
    scores = pd.DataFrame(rows).set_index("n_experts")
    if criterion == "cv":
        best = int(np.argmax(scores["cv_log_likelihood"].to_numpy()))
    else:
        eligible = scores["eligible"].to_numpy()
        if not eligible.any():
            # nothing passes: the least over-parameterised candidate
            eligible = (scores["rows_per_parameter"].to_numpy()
                        == scores["rows_per_parameter"].max())
        criterion_values = np.where(eligible, scores[criterion].to_numpy(), np.inf)
        best = int(np.argmin(criterion_values))
    return fits[best], scores


def _rows_per_parameter(est, n_samples):
    """Training rows per estimated parameter of the candidate's least-used expert.

    An expert's rows are its share of the training weight (``expert_usage_``)
    times n_samples. Its parameters are counted per observation a row
    carries: a regression target's value for each target (the experts'
    parameters are counted per target), one label for a classifier.
    """
    model = est._fitted_model
    n_features, n_outputs = est._fitted_shape
    expert_width = model.widths(n_features)[1]
    per_expert = model.family.n_parameters(1, expert_width, n_outputs)
    if not is_classifier(est):
        per_expert /= n_outputs
    rows = float(np.min(est.expert_usage_)) * n_samples
    return rows / per_expert
