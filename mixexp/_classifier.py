"""MixtureOfExpertsClassifier: multinomial logistic experts behind a softmax gate."""

import numpy as np
from scipy.special import logsumexp
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d

from ._backend import resolve_backend, single_threaded_blas
from ._base import BaseMixtureOfExperts, to_internal_scale, to_user_scale
from ._experts import LogisticExperts


class MixtureOfExpertsClassifier(ClassifierMixin, BaseMixtureOfExperts):
    r"""Mixture of multinomial logistic experts with a softmax gate, trained by EM.

    Each expert is a multinomial logistic regression that owns the region of
    input space where its gate is large (Jacobs et al. 1991; Jordan & Jacobs
    1994):

    .. math::

        p(y = c \mid x) = \sum_{k=1}^{K} g_k(x)\,
            \operatorname{softmax}_c(x^\top w_{kc} + b_{kc}),
        \qquad g_k(x) = \operatorname{softmax}_k(x^\top v_k + b_k).

    EM alternates an E-step (responsibilities
    :math:`h_{ik} \propto g_k(x_i)\,p_k(y_i \mid x_i)` of the observed class,
    in log space) and an M-step where every expert and the gate are weighted
    multinomial logistic regressions, solved by warm-started Newton steps
    with a line search. The penalised log-likelihood never decreases. A
    binary problem is the two-class case of the same model.

    Parameters
    ----------
    n_experts : int, default=3
        Number of experts K.
    solver : {"em"}, default="em"
        Training method: expectation-maximisation.
    alpha : float, default=0.5
        L2 penalty ``alpha * ||w||^2`` added to the negative total
        log-likelihood, intercepts unpenalised. On the experts it acts on the
        weights on the user's scale: ``alpha = 1 / (2 C)`` matches
        :class:`~sklearn.linear_model.LogisticRegression`'s ``C`` for a
        multinomial model, so the default matches its default ``C=1.0``. On
        the gate it acts on the weights of the internally standardised
        inputs.
    max_iter : int, default=1000
        EM iterations per start, at most. Classification likelihoods are
        often flat (EM needed about 400 iterations on pure-noise labels), so
        the default is higher than the regressor's.
    tol : float, default=1e-6
        Convergence threshold on the gain in mean penalised log-likelihood
        per sample between two EM iterations.
    n_init : int, default=1
        Number of starts; the best penalised log-likelihood is kept. Start
        ``i`` is the same whatever ``n_init`` is, so more starts never give
        a worse fit.
    init_params : {"kmeans", "random"}, default="kmeans"
        ``"kmeans"``: the first start clusters the standardised inputs and
        one-hot classes with weighted k-means, later ones alternate with
        random responsibilities and random partitions. ``"random"``: random
        starts only.
    backend : {"auto", "numpy"}, default="auto"
        Kernel backend. ``"auto"`` picks the fastest available.
    warm_start : bool, default=False
        If True and the estimator is already fitted with the same number of
        experts, classes and features, fit starts from the previous solution.
    random_state : int, RandomState instance or None, default=None
        Seeds the starts. An int gives the same fit every time.
    verbose : int, default=0
        1 prints each start's outcome, 2 also every EM iteration.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, sorted.
    gate_coef_ : ndarray of shape (n_experts, n_features)
        Gate weights v_k, on the user's scale.
    gate_intercept_ : ndarray of shape (n_experts,)
        Gate intercepts b_k (centred).
    expert_coef_ : ndarray of shape (n_experts, n_classes, n_features)
        Each expert's class weights w_kc (centred over classes).
    expert_intercept_ : ndarray of shape (n_experts, n_classes)
        Each expert's class intercepts b_kc (centred over classes).
    n_iter_ : int
        EM iterations of the returned run.
    converged_ : bool
        Whether the returned run met ``tol``.
    log_likelihood_ : float
        Mean (weighted) training log-likelihood of the returned model.
    log_likelihood_history_ : ndarray of shape (n_iter_,)
        Mean training log-likelihood after each EM iteration.
    objective_history_ : ndarray of shape (n_iter_,)
        Mean penalised log-likelihood after each EM iteration (what EM
        maximises; non-decreasing).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined only when X has string feature names.

    See Also
    --------
    MixtureOfExpertsRegressor : The same model with linear-Gaussian experts.
    sklearn.linear_model.LogisticRegression : The one-expert special case.

    References
    ----------
    .. [1] R. A. Jacobs, M. I. Jordan, S. J. Nowlan and G. E. Hinton,
       "Adaptive mixtures of local experts", Neural Computation 3(1), 1991.
    .. [2] M. I. Jordan and R. A. Jacobs, "Hierarchical mixtures of experts
       and the EM algorithm", Neural Computation 6(2), 1994.

    Examples
    --------
    >>> from mixexp import MixtureOfExpertsClassifier
    >>> from mixexp.datasets import make_moe_classification
    >>> X, y, _ = make_moe_classification(n_samples=600, n_features=2, n_experts=2,
    ...                                   n_classes=2, random_state=0)
    >>> clf = MixtureOfExpertsClassifier(n_experts=2, n_init=3, random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:3]).sum(axis=1)
    array([1., 1., 1.])
    >>> clf.predict_experts(X[:3]).shape  # (n_samples, n_experts, n_classes)
    (3, 2, 2)
    """

    _y_numeric = False
    _multi_output = False

    def __init__(
        self,
        n_experts=3,
        *,
        solver="em",
        alpha=0.5,
        max_iter=1000,
        tol=1e-6,
        n_init=1,
        init_params="kmeans",
        backend="auto",
        warm_start=False,
        random_state=None,
        verbose=0,
    ):
        super().__init__(
            n_experts,
            solver=solver,
            alpha=alpha,
            max_iter=max_iter,
            tol=tol,
            n_init=n_init,
            init_params=init_params,
            backend=backend,
            warm_start=warm_start,
            random_state=random_state,
            verbose=verbose,
        )

    # ---- hooks -----------------------------------------------------------
    def _encode_targets(self, y, *, fitting):
        """One-hot classes (n, C); learns ``classes_`` when fitting."""
        if fitting:
            check_classification_targets(y)
            self.classes_, codes = np.unique(y, return_inverse=True)
            if self.classes_.size < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of at least 2 classes in the data, "
                    f"but the data contains only one class: {self.classes_[0]!r}."
                )
            self._n_targets = self.classes_.size
        else:
            y = column_or_1d(y)
            unseen = ~np.isin(y, self.classes_)
            if unseen.any():
                raise ValueError(
                    f"y contains labels not seen during fit: {np.unique(y[unseen])[:5]!r}; "
                    f"known classes are {self.classes_!r}."
                )
            codes = np.searchsorted(self.classes_, y)
        one_hot = np.zeros((codes.size, self.classes_.size))
        one_hot[np.arange(codes.size), codes.ravel()] = 1.0
        return one_hot

    @staticmethod
    def _expert_family_class():
        return LogisticExperts

    def _make_family(self, x_scale, Y, sample_weight):
        return LogisticExperts(weight_penalty=self.alpha / x_scale**2)

    def _neutral_expert_params(self, Y, sample_weight, n_features):
        n_classes = Y.shape[1]
        # every expert starts at the class priors, smoothed so none is -inf
        prior = (sample_weight @ Y + 1.0) / (sample_weight.sum() + n_classes)
        log_prior = np.log(prior) - np.log(prior).mean()
        return {
            "coef": np.zeros((self.n_experts, n_classes, n_features)),
            "intercept": np.tile(log_prior, (self.n_experts, 1)),
        }

    def _expert_params_to_user(self, params):
        self.expert_coef_, self.expert_intercept_ = to_user_scale(
            params["coef"], params["intercept"], self._x_mean, self._x_scale
        )

    def _expert_params_from_user(self, x_mean, x_scale):
        coef, intercept = to_internal_scale(
            self.expert_coef_, self.expert_intercept_, x_mean, x_scale
        )
        return {"coef": coef, "intercept": intercept}

    # ---- prediction --------------------------------------------------------
    def _expert_log_proba(self, Xs):
        kernels = resolve_backend(self.backend, Xs)
        return kernels.logistic_predict_log_proba(
            Xs, self._params["coef"], self._params["intercept"]
        )

    @single_threaded_blas
    def predict_log_proba(self, X):
        """Log of the mixture's class probabilities, computed in log space.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``.
        """
        Xs = self._standardize(X)
        log_joint = self._log_gate(Xs)[:, :, None] + self._expert_log_proba(Xs)
        return logsumexp(log_joint, axis=1)

    def predict_proba(self, X):
        """Class probabilities sum_k g_k(x) p_k(y = c | x).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Rows sum to 1; columns follow ``classes_``.
        """
        proba = np.exp(self.predict_log_proba(X))
        # exp of a log-sum-exp can drift from 1 by rounding; renormalise
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X):
        """Most probable class under the mixture.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        log_proba = self.predict_log_proba(X)  # checks fitted before classes_ is read
        return self.classes_[np.argmax(log_proba, axis=1)]

    @single_threaded_blas
    def predict_experts(self, X):
        """Each expert's class probabilities p_k(y = c | x).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_experts, n_classes)
        """
        return np.exp(self._expert_log_proba(self._standardize(X)))
