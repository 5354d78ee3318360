"""MixtureOfExpertsRegressor: linear-Gaussian (Student-t, Poisson) experts behind a softmax gate."""

from numbers import Real

import numpy as np
from sklearn.base import RegressorMixin, clone
from sklearn.metrics import r2_score
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_array

from ._backend import (
    array_namespace,
    as_caller,
    is_device_array,
    single_threaded_blas,
    to_host,
)
from ._base import BaseMixtureOfExperts
from ._experts import GaussianExperts, PoissonExperts, StudentTExperts
from ._experts._estimator import EstimatorRegressionExperts, check_expert_estimator
from ._experts._family import user_scale_penalty
from ._experts._gaussian import variance_floor
from ._experts._poisson import check_counts, target_means
from ._inference import InferenceMixin
from ._routing import expert_design_gram
from ._validation import check_device_array, dask_support, is_dask_input

# expert= -> the family's class
_FAMILIES = {"gaussian": GaussianExperts, "poisson": PoissonExperts,
             "student_t": StudentTExperts}
# the family of scikit-learn estimators as experts (``expert=`` an estimator object)
_ESTIMATOR_FAMILIES = {"estimator": EstimatorRegressionExperts}


def expert_kind(expert):
    """The name a fit remembers its family by: the ``expert`` string, or "estimator"."""
    return expert if isinstance(expert, str) else "estimator"


def restandardised_gram(gram, scaling, x_mean, x_scale):
    """Design moments (K, d + 1, d + 1) of rows standardised by ``scaling`` = (mean,
    scale), re-expressed for rows standardised by ``x_mean`` and ``x_scale``.

    [z_new, 1] = T [z_old, 1] with z_new = (z_old s_old + m_old - m_new) / s_new,
    so G_new = T G_old T^T exactly.
    """
    old_mean, old_scale = scaling
    d = old_mean.shape[0]
    transform = np.eye(d + 1)
    transform[np.arange(d), np.arange(d)] = old_scale / x_scale
    transform[:d, d] = (old_mean - x_mean) / x_scale
    return transform @ gram @ transform.T


class MixtureOfExpertsRegressor(InferenceMixin, RegressorMixin, BaseMixtureOfExperts):
    r"""Mixture of linear-Gaussian, Student-t or Poisson experts with a softmax gate, fit by EM or gradient.

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
        Number of experts K. An expert that loses every sample (its
        responsibilities vanish) is re-initialised by EM when that improves
        the fit; otherwise it is kept with a zero gate and a
        ``ConvergenceWarning`` names it (see the user guide, "Vanished
        experts").
    expert : {"gaussian", "student_t", "poisson"} or estimator, default="gaussian"
        The experts' family. ``"gaussian"``: linear regressions with
        Gaussian noise of their own variance (the model above).
        ``"student_t"``: robust linear regressions with Student-t noise,
        p_k(y | x) = t(y; x w_k + c_k, sigma_k^2, nu_k), each expert with
        its own scale ``expert_variance_`` and degrees of freedom
        ``expert_dof_`` (kept in [0.5, 1e6]; several targets form one
        multivariate t per expert with a diagonal scale). The M-step is one
        ECM cycle (Peel & McLachlan 2000; Chamroukhi 2016): weighted least
        squares with the rows down-weighted by u_ik = (nu_k + p) / (nu_k +
        delta_ik), then the scale, then nu_k by a 1-D root; EM stays
        monotone. The gradient solvers move nu on a log scale. Prediction
        is the mixture of the experts' locations (their means where
        nu_k > 1); ``predict(return_std=True)`` uses the variance
        sigma_k^2 nu_k / (nu_k - 2), which is infinite for nu_k <= 2: the
        std is then ``inf`` on every row where such an expert has a
        positive gate (never NaN). ``summary`` / ``parameter_covariance``
        report each expert's intercept, weights, scale ``sigma`` and
        degrees of freedom ``dof``; a ``dof`` on its bound is held fixed
        (NaN standard error, a warning).
        ``"poisson"``: Poisson regressions with a log link for non-negative
        integer counts, p_k(y | x) = Poisson(y; exp(x w_k + c_k)) (each
        target an independent count); ``fit`` refuses negative or
        non-integer targets with a ValueError. Their M-step is penalised
        Newton (IRLS) steps, each halved until the expert's objective does
        not fall, so EM stays monotone; ``alpha * ||w_k||^2`` is added to
        the negative log-likelihood, on the user's scale. Prediction is the
        mixture's mean rate; ``predict(return_std=True)`` its standard
        deviation, whose variance is ``sum_k g_k mu_k`` (a count's variance
        is its rate) plus the experts' disagreement. ``summary`` /
        ``parameter_covariance`` report each expert's log-rate intercept and
        weights.

        Or any scikit-learn regressor whose ``fit`` takes ``sample_weight``
        (for example ``DecisionTreeRegressor(max_depth=3)``), trained by
        generalised EM: each expert is a clone fitted on the experts'
        columns, on the user's scale, with the responsibilities times the
        sample weights as ``sample_weight``; its noise is Gaussian with a
        variance per target from the weighted residuals (floored by
        ``variance_floor``). A new clone that fits its weights worse than
        the expert it replaces is dropped, so EM never lowers its objective
        whatever the estimator. ``alpha`` then penalises the gate only (the
        estimator brings its own regularisation; ``Ridge``'s is counted in
        the objective). EM only (``solver="lbfgs"`` or ``"adam"`` raise a
        ValueError); ``predict(return_std=True)`` mixes the experts' noise
        variances; ``bic`` / ``aic`` count ``LinearRegression`` and
        ``Ridge`` experts as Gaussian ones and raise a ValueError for other
        estimators; no ``summary``. The fitted clones are ``experts_``.
        See the user guide, "Scikit-learn estimators as experts".
    gate_features : array-like or None, default=None
        Columns of X the gate sees (flexmix's *concomitant variables*):
        integer indices, column names (DataFrame input only) or a boolean
        mask of length n_features. None: every column. Columns keep the
        order given; ``gate_coef_`` has one column per selected feature. An
        empty selection gives a gate of constant mixing proportions (a
        plain mixture of regressions, flexmix's model without a concomitant
        model).
    expert_features : array-like or None, default=None
        Columns of X the experts see, selected as ``gate_features``; None:
        every column. An empty selection gives constant experts (each predicts its intercept)
        gated by the gate's columns. The gate and the experts may share
        columns, and need not cover X between them.
    solver : {"em", "lbfgs", "adam"}, default="em"
        Training method; all three maximise the same penalised objective,
        so their fits can be compared. ``"em"``: expectation-maximisation
        (Jordan & Jacobs 1994), monotone. ``"lbfgs"``: full-batch L-BFGS on
        all gate and expert parameters at once, with the analytic gradient
        computed from the responsibilities (Jacobs et al. 1991); variances
        move on a log scale. ``"adam"``: mini-batch Adam (``batch_size``, ``learning_rate_init``,
        ``shuffle``, ``n_iter_no_change``); the only solver with
        ``partial_fit`` and ``gate_noise``.
    gating : {"soft", "hard"}, default="soft"
        ``"soft"``: the gate mixes all experts. ``"hard"``: each input goes
        to one expert. Training maximises the classification
        log-likelihood sum_i max_k log g_k(x_i) p_k(y_i | x_i)
        (classification EM with ``solver="em"``: each sample is given to
        its most responsible expert); prediction, ``log_likelihood`` and the
        scores use the expert of largest gate alone.
    top_k : int or None, default=None
        With soft gating, keep each input's ``top_k`` most probable experts
        only, the gate renormalised over them: ``predict``,
        ``predict(return_std=True)``, ``log_likelihood`` and
        ``predict_responsibilities`` follow it,
        ``predict_gate`` stays the dense softmax. ``top_k=n_experts`` is
        soft gating. Training fits the dense model (an EM step is not
        defined for a gate whose support moves, and the top-k likelihood
        jumps where the kept set changes, which stalls L-BFGS), except with
        ``gate_noise > 0``: Adam then trains the noisy top-k model itself
        (Shazeer et al. 2017), which needs ``top_k >= 2``.
    alpha : "auto" or float, default="auto"
        L2 penalties on the gate's and the experts' weights (intercepts are
        not penalised). A float ``alpha`` adds ``alpha * ||w||^2`` to the
        negative total log-likelihood (Ridge's convention): on the experts
        it acts on the weights on the user's scale, as in
        :class:`~sklearn.linear_model.Ridge` (one Gaussian expert is
        ``Ridge(alpha)``); on the gate it acts on the weights of the
        internally standardised inputs, so the gate does not depend on how
        the features are scaled. 0 gives the plain maximum likelihood (as R's
        flexmix fits).

        ``"auto"`` chooses the penalties for held-out predictions:

        - the gate gets 0.01 per standardised weight, a Gaussian prior with
          a standard deviation of about 7 on the logit's slope per standard
          deviation of a feature. It hardly moves a gate that the data
          determine, and keeps a gate whose regions separate perfectly on
          the training rows (where the likelihood alone drives its slopes to
          infinity) from predicting with certainty across boundaries it
          has never seen;
        - each Gaussian or Student-t expert gets its own penalty per
          standardised weight, chosen by generalised cross-validation
          (Golub, Heath & Wahba 1979; the criterion of ``MASS::lm.ridge``)
          of the weighted ridge regression its M-step solves, from the grid
          ``numpy.logspace(-4, 4, 33)``: after a fit at 1e-4, from its
          posterior weights (one more pass over the rows), after which the
          fit continues with the chosen penalties. A local expert is
          shrunk as much as its own rows call for, wherever it sits;
          ``expert_alpha_`` holds the choices;
        - Poisson experts get 1e-4 per standardised weight, and
          scikit-learn estimators as experts their own regularisation.

        With ``"auto"`` the fit does not depend on the features' scales.
        ``partial_fit`` does not choose (it sees one batch at a time): it
        uses the gate's 0.01 and 1e-4 per standardised weight for the
        experts. See the user guide,
        "Regularisation".
    balance : float, default=0.0
        Strength of a load-balancing penalty against the gate collapsing
        onto a few experts: ``balance * CV^2(I)``, where I_k is the mean
        (dense) gate of expert k over the training data and
        ``CV^2 = K sum_k I_k^2 - 1`` its squared coefficient of variation
        (0 when every expert takes 1/K, K - 1 when one takes all). It is
        subtracted from the mean log-likelihood, so it is in nats per
        sample. Every solver; with EM it enters the gate M-step, which keeps
        EM monotone. See ``expert_usage_``.
    gate_noise : float, default=0.0
        Standard deviation of Gaussian noise added to the gate logits at
        every training step of ``solver="adam"``, redrawn each step. With
        ``top_k``, the kept experts are chosen on the noisy logits and
        training maximises the likelihood of the top-k model (noisy top-k
        gating, Shazeer et al. 2017): the noise lets experts just outside
        the top k be chosen, and so trained, and smooths the jumps of the
        top-k likelihood. Fixed, not learned; prediction and the reported
        objective are noise-free. Other solvers need 0.
    variance_floor : float, default=1e-6
        Smallest expert variance, as a fraction of the (weighted) variance
        of each target. Stops an expert from collapsing onto a few points.
        A target that is constant (up to rounding) has no spread to scale
        by: its floor is ``(1e-6 * rms(y))**2`` in float64 and
        ``(1.2e-3 * rms(y))**2`` in float32, well above rounding errors, so
        it is fitted without numerical noise. A varying target whose floor
        would fall below 1e-300 (a spread below about 1e-147 with the
        default) cannot be represented and is refused with a ValueError.
    max_iter : int, default=300
        Iterations per start, at most: EM or L-BFGS iterations, Adam epochs.
    tol : float, default=1e-6
        Convergence threshold on the gain in mean penalised log-likelihood
        per sample between two iterations (L-BFGS: three iterations in a row;
        Adam: see ``n_iter_no_change``).
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
        Every solver starts from the same points.
    batch_size : int or "auto", default="auto"
        Mini-batch size of ``solver="adam"``; ``"auto"`` is
        ``min(200, n_samples)``. Ignored by the other solvers.
    learning_rate_init : float, default=0.01
        Step size of ``solver="adam"``. Parameters move in units where the
        inputs are standardised and each expert's mean and variance are
        measured against its noise level at the start, so it does not
        depend on the data's scale.
    shuffle : bool, default=True
        Whether ``solver="adam"`` reshuffles the rows every epoch.
    n_iter_no_change : int, default=10
        ``solver="adam"`` stops when the training objective has not
        improved by more than ``tol`` for this many epochs (and returns the
        best parameters seen), as MLPRegressor does.
    backend : {"auto", "numpy", "numba", "cupy"}, default="auto"
        Kernel backend for the per-sample work. ``"numba"``: compiled,
        fused and multi-threaded CPU kernels (compiled on first use, then
        cached on disk). ``"numpy"``: the reference implementation.
        ``"cupy"``: the whole fit on an NVIDIA GPU (``pip install
        "mixexp[gpu]"``); the data stay on the device and only parameters
        and scalars cross to the host; predictions come back in the input's
        array type (CuPy in, CuPy out). ``"auto"`` picks CuPy for CuPy
        input, else Numba when it can be imported, else NumPy, and never
        fails; an explicit ``"numba"`` or ``"cupy"`` that cannot be imported
        raises an ImportError naming what to install (``"cupy"`` without a
        GPU, a RuntimeError). The fitted model does not depend on the
        backend beyond rounding, and its attributes are NumPy arrays.
    warm_start : bool, default=False
        If True and the estimator is already fitted on data with the same
        features and number of targets, fit starts from the previous
        solution (and ``n_init`` is ignored). If ``n_experts`` changed in between, the
        previous solution is resized first: an expert is added by
        splitting the one with the largest share of the negative
        log-likelihood into two halves that start from its parameters and
        share its gate (so the larger model starts from the smaller one's
        log-likelihood, up to a tiny symmetry-breaking step, and training
        improves it); experts are removed least used first (the gate of
        the others is renormalised).
    random_state : int, RandomState instance or None, default=None
        Seeds the starts. An int gives the same fit every time.
    verbose : int, default=0
        1 prints each start's outcome, 2 also every EM iteration's
        log-likelihood.

    Attributes
    ----------
    gate_coef_ : ndarray of shape (n_experts, n_gate_features)
        Gate weights v_k, on the user's scale, one column per column of
        ``gate_features`` (n_gate_features = n_features without a
        selection).
    gate_intercept_ : ndarray of shape (n_experts,)
        Gate intercepts b_k (centred: they sum to zero).
    expert_coef_ : ndarray of shape (n_experts, n_expert_features) or (n_experts, n_targets, n_expert_features)
        Expert weights w_k (of the log-rate for ``expert="poisson"``), one
        column per column of ``expert_features`` (n_expert_features =
        n_features without a selection).
    expert_intercept_ : ndarray of shape (n_experts,) or (n_experts, n_targets)
        Expert intercepts c_k.
    expert_variance_ : ndarray of shape (n_experts,) or (n_experts, n_targets)
        Expert noise variances sigma_k^2 (``expert="gaussian"`` or a
        scikit-learn regressor), or the squared scales of the t noise
        (``expert="student_t"``); absent for Poisson experts.
    expert_dof_ : ndarray of shape (n_experts,)
        Degrees of freedom nu_k of each expert's t noise
        (``expert="student_t"`` only).
    experts_ : list of estimators
        The fitted clones, one per expert (only when ``expert`` is a
        scikit-learn regressor, which then leaves no ``expert_coef_`` or
        ``expert_intercept_``).
    expert_usage_ : ndarray of shape (n_experts,)
        Fraction of the training weight each expert takes: the weighted
        mean of the gate that prediction uses (one-hot for hard gating,
        renormalised top-k with ``top_k``). Sums to 1; near-zero entries
        show a collapsed gate (see ``balance``).
    expert_alpha_ : ndarray of shape (n_experts,)
        With ``alpha="auto"`` and Gaussian or Student-t experts (fitted by
        ``fit``): each expert's penalty per weight of a standardised
        feature, chosen by generalised cross-validation.
    n_iter_ : int
        Iterations of the returned run (Adam: epochs; ``partial_fit``
        counts one per call; with ``alpha="auto"``, those of the fit
        continued at the chosen penalties).
    converged_ : bool
        Whether the returned run met ``tol``.
    log_likelihood_ : float
        Mean (weighted) training log-likelihood of the returned model, under
        the gating that prediction uses (``gating``, ``top_k``).
    log_likelihood_history_ : ndarray of shape (`n_iter_`,)
        Mean training log-likelihood after each iteration (for hard gating,
        the classification log-likelihood that training maximises).
    objective_history_ : ndarray of shape (`n_iter_`,)
        Mean penalised log-likelihood after each iteration: the quantity
        the solver maximises (minus the ``balance`` penalty), non-decreasing
        (equal to the log-likelihood history when ``alpha=0`` and
        ``balance=0``). Adam records the best parameters so far, which are
        the ones it returns; ``partial_fit`` appends each call's objective
        on its own batch, which need not increase.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
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
    .. [3] N. Shazeer, A. Mirhoseini, K. Maziarz, A. Davis, Q. Le, G. Hinton
       and J. Dean, "Outrageously large neural networks: the sparsely-gated
       mixture-of-experts layer", ICLR 2017.
    .. [4] G. Celeux and G. Govaert, "A classification EM algorithm for
       clustering and two stochastic versions", Computational Statistics &
       Data Analysis 14(3), 1992.

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
        "expert": [StrOptions({"gaussian", "poisson", "student_t"})],
        "variance_floor": [Interval(Real, 0, None, closed="neither")],
    }
    _parameter_constraints["alpha"] = [*_parameter_constraints["alpha"], StrOptions({"auto"})]
    # or any scikit-learn regressor (checked by check_expert_estimator when fitting)
    _parameter_constraints["expert"] = [*_parameter_constraints["expert"],
                                        HasMethods(["fit", "predict"])]
    _y_numeric = True
    _multi_output = True

    def __init__(
        self,
        n_experts=3,
        *,
        expert="gaussian",
        gate_features=None,
        expert_features=None,
        solver="em",
        gating="soft",
        top_k=None,
        alpha="auto",
        balance=0.0,
        gate_noise=0.0,
        variance_floor=1e-6,
        max_iter=300,
        tol=1e-6,
        n_init=1,
        init_params="kmeans",
        batch_size="auto",
        learning_rate_init=0.01,
        shuffle=True,
        n_iter_no_change=10,
        backend="auto",
        warm_start=False,
        random_state=None,
        verbose=0,
    ):
        super().__init__(
            n_experts,
            gate_features=gate_features,
            expert_features=expert_features,
            solver=solver,
            gating=gating,
            top_k=top_k,
            alpha=alpha,
            balance=balance,
            gate_noise=gate_noise,
            max_iter=max_iter,
            tol=tol,
            n_init=n_init,
            init_params=init_params,
            batch_size=batch_size,
            learning_rate_init=learning_rate_init,
            shuffle=shuffle,
            n_iter_no_change=n_iter_no_change,
            backend=backend,
            warm_start=warm_start,
            random_state=random_state,
            verbose=verbose,
        )
        self.expert = expert
        self.variance_floor = variance_floor

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        # counts: scikit-learn's checks then draw non-negative targets
        tags.target_tags.positive_only = self.expert == "poisson"
        return tags

    # ---- hooks -----------------------------------------------------------
    def _check_target_kind(self, y):
        values = np.asarray(y)
        if values.dtype.kind in "USO":
            try:
                values.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError(
                    f"{type(self).__name__} needs a numeric target, but y holds labels "
                    f"such as {values.ravel().tolist()[0]!r} (type_of_target: "
                    f"{type_of_target(values)!r}). Use MixtureOfExpertsClassifier for "
                    "class labels."
                ) from None

    def _encode_targets(self, y, *, fitting):
        """Targets as float64 (n, t) in the namespace of ``y`` (CuPy ones stay on the device)."""
        xp = array_namespace(y)
        if fitting:
            self._y_ndim = y.ndim  # y is validated: an array
        else:
            if is_device_array(y):
                y = check_device_array(y, input_name="y", estimator_name=type(self).__name__,
                                       ensure_2d=False, dtype=(np.float64,))
            else:
                y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
            if y.ndim != self._y_ndim and not (y.ndim == 1 and self._n_targets == 1):
                raise ValueError(
                    f"y has {y.ndim} dimension(s) but the model was fitted on "
                    f"{self._y_ndim}-dimensional targets."
                )
        Y = xp.asarray(y, dtype=np.float64).reshape(len(y), -1)
        if (self.expert if fitting else getattr(self, "_expert_kind", "gaussian")) == "poisson":
            check_counts(Y)
        if fitting:
            self._n_targets = Y.shape[1]
        elif Y.shape[1] != self._n_targets:
            raise ValueError(
                f"y has {Y.shape[1]} targets but the model was fitted on {self._n_targets}."
            )
        return Y

    def _family_class(self):
        kind = getattr(self, "_expert_kind", "gaussian")
        return _ESTIMATOR_FAMILIES.get(kind) or _FAMILIES[kind]

    def _same_family(self):
        return getattr(self, "_expert_kind", "gaussian") == expert_kind(self.expert)

    def _warm_family(self):
        # Student-t experts nest Gaussian ones (nu -> inf): a Gaussian fit is a start
        return self._same_family() or (
            getattr(self, "_expert_kind", "gaussian") == "gaussian"
            and self.expert == "student_t")

    def _complete_warm_params(self, model, kernels, rows, params):
        """From a Gaussian fit, Student-t experts get the degrees of freedom that maximise
        each expert's weighted likelihood at its line and scale (the Gaussian limit
        among them), so the t fit starts no lower than the Gaussian one."""
        if not isinstance(model.family, StudentTExperts) or hasattr(self, "expert_dof_"):
            return params

        def map_reduce(function):
            return model.map_reduce_weighted(kernels, rows, params, function)

        # two passes over the rows, in memory or on a cluster alike
        experts = model.family.fit_dof(kernels, map_reduce, params["experts"])
        return {**params, "experts": experts}

    def _check_solver_options(self):
        super()._check_solver_options()
        if not isinstance(self.expert, str):
            check_expert_estimator(self.expert, "regressor")
            _check_estimator_solver(self)

    def _make_family(self, x_scale, Y, sample_weight, alpha, x_mean=None):
        self._expert_kind = expert_kind(self.expert)
        if self._expert_kind == "estimator":
            # the estimator's own regularisation stands in for alpha (the gate's only)
            return EstimatorRegressionExperts(
                estimator=clone(self.expert), x_mean=to_host(x_mean), x_scale=to_host(x_scale),
                variance_floor=variance_floor(Y, sample_weight, self.variance_floor),
                seed=check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        # alpha="auto" penalises standardised weights (a float: the user's, as Ridge)
        weight_penalty = (np.full(len(x_scale), alpha) if isinstance(self.alpha, str)
                          else user_scale_penalty(alpha, x_scale))
        if self.expert == "poisson":
            return PoissonExperts(weight_penalty=weight_penalty,
                                  target_mean=target_means(Y, sample_weight))
        family = StudentTExperts if self.expert == "student_t" else GaussianExperts
        return family(
            weight_penalty=weight_penalty,
            variance_floor=variance_floor(Y, sample_weight, self.variance_floor),
        )

    def _squeeze_outputs(self):
        return self._y_ndim == 1

    def _squeeze_targets(self, array, target_axis):
        if self._y_ndim != 1:
            return array
        return array_namespace(array).take(array, 0, axis=target_axis)

    # ---- prediction --------------------------------------------------------
    def _expert_means(self, Xs, kernels):
        model = self._fitted_model
        return model.family.mean(kernels, model.expert_view(Xs), self._params["experts"])

    @single_threaded_blas
    def predict(self, X, return_std=False):
        """Mean of the predictive mixture, and optionally its standard deviation.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        return_std : bool, default=False
            Also return the standard deviation of p(y | x): the experts'
            predictive variance plus their disagreement,
            ``sqrt(sum_k g_k (s_k^2 + (mu_k - mean)^2))``. For Gaussian
            experts ``s_k^2 = sigma_k^2 (1 + x~' A_k^-1 x~)`` is expert k's
            classical prediction interval (as in BayesianRidge), ``x~ = (x, 1)``
            on the experts' columns and
            ``A_k = sum_i s_i h_ik x~_i x~_i' + alpha diag(1, .., 1, 0)``, its
            ridge system, over the training rows with their responsibilities
            h and weights s. The second term is about (d + 1) / n_k inside an expert's
            region and grows with the squared distance from the rows it was
            fitted on, so the std widens where the gate extrapolates far
            outside the training data (see the user guide, "The mixture").
            For Poisson experts ``s_k^2`` is the rate ``mu_k``; for
            Student-t experts ``sigma_k^2 nu_k / (nu_k - 2)``, infinite where
            ``nu_k <= 2``: the std is ``inf`` on the rows where such an
            expert has a positive gate.

        The gate g is the one ``gating`` and ``top_k`` define: the argmax
        expert alone for hard gating, the renormalised top-k mixture with
        ``top_k``.

        Returns
        -------
        mean : ndarray of shape (n_samples,) or (n_samples, n_targets)
            A CuPy array for CuPy input, a lazy Dask array for Dask input.
        std : ndarray of the same shape
            Only when ``return_std=True``.
        """
        def mean_and_std(Xs, kernels):
            return self._mean_and_std(Xs, kernels, return_std, inverse_roots)

        # Gaussian experts' line uncertainty (a model saved before mixexp kept
        # their design moments predicts with their noise alone)
        inverse_roots = (self._precision_inverse_roots()
                         if return_std and getattr(self, "_expert_gram", None) is not None
                         else None)

        outputs = self._map_rows(X, mean_and_std)
        if not return_std:
            return as_caller(self._squeeze_targets(outputs[0], 1), X)
        return tuple(as_caller(self._squeeze_targets(a, 1), X) for a in outputs)

    def _mean_and_std(self, Xs, kernels, return_std, inverse_roots=None):
        """Predictive mean (and std) of standardised rows: a tuple of (n, t) arrays."""
        xp = kernels.xp
        gate = xp.exp(self._log_gate(Xs, kernels))
        means = self._expert_means(Xs, kernels)
        mean = xp.einsum("nk,nkt->nt", gate, means)
        if not return_std:
            return (mean,)
        root_gate = xp.sqrt(gate)[:, :, None]
        spread = root_gate * xp.abs(means - mean[:, None, :])  # (n, K, t)
        if inverse_roots is not None:
            # float32 input stays float32
            sigma = xp.sqrt(xp.asarray(GaussianExperts.variance(self._params["experts"]),
                                       dtype=gate.dtype))
            # each expert's predictive std, sigma_k sqrt(1 + x' A_k^-1 x): its noise and
            # the uncertainty of its fitted line, which grows with the distance from
            # the rows it was fitted on (the classical prediction interval)
            experts_x = self._fitted_model.expert_view(Xs)
            root_leverage = self._root_leverage(experts_x, kernels, inverse_roots)[:, :, None]
            noise = root_gate * (sigma * xp.hypot(1.0, root_leverage))  # (n, K, t)
        else:
            # the family's noise, sum_k g_k sigma_k^2 (a Poisson expert's is its rate),
            # as one term
            noise = xp.sqrt(self._fitted_model.family.noise_variance(
                xp, gate, means, self._params["experts"]))[:, None, :]
        # sum_k g_k ((mu_k - mean)^2 + s_k^2), not E[y^2] - mean^2: far from
        # the data the means are huge, and that difference cancels to 0 or
        # overflows to inf - inf = NaN. The terms are scaled by each row's
        # largest before squaring, so no square overflows.
        terms = xp.concatenate([spread, noise], axis=1)
        scale = terms.max(axis=1)
        scale = xp.where(scale > 0, scale, 1.0)
        infinite = xp.isinf(scale)  # an infinite variance (Student-t experts with nu <= 2)
        if bool(infinite.any()):
            scale = xp.where(infinite, 1.0, scale)  # inf / inf would be NaN
        std = scale * xp.sqrt(((terms / scale[:, None, :]) ** 2).sum(axis=1))
        return mean, xp.where(infinite, xp.asarray(np.inf, dtype=std.dtype), std)

    def _precision_inverse_roots(self):
        """R_k with R R^T = A_k^-1 for every expert: (K, d + 1, d + 1).

        ``A_k = G_k + P`` is the system of expert k's weighted ridge fit
        (``G_k`` its design moments, P the penalty per standardised weight,
        the experts' or expert k's own, intercepts unpenalised): the penalty
        alpha ||w||^2 / (2 sigma_k^2) is in units of the noise (see
        ``GaussianExperts.solve``), so the precision of the fitted line is ``A_k / sigma_k^2`` and
        ``sigma_k^2 x' A_k^-1 x`` the variance of its mean at x. Eigenvalues
        below 1e-12 of the largest moment of the data are raised to it: a
        direction the fit saw no data along is very uncertain, not infinitely.
        """
        gram = self._expert_gram
        penalty = self._fitted_model.family.weight_penalty
        n_experts, width = gram.shape[:2]
        d = width - 1
        roots = np.zeros((n_experts, width, width))
        for k in range(n_experts):
            if not gram[k, d, d] > 0:  # an expert with no data: no line to be unsure of
                continue
            precision = gram[k].copy()
            precision[np.arange(d), np.arange(d)] += penalty[k] if penalty.ndim == 2 else penalty
            values, vectors = np.linalg.eigh(precision)
            # relative to the data's moments, not the penalised system's: a penalty
            # capped at 1e200 (a feature of scale 1e-100) would floor every data
            # direction to certainty
            values = np.maximum(values, 1e-12 * gram[k].diagonal().max())
            roots[k] = vectors / np.sqrt(values)
        return roots

    @staticmethod
    def _root_leverage(Xs, kernels, inverse_roots):
        """sqrt(x' A_k^-1 x) per row and expert: (n, K), without overflow."""
        xp = kernels.xp
        design = xp.concatenate([Xs, xp.ones((Xs.shape[0], 1), dtype=Xs.dtype)], axis=1)
        # x R for every expert by one BLAS product (n K (d + 1)^2 flops);
        # |x R| as its largest entry times the norm of the rescaled vector
        n_experts, width = inverse_roots.shape[:2]
        stacked = np.ascontiguousarray(inverse_roots.transpose(1, 0, 2)).reshape(width, -1)
        projected = (design.astype(np.float64, copy=False) @ xp.asarray(stacked)).reshape(
            design.shape[0], n_experts, width)
        largest = xp.abs(projected).max(axis=2)
        unit = xp.where(largest > 0, largest, 1.0)
        root = largest * xp.sqrt(((projected / unit[..., None]) ** 2).sum(axis=2))
        return root.astype(Xs.dtype, copy=False)

    def _finish_fit(self, model, kernels, rows, result, warn=True):
        super()._finish_fit(model, kernels, rows, result, warn=warn)
        if not isinstance(model.family, GaussianExperts):
            self._expert_gram = None  # (the classical interval is the Gaussian experts')
            return
        gram = expert_design_gram(model, kernels, rows, result.params, self.gating)
        # the standardisation of the experts' own columns
        x_mean, x_scale = model.expert_view(self._x_mean), model.expert_view(self._x_scale)
        previous = getattr(self, "_expert_gram", None)
        if getattr(self, "_stream", None) is not None and previous is not None \
                and previous.shape == gram.shape:
            # partial_fit: the stream's rows so far, re-expressed in the current scaling
            gram += restandardised_gram(previous, self._expert_gram_scaling, x_mean, x_scale)
        self._expert_gram = gram
        self._expert_gram_scaling = np.stack([x_mean, x_scale]).astype(float)

    @single_threaded_blas
    def predict_experts(self, X):
        """Each expert's prediction: x w_k + c_k (a Student-t expert's location), or the
        rate exp(x w_k + c_k) for ``expert="poisson"`` (x: the expert's columns).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        predictions : ndarray of shape (n_samples, n_experts) or \
                (n_samples, n_experts, n_targets)
            A CuPy array for CuPy input.
        """
        (means,) = self._map_rows(X, lambda Xs, kernels: (self._expert_means(Xs, kernels),))
        return as_caller(self._squeeze_targets(means, 2), X)

    def score(self, X, y, sample_weight=None):
        """Coefficient of determination R^2 of ``predict(X)``, as ``RegressorMixin.score``.

        CuPy input is predicted on the device; only the predictions, ``y``
        and ``sample_weight`` cross to the host, where the metric is
        computed.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
        """
        if is_dask_input(X):  # one pass on the workers
            return dask_support().r2_score(self.predict(X), y, sample_weight)
        y_pred = to_host(self.predict(X))
        return r2_score(to_host(y), y_pred, sample_weight=to_host(sample_weight))


def _check_estimator_solver(est):
    """Estimator experts are trained by EM only (they have no gradient)."""
    if est.solver != "em":
        raise ValueError(
            f"solver={est.solver!r} cannot train expert={type(est.expert).__name__}: "
            "scikit-learn estimators as experts have no gradient in their parameters, so "
            "they are trained by generalised EM only. Use solver='em'."
        )
