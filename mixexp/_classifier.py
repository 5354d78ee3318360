"""MixtureOfExpertsClassifier: multinomial logistic experts behind a softmax gate."""

import warnings

import numpy as np
from scipy.special import logsumexp
from sklearn.base import ClassifierMixin, _fit_context, clone
from sklearn.exceptions import DataConversionWarning
from sklearn.metrics import accuracy_score
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, check_classification_targets
from sklearn.utils.validation import column_or_1d

from ._backend import (
    array_namespace,
    as_caller,
    is_device_array,
    single_threaded_blas,
    to_host,
)
from ._base import BaseMixtureOfExperts
from ._experts import LogisticExperts
from ._experts._estimator import EstimatorClassificationExperts, check_expert_estimator
from ._experts._family import user_scale_penalty
from ._experts._logistic import class_penalty_factor
from ._inference import InferenceMixin
from ._validation import dask_support, is_dask_input


class MixtureOfExpertsClassifier(InferenceMixin, ClassifierMixin, BaseMixtureOfExperts):
    r"""Mixture of multinomial logistic experts with a softmax gate, trained by EM or by gradient.

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
    multinomial logistic regressions. With soft gating each EM iteration is
    one pass over the rows: the E-step's pass also sums every expert's and
    the gate's gradient and Hessian, each takes one Newton step, and the
    next pass checks the steps (halving them if the objective fell). Experts
    with more than 160 parameters (and hard gating or load balancing) use
    the multi-pass M-step: warm-started Newton steps with a line search, or
    L-BFGS for such experts (the gate by bound steps above 160 parameters).
    The penalised log-likelihood never decreases. A
    binary problem is the two-class case of the same model.

    Parameters
    ----------
    n_experts : int, default=3
        Number of experts K. An expert that loses every sample (its
        responsibilities vanish) is re-initialised by EM when that improves
        the fit; otherwise it is kept with a zero gate and a
        ``ConvergenceWarning`` names it (see the user guide, "Vanished
        experts").
    expert : "logistic" or estimator, default="logistic"
        The experts. ``"logistic"``: multinomial logistic regressions (the
        model above). Or any scikit-learn classifier whose ``fit`` takes
        ``sample_weight`` and that has ``predict_proba`` (for example
        ``DecisionTreeClassifier(max_depth=3)``), trained by generalised
        EM: each expert is a clone fitted on the class indices, the
        experts' columns on the user's scale, and the responsibilities
        times the sample weights as ``sample_weight``; its density is its
        ``predict_proba``, aligned to the classes by the clone's
        ``classes_`` (a class it never saw gets probability 0) and floored
        at 1e-10 before the log. A new clone that fits its weights worse
        than the expert it replaces is dropped, so EM never lowers its
        objective. ``alpha`` then penalises the gate only; an L2
        ``LogisticRegression(C=1 / (2 * alpha))`` expert has the penalty of
        ``expert="logistic"`` with that alpha, and is counted in the
        objective. EM only; no ``summary``; ``bic`` / ``aic`` count
        ``LogisticRegression`` experts as logistic ones and raise a
        ValueError for other estimators; ``warm_start`` cannot add experts.
        The fitted clones are ``experts_``. See the user guide,
        "Scikit-learn estimators as experts".
    gate_features : array-like or None, default=None
        Columns of X the gate sees (flexmix's *concomitant variables*):
        integer indices, column names (DataFrame input only) or a boolean
        mask of length n_features. None: every column. Columns keep the
        order given; ``gate_coef_`` has one column per selected feature. An
        empty selection gives a gate of constant mixing proportions (a
        plain mixture of classifiers, flexmix's model without a concomitant
        model).
    expert_features : array-like or None, default=None
        Columns of X the experts see, selected as ``gate_features``; None:
        every column. An empty selection gives constant experts (class priors of their own)
        gated by the gate's columns. The gate and the experts may share
        columns, and need not cover X between them.
    solver : {"em", "lbfgs", "adam"}, default="em"
        Training method; all three maximise the same penalised objective,
        so their fits can be compared. ``"em"``: expectation-maximisation
        (Jordan & Jacobs 1994), monotone. ``"lbfgs"``: full-batch L-BFGS on
        all gate and expert parameters at once, with the analytic gradient
        computed from the responsibilities (Jacobs et al. 1991).
        ``"adam"``: mini-batch Adam (``batch_size``, ``learning_rate_init``,
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
        ``predict_proba``, ``predict_log_proba``,
        ``log_likelihood`` and ``predict_responsibilities`` follow it,
        ``predict_gate`` stays the dense softmax. ``top_k=n_experts`` is
        soft gating. Training fits the dense model (an EM step is not
        defined for a gate whose support moves, and the top-k likelihood
        jumps where the kept set changes, which stalls L-BFGS), except with
        ``gate_noise > 0``: Adam then trains the noisy top-k model itself
        (Shazeer et al. 2017), which needs ``top_k >= 2``.
    alpha : float, default=0.5
        L2 penalty ``alpha * ||w||^2`` added to the negative total
        log-likelihood, intercepts unpenalised. On the experts it acts on the
        weights on the user's scale: ``alpha = 1 / (2 C)`` matches
        :class:`~sklearn.linear_model.LogisticRegression`'s ``C``, so the
        default matches its default ``C=1.0``. With three or more classes
        ``w`` is every class's weights (centred over the classes), as in the
        multinomial model; with two classes it is the weight of the one
        logit ``w_1 - w_0``, as in the binary model. On
        the gate it acts on the weights of the internally standardised
        inputs.
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
    max_iter : int, default=1000
        Iterations per start, at most: EM or L-BFGS iterations, Adam
        epochs. Classification likelihoods are often flat (EM needed about
        400 iterations on pure-noise labels), so the default is higher than
        the regressor's.
    tol : float, default=1e-6
        Convergence threshold on the gain in mean penalised log-likelihood
        per sample between two iterations (L-BFGS: three iterations in a row;
        Adam: see ``n_iter_no_change``).
    n_init : int, default=1
        Number of starts; the best penalised log-likelihood is kept. Start
        ``i`` is the same whatever ``n_init`` is, so more starts never give
        a worse fit.
    init_params : {"kmeans", "random"}, default="kmeans"
        ``"kmeans"``: the first start clusters the standardised inputs and
        one-hot classes with weighted k-means, later ones alternate with
        random responsibilities and random partitions. ``"random"``: random
        starts only. Every solver starts from the same points.
    batch_size : int or "auto", default="auto"
        Mini-batch size of ``solver="adam"``; ``"auto"`` is
        ``min(200, n_samples)``. Ignored by the other solvers.
    learning_rate_init : float, default=0.01
        Step size of ``solver="adam"``. Parameters move in units where the
        inputs are standardised, so it does not depend on the data's scale.
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
        array type (CuPy in, CuPy out; labels that CuPy cannot hold, such as
        strings, come back as NumPy arrays). ``"auto"`` picks CuPy for CuPy
        input, else Numba when it can be imported, else NumPy, and never
        fails; an explicit ``"numba"`` or ``"cupy"`` that cannot be imported
        raises an ImportError naming what to install (``"cupy"`` without a
        GPU, a RuntimeError). Fitted attributes are NumPy arrays.
    warm_start : bool, default=False
        If True and the estimator is already fitted on data with the same
        features and classes, fit starts from the previous solution (and
        ``n_init`` is ignored). If ``n_experts`` changed in between, the
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
        1 prints each start's outcome, 2 also every EM iteration.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, sorted.
    gate_coef_ : ndarray of shape (n_experts, n_gate_features)
        Gate weights v_k, on the user's scale, one column per column of
        ``gate_features`` (n_gate_features = n_features without a
        selection).
    gate_intercept_ : ndarray of shape (n_experts,)
        Gate intercepts b_k (centred).
    expert_coef_ : ndarray of shape (n_experts, n_classes, n_expert_features)
        Each expert's class weights w_kc (centred over classes), one column
        per column of ``expert_features`` (n_expert_features = n_features
        without a selection).
    expert_intercept_ : ndarray of shape (n_experts, n_classes)
        Each expert's class intercepts b_kc (centred over classes).
    experts_ : list of estimators
        The fitted clones, one per expert (only when ``expert`` is a
        scikit-learn classifier, which then leaves no ``expert_coef_`` or
        ``expert_intercept_``).
    expert_usage_ : ndarray of shape (n_experts,)
        Fraction of the training weight each expert takes: the weighted
        mean of the gate that prediction uses (one-hot for hard gating,
        renormalised top-k with ``top_k``). Sums to 1; near-zero entries
        show a collapsed gate (see ``balance``).
    n_iter_ : int
        Iterations of the returned run (Adam: epochs; ``partial_fit``
        counts one per call).
    converged_ : bool
        Whether the returned run met ``tol``.
    log_likelihood_ : float
        Mean (weighted) training log-likelihood of the returned model, under
        the gating that prediction uses (``gating``, ``top_k``).
    log_likelihood_history_ : ndarray of shape (`n_iter_`,)
        Mean training log-likelihood after each iteration (for hard gating,
        the classification log-likelihood that training maximises).
    objective_history_ : ndarray of shape (`n_iter_`,)
        Mean penalised log-likelihood after each iteration (what the solver
        maximises, ``balance`` penalty included; non-decreasing). Adam
        records the best parameters so far, which are the ones it returns;
        ``partial_fit`` appends each call's objective on its own batch,
        which need not increase.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
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
    .. [3] N. Shazeer, A. Mirhoseini, K. Maziarz, A. Davis, Q. Le, G. Hinton
       and J. Dean, "Outrageously large neural networks: the sparsely-gated
       mixture-of-experts layer", ICLR 2017.
    .. [4] G. Celeux and G. Govaert, "A classification EM algorithm for
       clustering and two stochastic versions", Computational Statistics &
       Data Analysis 14(3), 1992.

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

    _parameter_constraints: dict = {
        **BaseMixtureOfExperts._parameter_constraints,
        # or any scikit-learn classifier (checked by check_expert_estimator when fitting)
        "expert": [StrOptions({"logistic"}), HasMethods(["fit", "predict"])],
    }
    _y_numeric = False
    _multi_output = False

    def __init__(
        self,
        n_experts=3,
        *,
        expert="logistic",
        gate_features=None,
        expert_features=None,
        solver="em",
        gating="soft",
        top_k=None,
        alpha=0.5,
        balance=0.0,
        gate_noise=0.0,
        max_iter=1000,
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

    @available_if(BaseMixtureOfExperts._check_partial_fit_solver)
    @_fit_context(prefer_skip_nested_validation=True)
    @single_threaded_blas
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch of mini-batch Adam over (X, y), continuing from the current model.

        Only with ``solver="adam"``. The first call (on an unfitted
        estimator) needs ``classes``, since a batch need not contain every
        class; it initialises the model from its batch. Later calls, and
        calls after ``fit``, continue from the current parameters and Adam
        state; the input standardisation follows the running statistics
        of the stream (see the user guide, "Training"). Each call
        adds one entry to the histories (the objective on its own batch,
        which need not increase) and counts one iteration in ``n_iter_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        classes : array-like of shape (n_classes,), default=None
            Every class of the stream; required on the first call, and if
            given later it must equal ``classes_``.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : object
        """
        classes = to_host(classes)  # classes_ is a host array, also for CuPy input
        if _check_partial_fit_first_call(self, classes) and self.classes_.size < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 classes, got classes={classes!r}."
            )
        return self._partial_fit(X, y, sample_weight)

    # ---- hooks -----------------------------------------------------------
    def _encode_partial_targets(self, y, first_call):
        # classes_ was set from ``classes`` by partial_fit, not from this batch
        self._n_targets = self.classes_.size
        return self._encode_targets(y, fitting=False)

    def _encode_targets(self, y, *, fitting):
        """One-hot classes (n, C); learns ``classes_`` when fitting.

        CuPy labels are encoded on the device (``classes_`` is a host array).
        """
        if is_device_array(y):
            return self._encode_device_targets(y, fitting)
        if fitting:
            check_classification_targets(y)
            self.classes_, codes = np.unique(y, return_inverse=True)
            self._set_n_classes()
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

    def _set_n_classes(self):
        """Check the fitted ``classes_`` (at least two) and set the target count."""
        if self.classes_.size < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes in the data, "
                f"but the data contains only one class: {self.classes_.tolist()[0]!r}."
            )
        self._n_targets = self.classes_.size

    def _encode_device_targets(self, y, fitting):
        """:meth:`_encode_targets` for CuPy labels, on the device."""
        xp = array_namespace(y)
        y = _device_labels(y)
        if fitting:
            classes, codes = xp.unique(y, return_inverse=True)
            self.classes_ = to_host(classes)
            self._set_n_classes()
        else:
            if self.classes_.dtype.kind in "biuf":
                unseen = ~xp.isin(y, xp.asarray(self.classes_))
            else:  # string or object classes: CuPy labels match none of them
                unseen = xp.ones(y.shape, dtype=bool)
            if bool(unseen.any()):
                raise ValueError(
                    f"y contains labels not seen during fit: {to_host(xp.unique(y[unseen]))[:5]!r}"
                    f"; known classes are {self.classes_!r}."
                )
            codes = xp.searchsorted(xp.asarray(self.classes_), y)
        return (codes.reshape(-1, 1) == xp.arange(self.classes_.size)).astype(np.float64)

    def _expert_option(self):
        # (the hierarchical classifier has no ``expert`` option: logistic experts)
        return getattr(self, "expert", "logistic")

    def _family_class(self):
        if getattr(self, "_expert_kind", "logistic") == "estimator":
            return EstimatorClassificationExperts
        return LogisticExperts

    def _same_family(self):
        kind = "logistic" if isinstance(self._expert_option(), str) else "estimator"
        return getattr(self, "_expert_kind", "logistic") == kind

    def _check_solver_options(self):
        super()._check_solver_options()
        expert = self._expert_option()
        if not isinstance(expert, str):
            check_expert_estimator(expert, "classifier")
            if self.solver != "em":
                raise ValueError(
                    f"solver={self.solver!r} cannot train expert={type(expert).__name__}: "
                    "scikit-learn estimators as experts have no gradient in their "
                    "parameters, so they are trained by generalised EM only. Use "
                    "solver='em'."
                )

    def _warm_startable(self, n_features, n_targets, columns):
        startable = super()._warm_startable(n_features, n_targets, columns)
        if (startable and getattr(self, "_expert_kind", "logistic") == "estimator"
                and self.n_experts > self._fitted_n_experts):
            raise ValueError(
                f"warm_start cannot grow classifier estimator experts from "
                f"{self._fitted_n_experts} to n_experts={self.n_experts}: a split expert's "
                "halves are the same fitted clone with the same gate, and EM would never "
                "tell them apart. Fit from scratch (warm_start=False)."
            )
        return startable

    def _make_family(self, x_scale, Y, sample_weight, alpha, x_mean=None):
        expert = self._expert_option()
        self._expert_kind = "logistic" if isinstance(expert, str) else "estimator"
        if self._expert_kind == "estimator":
            # the estimator's own regularisation stands in for alpha (the gate's only)
            return EstimatorClassificationExperts(
                estimator=clone(expert), x_mean=to_host(x_mean), x_scale=to_host(x_scale),
                n_classes=Y.shape[1],
                seed=check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        factor = class_penalty_factor(Y.shape[1])
        return LogisticExperts(weight_penalty=factor * user_scale_penalty(alpha, x_scale))

    # ---- prediction --------------------------------------------------------
    def _expert_log_proba(self, Xs, kernels):
        model = self._fitted_model
        return model.family.log_proba(kernels, model.expert_view(Xs), self._params["experts"])

    @single_threaded_blas
    def predict_log_proba(self, X):
        """Log of the mixture's class probabilities, computed in log space.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``. A CuPy array for CuPy input, a lazy
            Dask array for Dask input.
        """
        def log_proba(Xs, kernels):
            log_joint = (self._log_gate(Xs, kernels)[:, :, None]
                         + self._expert_log_proba(Xs, kernels))
            return (_log_sum_over_experts(log_joint),)

        return as_caller(self._map_rows(X, log_proba)[0], X)

    def predict_proba(self, X):
        """Class probabilities sum_k g_k(x) p_k(y = c | x).

        The gate g is the one ``gating`` and ``top_k`` define: the argmax
        expert alone for hard gating, the renormalised top-k mixture with
        ``top_k``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Rows sum to 1; columns follow ``classes_``. A CuPy array for
            CuPy input, a lazy Dask array for Dask input (also for a Dask
            DataFrame).
        """
        log_proba = self.predict_log_proba(X)
        proba = array_namespace(log_proba).exp(log_proba)
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
            A CuPy array for CuPy input, unless the classes are labels CuPy
            cannot hold (strings, objects); a lazy Dask array for Dask
            input (also for a Dask DataFrame).
        """
        log_proba = self.predict_log_proba(X)  # checks fitted before classes_ is read
        xp = array_namespace(log_proba)
        index = xp.argmax(log_proba, axis=1)
        if is_device_array(index) and self.classes_.dtype.kind in "biuf":
            return xp.asarray(self.classes_)[index]
        if is_dask_input(index):  # labels looked up block by block, lazily
            return index.map_blocks(_labels, self.classes_, dtype=self.classes_.dtype)
        return self.classes_[to_host(index)]

    @single_threaded_blas
    def predict_experts(self, X):
        """Each expert's class probabilities p_k(y = c | x).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_experts, n_classes)
            A CuPy array for CuPy input.
        """
        (proba,) = self._map_rows(
            X, lambda Xs, kernels: (kernels.xp.exp(self._expert_log_proba(Xs, kernels)),))
        return as_caller(proba, X)

    def score(self, X, y, sample_weight=None):
        """Accuracy of ``predict(X)``, as ``ClassifierMixin.score``.

        CuPy input is predicted on the device; only the predicted labels,
        ``y`` and ``sample_weight`` cross to the host, where the metric is
        computed.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
        """
        if is_dask_input(X):  # one pass on the workers
            return dask_support().accuracy(self.predict(X), y, sample_weight)
        y_pred = to_host(self.predict(X))
        return accuracy_score(to_host(y), y_pred, sample_weight=to_host(sample_weight))


def _labels(index, classes):
    """``classes[index]`` (a block of predicted class indices)."""
    return classes[index]


def _device_labels(y):
    """CuPy class labels as 1-D, refusing continuous values as check_classification_targets does."""
    xp = array_namespace(y)
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected. Please change the "
            "shape of y to (n_samples, ), for example using ravel().",
            DataConversionWarning, stacklevel=4,
        )
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"y should be a 1d array, got an array of shape {y.shape} instead.")
    if y.dtype.kind == "f" and not bool(xp.all(y == xp.floor(y))):
        raise ValueError(
            "Unknown label type: continuous. Maybe you are trying to fit a classifier, which "
            "expects discrete classes on a regression target with continuous values."
        )
    return y


def _log_sum_over_experts(log_joint):
    """log sum_k exp(log_joint[:, k, :]): (n, C).

    SciPy's logsumexp on the host; the same shifted formula on the device.
    """
    if not is_device_array(log_joint):
        return logsumexp(log_joint, axis=1)
    xp = array_namespace(log_joint)
    shift = xp.max(log_joint, axis=1, keepdims=True)
    shift = xp.where(xp.isfinite(shift), shift, xp.zeros_like(shift))
    return xp.log(xp.sum(xp.exp(log_joint - shift), axis=1)) + shift[:, 0]
