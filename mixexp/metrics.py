"""Scorers for model selection, and the mixture of experts inside a Pipeline.

scikit-learn's model selection (:class:`~sklearn.model_selection.GridSearchCV`,
:func:`~sklearn.model_selection.cross_val_score`) scores a candidate by
calling ``scoring(estimator, X, y)``, where ``estimator`` may be a
:class:`~sklearn.pipeline.Pipeline`. A Pipeline does not expose the methods
that only a mixture of experts has (``log_likelihood``, ``bic``, ``aic``,
``predict_gate``, ...): :func:`unwrap_pipeline` reaches them, and
:func:`log_likelihood_scorer` scores with the held-out log-likelihood on a
bare estimator and inside a Pipeline alike.
"""

from sklearn.pipeline import Pipeline

__all__ = ["log_likelihood_scorer", "unwrap_pipeline"]


def unwrap_pipeline(estimator, X=None):
    """The fitted mixture of experts in ``estimator``, and ``X`` as it reaches it.

    Parameters
    ----------
    estimator : fitted estimator
        A :class:`~mixexp.MixtureOfExpertsRegressor` or
        :class:`~mixexp.MixtureOfExpertsClassifier`, a
        :class:`~sklearn.pipeline.Pipeline` ending in one (nested Pipelines
        too), or a fitted search (``GridSearchCV`` ...) whose
        ``best_estimator_`` is one of these.
    X : array-like of shape (n_samples, n_features), default=None
        Input as given to ``estimator``; it is passed through the
        Pipeline's earlier steps (their ``transform``).

    Returns
    -------
    mixture : MixtureOfExpertsRegressor or MixtureOfExpertsClassifier
        The Pipeline's last step.
    Xt : array-like or None
        ``X`` transformed by the earlier steps (``X`` itself without a
        Pipeline); None if ``X`` is None.

    Raises
    ------
    TypeError
        If no mixture of experts is found where expected.

    Notes
    -----
    This is ``pipe[:-1].transform(X)`` and ``pipe[-1]`` for a Pipeline
    ``pipe``, which can also be written by hand.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from mixexp import MixtureOfExpertsRegressor
    >>> from mixexp.datasets import load_motorcycle
    >>> from mixexp.metrics import unwrap_pipeline
    >>> X, y = load_motorcycle(return_X_y=True)
    >>> pipe = make_pipeline(StandardScaler(),
    ...                      MixtureOfExpertsRegressor(n_experts=2, random_state=0)).fit(X, y)
    >>> model, Xt = unwrap_pipeline(pipe, X)
    >>> type(model).__name__, model.predict_gate(Xt).shape
    ('MixtureOfExpertsRegressor', (133, 2))
    >>> bool(model.bic(Xt, y) > model.aic(Xt, y))
    True
    """
    found = estimator
    while True:
        if isinstance(found, Pipeline):
            if len(found.steps) > 1 and X is not None:
                X = found[:-1].transform(X)
            found = found[-1]
        elif hasattr(found, "best_estimator_") and not hasattr(found, "predict_gate"):
            found = found.best_estimator_
        else:
            break
    if not (hasattr(found, "log_likelihood") and hasattr(found, "predict_gate")):
        raise TypeError(
            "Expected a MixtureOfExpertsRegressor, a MixtureOfExpertsClassifier, or a Pipeline "
            f"(or fitted search) ending in one; got {type(estimator).__name__}"
            + ("" if found is estimator else f" ending in {type(found).__name__}") + "."
        )
    return found, X


def log_likelihood_scorer(estimator, X, y, sample_weight=None):
    """Held-out mean log-likelihood per sample, log p(y | x): a scorer for ``scoring=``.

    Higher is better, as scikit-learn's scorers are. It judges the whole
    predictive distribution (noise levels and gate included), where
    ``"r2"`` judges the mean prediction only. For a classifier it equals
    ``"neg_log_loss"`` (the mean log-probability of the true class) up to
    how sample weights enter.

    Parameters
    ----------
    estimator : fitted estimator
        A mixture of experts or a Pipeline ending in one (see
        :func:`unwrap_pipeline`); the Pipeline's earlier steps transform
        ``X`` first.
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,) or (n_samples, n_targets)
    sample_weight : array-like of shape (n_samples,), default=None
        Weights of a weighted mean.

    Returns
    -------
    score : float
        ``mixture.log_likelihood(Xt, y, sample_weight)``.

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV, KFold
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from mixexp import MixtureOfExpertsRegressor
    >>> from mixexp.datasets import load_motorcycle
    >>> from mixexp.metrics import log_likelihood_scorer
    >>> X, y = load_motorcycle(return_X_y=True)
    >>> pipe = make_pipeline(StandardScaler(), MixtureOfExpertsRegressor(random_state=0))
    >>> cv = KFold(5, shuffle=True, random_state=0)  # the rows are sorted by time
    >>> search = GridSearchCV(pipe, {"mixtureofexpertsregressor__n_experts": [1, 2]},
    ...                       scoring=log_likelihood_scorer, cv=cv).fit(X, y)
    >>> search.best_params_
    {'mixtureofexpertsregressor__n_experts': 2}
    """
    mixture, Xt = unwrap_pipeline(estimator, X)
    return mixture.log_likelihood(Xt, y, sample_weight=sample_weight)
