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
# The vanished-expert warning of BaseMixtureOfExperts._warn_vanished_experts.
_VANISHED_MESSAGE = r".* receive no share of the training data"


def _held_out_log_likelihood(estimator, X, y):
    return estimator.log_likelihood(X, y)


def select_n_experts(estimator, X, y, n_experts=range(1, 7), criterion="bic", cv=5):
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

    Returns
    -------
    best : estimator
        The fitted candidate with the best score.
    scores : pandas.DataFrame
        One row per candidate, indexed by ``n_experts``: ``n_parameters``,
        ``log_likelihood`` (total, on the training data), ``aic``, ``bic``,
        ``icl``, ``n_vanished`` (experts left with no share of the training
        data, which the sweep counts instead of warning about each: it
        overshoots on purpose), and ``cv_log_likelihood`` with
        ``criterion="cv"``.

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
    >>> list(scores.columns)
    ['n_parameters', 'log_likelihood', 'aic', 'bic', 'icl', 'n_vanished']
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
        }
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
        best = int(np.argmin(scores[criterion].to_numpy()))
    return fits[best], scores
