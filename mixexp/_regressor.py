"""MixtureOfExpertsRegressor: linear-Gaussian experts behind a softmax gate."""

from numbers import Real

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_array

from ._backend import resolve_backend, single_threaded_blas
from ._base import BaseMixtureOfExperts, to_internal_scale, to_user_scale
from ._experts import GaussianExperts


class MixtureOfExpertsRegressor(RegressorMixin, BaseMixtureOfExperts):
    r"""Mixture of linear-Gaussian experts with a softmax gate, trained by EM.

    The conditional density of the target is a gated mixture of linear
    regressions (Jacobs et al. 1991; Jordan & Jacobs 1994):

    .. math::

        p(y \mid x) = \sum_{k=1}^{K} g_k(x)\,
            \mathcal{N}\!\left(y;\ x^\top w_k + c_k,\ \sigma_k^2\right),
        \qquad g_k(x) = \operatorname{softmax}_k(x^\top v_k + b_k).

    Each expert owns the region of input space where its gate is large, and
    has its own noise level. EM alternates an E-step (responsibilities
    :math:`h_{ik} \propto g_k(x_i)\,p_k(y_i \mid x_i)`, in log space) and an
    M-step (each expert by weighted ridge least squares, the gate by a
    weighted multinomial logistic regression on the soft targets :math:`h`).
    The penalised log-likelihood never decreases.

    Parameters
    ----------
    n_experts : int, default=3
        Number of experts K.
    solver : {"em"}, default="em"
        Training method: expectation-maximisation.
    alpha : float, default=1e-4
        L2 penalty ``alpha * ||w||^2`` added to the negative total
        log-likelihood (Ridge's convention; intercepts are not penalised).
        On the experts it acts on the weights on the user's scale, as in
        :class:`~sklearn.linear_model.Ridge`; on the gate it acts on the
        weights of the internally standardised inputs, so the gate does not
        depend on how the features are scaled. The small default only keeps
        the gate finite where regions are perfectly separated; increase it
        for strong shrinkage, or set 0 for the plain maximum likelihood.
    variance_floor : float, default=1e-6
        Smallest expert variance, as a fraction of the (weighted) variance
        of each target. Stops an expert from collapsing onto a few points.
    max_iter : int, default=300
        EM iterations per start, at most.
    tol : float, default=1e-6
        Convergence threshold on the gain in mean penalised log-likelihood
        per sample between two EM iterations.
    n_init : int, default=1
        Number of starts; the fit with the highest penalised log-likelihood is
        kept. Starts cycle through k-means on standardised ``[X, y]``,
        random responsibilities and random partitions (see ``init_params``),
        and start ``i`` is the same whatever ``n_init`` is, so more starts
        never give a worse fit.
    init_params : {"kmeans", "random"}, default="kmeans"
        ``"kmeans"``: the first start clusters the standardised ``[X, y]``
        with weighted k-means, later ones alternate with random starts.
        ``"random"``: random responsibilities and random partitions only.
    backend : {"auto", "numpy"}, default="auto"
        Kernel backend. ``"auto"`` picks the fastest available.
    warm_start : bool, default=False
        If True and the estimator is already fitted with the same number of
        experts and features, fit starts from the previous solution (and
        ``n_init`` is ignored).
    random_state : int, RandomState instance or None, default=None
        Seeds the starts. An int gives the same fit every time.
    verbose : int, default=0
        1 prints each start's outcome, 2 also every EM iteration's
        log-likelihood.

    Attributes
    ----------
    gate_coef_ : ndarray of shape (n_experts, n_features)
        Gate weights v_k, on the user's scale.
    gate_intercept_ : ndarray of shape (n_experts,)
        Gate intercepts b_k (centred: they sum to zero).
    expert_coef_ : ndarray of shape (n_experts, n_features) or \
            (n_experts, n_targets, n_features)
        Expert weights w_k.
    expert_intercept_ : ndarray of shape (n_experts,) or (n_experts, n_targets)
        Expert intercepts c_k.
    expert_variance_ : ndarray of shape (n_experts,) or (n_experts, n_targets)
        Expert noise variances sigma_k^2.
    n_iter_ : int
        EM iterations of the returned run.
    converged_ : bool
        Whether the returned run met ``tol``.
    log_likelihood_ : float
        Mean (weighted) training log-likelihood of the returned model.
    log_likelihood_history_ : ndarray of shape (n_iter_,)
        Mean training log-likelihood after each EM iteration.
    objective_history_ : ndarray of shape (n_iter_,)
        Mean penalised log-likelihood after each EM iteration: the quantity
        EM maximises, non-decreasing (equal to the log-likelihood history
        when ``alpha=0``).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined only when X has string feature names.

    See Also
    --------
    sklearn.mixture.GaussianMixture : Unconditional mixture of Gaussians.
    sklearn.linear_model.Ridge : The one-expert special case (up to alpha's
        scaling by the noise variance).

    References
    ----------
    .. [1] R. A. Jacobs, M. I. Jordan, S. J. Nowlan and G. E. Hinton,
       "Adaptive mixtures of local experts", Neural Computation 3(1), 1991.
    .. [2] M. I. Jordan and R. A. Jacobs, "Hierarchical mixtures of experts
       and the EM algorithm", Neural Computation 6(2), 1994.

    Examples
    --------
    >>> from mixexp import MixtureOfExpertsRegressor
    >>> from mixexp.datasets import make_moe_regression
    >>> X, y, _ = make_moe_regression(n_samples=500, n_features=2, n_experts=3,
    ...                               noise=0.1, random_state=0)
    >>> est = MixtureOfExpertsRegressor(n_experts=3, n_init=3, random_state=0)
    >>> round(est.fit(X, y).score(X, y), 3)
    0.922
    >>> mean, std = est.predict(X[:2], return_std=True)
    >>> std.round(2)  # noise of the owning expert, plus disagreement where gates overlap
    array([0.31, 0.56])
    >>> est.predict_gate(X[:2]).sum(axis=1)
    array([1., 1.])
    """

    _parameter_constraints: dict = {
        **BaseMixtureOfExperts._parameter_constraints,
        "variance_floor": [Interval(Real, 0, None, closed="neither")],
    }
    _y_numeric = True
    _multi_output = True

    def __init__(
        self,
        n_experts=3,
        *,
        solver="em",
        alpha=1e-4,
        variance_floor=1e-6,
        max_iter=300,
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
        self.variance_floor = variance_floor

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    # ---- hooks -----------------------------------------------------------
    def _encode_targets(self, y, *, fitting):
        if fitting:
            self._y_ndim = np.ndim(y)
        else:
            y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
            if y.ndim != self._y_ndim and not (y.ndim == 1 and self._n_targets == 1):
                raise ValueError(
                    f"y has {y.ndim} dimension(s) but the model was fitted on "
                    f"{self._y_ndim}-dimensional targets."
                )
        Y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        if fitting:
            self._n_targets = Y.shape[1]
        elif Y.shape[1] != self._n_targets:
            raise ValueError(
                f"y has {Y.shape[1]} targets but the model was fitted on {self._n_targets}."
            )
        return Y

    @staticmethod
    def _expert_family_class():
        return GaussianExperts

    def _make_family(self, x_scale, Y, sample_weight):
        return GaussianExperts(
            weight_penalty=self.alpha / x_scale**2,
            variance_floor=self._target_variance_floor(Y, sample_weight),
        )

    def _target_variance_floor(self, Y, sample_weight):
        mean = np.average(Y, axis=0, weights=sample_weight)
        variance = np.average((Y - mean) ** 2, axis=0, weights=sample_weight)
        # A constant target still needs a positive floor, in its own units.
        reference = np.where(variance > 0, variance, np.maximum(mean**2, 1.0))
        return self.variance_floor * reference

    def _neutral_expert_params(self, Y, sample_weight, n_features):
        n_targets = Y.shape[1]
        mean = np.average(Y, axis=0, weights=sample_weight)
        variance = np.average((Y - mean) ** 2, axis=0, weights=sample_weight)
        variance = np.maximum(variance, self._target_variance_floor(Y, sample_weight))
        return {
            "coef": np.zeros((self.n_experts, n_targets, n_features)),
            "intercept": np.tile(mean, (self.n_experts, 1)),
            "variance": np.tile(variance, (self.n_experts, 1)),
        }

    def _squeeze_targets(self, array, target_axis):
        return np.take(array, 0, axis=target_axis) if self._y_ndim == 1 else array

    def _expert_params_to_user(self, params):
        coef, intercept = to_user_scale(
            params["coef"], params["intercept"], self._x_mean, self._x_scale
        )
        self.expert_coef_ = self._squeeze_targets(coef, 1)
        self.expert_intercept_ = self._squeeze_targets(intercept, 1)
        self.expert_variance_ = self._squeeze_targets(params["variance"].copy(), 1)

    def _expert_params_from_user(self, x_mean, x_scale):
        n_targets = self._n_targets
        coef = np.reshape(self.expert_coef_, (self.n_experts, n_targets, -1))
        intercept = np.reshape(self.expert_intercept_, (self.n_experts, n_targets))
        coef, intercept = to_internal_scale(coef, intercept, x_mean, x_scale)
        variance = np.reshape(self.expert_variance_, (self.n_experts, n_targets)).copy()
        return {"coef": coef, "intercept": intercept, "variance": variance}

    # ---- prediction --------------------------------------------------------
    def _expert_means(self, Xs):
        kernels = resolve_backend(self.backend, Xs)
        return kernels.gaussian_predict(Xs, self._params["coef"], self._params["intercept"])

    @single_threaded_blas
    def predict(self, X, return_std=False):
        """Mean of the predictive mixture, and optionally its standard deviation.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        return_std : bool, default=False
            Also return the standard deviation of p(y | x): the experts'
            noise plus their disagreement,
            ``sqrt(sum_k g_k (sigma_k^2 + mu_k^2) - mean^2)``.

        Returns
        -------
        mean : ndarray of shape (n_samples,) or (n_samples, n_targets)
        std : ndarray of the same shape
            Only when ``return_std=True``.
        """
        Xs = self._standardize(X)
        gate = np.exp(self._log_gate(Xs))
        means = self._expert_means(Xs)
        mean = np.einsum("nk,nkt->nt", gate, means)
        if not return_std:
            return self._squeeze_targets(mean, 1)
        second_moment = np.einsum("nk,nkt->nt", gate, means**2) + gate @ self._params["variance"]
        std = np.sqrt(np.maximum(second_moment - mean**2, 0.0))
        return self._squeeze_targets(mean, 1), self._squeeze_targets(std, 1)

    @single_threaded_blas
    def predict_experts(self, X):
        """Each expert's prediction x w_k + c_k.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        predictions : ndarray of shape (n_samples, n_experts) or \
                (n_samples, n_experts, n_targets)
        """
        return self._squeeze_targets(self._expert_means(self._standardize(X)), 2)
