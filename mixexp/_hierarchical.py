"""Hierarchical mixtures of experts (Jordan & Jacobs 1994): a tree of gates over the experts.

The estimators here are the flat ones with the softmax gate replaced by a
:class:`~mixexp._gates._tree.TreeGate`: the same expert families, solvers
(EM and L-BFGS), gating modes at the leaves, backends and model choice.
What a fixed tree cannot do is refused with a clear error: resizing the
tree by ``warm_start`` (its shape is ``branching``), gate noise (which
perturbs a flat gate's logits), mini-batch training and standard errors
(not derived for trees yet). Load balancing evens the leaves' usage.

Initialisation: the flat model's starting responsibilities (k-means or
random, as for the flat estimators) are arranged so that siblings start
alike: the clusters are ordered along the leading direction of their
centres and cut into contiguous groups, level by level.
"""

import math
from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._backend import as_caller, single_threaded_blas
from ._classifier import MixtureOfExpertsClassifier
from ._gates import TreeGate
from ._model import MixtureModel
from ._regressor import MixtureOfExpertsRegressor

# Options of the flat estimators that a tree does not take (see the module
# docstring); the estimators read them, so they keep their neutral values.
_FIXED_OPTIONS = {
    "gate_noise": 0.0,
    "batch_size": "auto",
    "learning_rate_init": 0.01,
    "shuffle": True,
    "n_iter_no_change": 10,
}


def check_branching(branching):
    """``branching`` as a tuple of positive ints, or a ValueError naming the problem."""
    if isinstance(branching, (Integral, np.integer)) and not isinstance(branching, bool):
        branching = (branching,)
    try:
        values = tuple(branching)
    except TypeError:
        raise ValueError(f"branching must be a tuple of positive ints, one per level of the "
                         f"tree (for example (2, 2)), got {branching!r}.") from None
    if not values or any(isinstance(b, bool) or not isinstance(b, (Integral, np.integer))
                         or b < 1 for b in values):
        raise ValueError(f"branching must be a non-empty tuple of positive ints, one per level "
                         f"of the tree (for example (2, 2)), got {branching!r}.")
    return tuple(int(b) for b in values)


def arrange_leaves(resp, Z, weight, branching):
    """Columns of ``resp`` (n, K) reordered so that clusters in one subtree are alike.

    Each cluster's centre is its responsibility-weighted mean of ``Z``; at
    each level but the last the clusters of a subtree are sorted along the
    leading principal direction of their centres and cut into
    ``branching[level]`` contiguous groups (depth-first leaf order, as the
    tree numbers leaves).
    """
    mass = (resp * weight[:, None]).sum(axis=0)
    centres = (resp * weight[:, None]).T @ Z / np.maximum(mass, 1e-300)[:, None]

    def order(clusters, level):
        # the last level's order within a subtree does not matter (a
        # one-level tree keeps the flat model's start exactly)
        if level >= len(branching) - 1 or len(clusters) <= 1:
            return list(clusters)
        points = centres[clusters] - centres[clusters].mean(axis=0)
        direction = np.linalg.svd(points, full_matrices=False)[2][0] if points.any() else None
        ranked = (clusters if direction is None
                  else [clusters[i] for i in np.argsort(points @ direction, kind="stable")])
        size = len(ranked) // branching[level]
        return [leaf for child in range(branching[level])
                for leaf in order(ranked[child * size:(child + 1) * size], level + 1)]

    return resp[:, order(list(range(resp.shape[1])), 0)]


class _HierarchicalMixin:
    """What the hierarchical estimators change in the flat ones."""

    # the flat estimators' options a tree does not take: the shared code
    # reads them, so they keep their neutral values (not parameters here)
    gate_noise = _FIXED_OPTIONS["gate_noise"]
    batch_size = _FIXED_OPTIONS["batch_size"]
    learning_rate_init = _FIXED_OPTIONS["learning_rate_init"]
    shuffle = _FIXED_OPTIONS["shuffle"]
    n_iter_no_change = _FIXED_OPTIONS["n_iter_no_change"]

    _fewer_experts_hint = "a smaller branching"

    def _revival_note(self, local=True):
        return "the leaves of a tree of fixed shape are not re-initialised"

    @property
    def n_experts(self):
        """Leaves of the tree: the product of ``branching``."""
        return math.prod(check_branching(self.branching))

    def _check_solver_options(self):
        check_branching(self.branching)
        super()._check_solver_options()

    def _make_model(self, family, weight_exponent=0, columns=(None, None)):
        return MixtureModel(TreeGate(self._gate_alpha(weight_exponent),
                                     check_branching(self.branching)), family, *columns)

    @property
    def _fitted_model(self):
        model = super()._fitted_model
        if getattr(self, "_fitted_branching", None) is not None:
            model.gate = TreeGate(model.gate.alpha, self._fitted_branching)
        return model

    def _arrange_initial_responsibilities(self, resp, Z, weight):
        return arrange_leaves(resp, Z, weight, check_branching(self.branching))

    def _warm_startable(self, n_features, n_targets, columns=(None, None)):
        if not super()._warm_startable(n_features, n_targets, columns):
            return False
        if self._fitted_branching != check_branching(self.branching):
            raise ValueError(
                f"warm_start needs the tree of the previous fit, branching="
                f"{self._fitted_branching}, not {check_branching(self.branching)}: a "
                "hierarchical mixture cannot be grown or pruned. Set warm_start=False.")
        return True

    def _store_fit(self, model, params, n_features, n_outputs):
        self._fitted_branching = model.gate.branching
        super()._store_fit(model, params, n_features, n_outputs)

    @single_threaded_blas
    def predict_node_gates(self, X):
        """Each internal node's own gate over its children.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        node_gates : list of ndarray
            One array per level l of shape (n_samples, N_l, branching[l]):
            the probability that node j of level l sends x to each of its
            children (rows sum to 1 over the last axis). Level 0 is the
            root (N_0 = 1). A CuPy array per level for CuPy input.
        """
        check_is_fitted(self)
        model = self._fitted_model
        gate = model.gate

        def node_gates(Xs, kernels):
            xp, Xg = kernels.xp, model.gate_view(Xs)
            return tuple(xp.stack([xp.exp(log_g) for log_g in
                                   gate.node_log_gates(kernels, Xg, self._params["gate"],
                                                       level)], axis=1)
                         for level in range(gate.depth))

        return [as_caller(level, X) for level in self._map_rows(X, node_gates)]

    # ---- what a tree does not take -----------------------------------------
    def summary(self, *args, **kwargs):
        """Not available for hierarchical mixtures yet: raises ValueError
        (``parameter_covariance`` likewise; ``icl``, ``bic`` and ``aic`` work)."""
        raise ValueError(f"Standard errors are not derived for {type(self).__name__} yet; "
                         "use bic/aic or held-out log-likelihood to compare models.")

    parameter_covariance = summary


def _tree_constraints(flat):
    constraints = {key: value for key, value in flat._parameter_constraints.items()
                   if key not in _FIXED_OPTIONS and key != "n_experts"}
    constraints["branching"] = ["array-like", Interval(Integral, 1, None, closed="left")]
    constraints["solver"] = [StrOptions({"em", "lbfgs"})]
    return constraints


class HierarchicalMixtureOfExpertsRegressor(_HierarchicalMixin, MixtureOfExpertsRegressor):
    r"""Hierarchical mixture of linear-Gaussian experts (Jordan & Jacobs 1994), trained by EM.

    A tree of softmax gates splits the input space softly, level by level;
    linear-Gaussian experts sit at the leaves:

    .. math::

        p(y \mid x) = \sum_{k} g_k(x)\, \mathcal{N}(y;\ x^\top w_k + c_k,\ \sigma_k^2),
        \qquad g_k(x) = \prod_{l} g_{c_l(k) \mid j_l(k)}(x),

    the leaf prior being the product of the node gates on its path.
    ``branching=(K,)`` is :class:`MixtureOfExpertsRegressor` with K
    experts. EM's E-step gives the leaves' posteriors; its M-step fits
    each expert as in the flat model and each node's gate by a weighted
    multinomial logistic regression on the summed posteriors of its
    subtrees. The penalised log-likelihood never decreases.

    Parameters
    ----------
    branching : tuple of int, default=(2, 2)
        Children of each node, level by level from the root: (2, 2) is a
        root with two children, each with two leaf experts. The number of
        experts is the product.
    expert : {"gaussian", "student_t", "poisson"} or estimator, default="gaussian"
        The leaf experts' family, as in :class:`MixtureOfExpertsRegressor`
        (a scikit-learn regressor too: generalised EM, ``solver="em"``).
    gate_features, expert_features : array-like of int, str or bool, default=None
        The columns every node gate and the experts see (flexmix's
        concomitant variables), as in :class:`MixtureOfExpertsRegressor`;
        None: every column.
    solver : {"em", "lbfgs"}, default="em"
        EM, or full-batch L-BFGS on all parameters (as in the flat
        estimator).
    gating : {"soft", "hard"}, default="soft"
        As in :class:`MixtureOfExpertsRegressor`, at the leaves.
    top_k : int or None, default=None
        Prediction mixes only each sample's ``top_k`` most probable leaves.
    alpha : "auto" or float, default="auto"
        L2 penalty on every node's gate weights and on the expert weights,
        as in :class:`MixtureOfExpertsRegressor`: with ``"auto"`` every
        node's gate gets 0.01 per standardised weight and each leaf expert
        its own penalty, chosen by generalised cross-validation.
    balance : float, default=0.0
        Load balancing of the leaves' usage, as in
        :class:`MixtureOfExpertsRegressor` (the squared coefficient of
        variation of the leaves' mean gate, in nats per sample).
    variance_floor : float, default=1e-6
    max_iter : int, default=300
    tol : float, default=1e-6
    n_init : int, default=1
        Starts; the best penalised log-likelihood is kept.
    init_params : {"kmeans", "random"}, default="kmeans"
        Starting responsibilities of the leaves; clusters that are close
        start as siblings.
    backend : {"auto", "numba", "numpy", "cupy"}, default="auto"
    warm_start : bool, default=False
        Start from the previous fit, which must have the same ``branching``.
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0

    Attributes
    ----------
    node_coef_ : list of ndarray
        One array per level l, of shape (N_l, branching[l], n_gate_features):
        the gate weights of node j of level l for each of its children, on
        the user's scale (N_l = branching[0] * ... * branching[l - 1];
        n_gate_features: the columns of ``gate_features``, all by default).
    node_intercept_ : list of ndarray
        One array per level, of shape (N_l, branching[l]).
    expert_coef_, expert_intercept_, expert_variance_ : ndarray
        The leaf experts, as in :class:`MixtureOfExpertsRegressor` (leaves
        in depth-first order: leaf k is child k % b_last of its parent).
    expert_alpha_ : ndarray of shape (n_leaves,)
        With ``alpha="auto"``: each leaf expert's penalty per standardised
        weight, as in :class:`MixtureOfExpertsRegressor`.
    expert_usage_, n_iter_, converged_, log_likelihood_ : as in the flat estimator
    log_likelihood_history_, objective_history_ : ndarray of shape (`n_iter_`,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)

    See Also
    --------
    MixtureOfExpertsRegressor : The flat mixture (``branching=(K,)``).

    References
    ----------
    .. [1] M. I. Jordan and R. A. Jacobs, "Hierarchical mixtures of experts
       and the EM algorithm", Neural Computation 6(2), 1994.

    Examples
    --------
    >>> from mixexp import HierarchicalMixtureOfExpertsRegressor
    >>> from mixexp.datasets import make_moe_regression
    >>> X, y, _ = make_moe_regression(n_samples=500, n_features=2, n_experts=4,
    ...                               noise=0.1, random_state=0)
    >>> est = HierarchicalMixtureOfExpertsRegressor(branching=(2, 2), random_state=0)
    >>> est.fit(X, y).predict_gate(X[:2]).shape
    (2, 4)
    >>> [g.shape for g in est.predict_node_gates(X[:2])]
    [(2, 1, 2), (2, 2, 2)]
    """

    _parameter_constraints: dict = _tree_constraints(MixtureOfExpertsRegressor)

    def __init__(
        self,
        branching=(2, 2),
        *,
        expert="gaussian",
        gate_features=None,
        expert_features=None,
        solver="em",
        gating="soft",
        top_k=None,
        alpha="auto",
        balance=0.0,
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
        self.branching = branching
        self.expert = expert
        self.gate_features = gate_features
        self.expert_features = expert_features
        self.solver = solver
        self.gating = gating
        self.top_k = top_k
        self.alpha = alpha
        self.balance = balance
        self.variance_floor = variance_floor
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.init_params = init_params
        self.backend = backend
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose


class HierarchicalMixtureOfExpertsClassifier(_HierarchicalMixin, MixtureOfExpertsClassifier):
    r"""Hierarchical mixture of multinomial logistic experts (Jordan & Jacobs 1994).

    The classifier counterpart of
    :class:`HierarchicalMixtureOfExpertsRegressor`: a tree of softmax gates
    over logistic-regression experts at the leaves, trained by EM (or
    L-BFGS). ``branching=(K,)`` is :class:`MixtureOfExpertsClassifier`
    with K experts.

    Parameters
    ----------
    branching : tuple of int, default=(2, 2)
        Children of each node, level by level from the root.
    gate_features, expert_features : array-like of int, str or bool, default=None
        The columns every node gate and the experts see, as in
        :class:`MixtureOfExpertsClassifier`; None: every column.
    solver : {"em", "lbfgs"}, default="em"
    gating : {"soft", "hard"}, default="soft"
    top_k : int or None, default=None
    alpha : float, default=0.5
        L2 penalty on every node's gate weights and on the expert weights
        (as in the flat classifier).
    balance : float, default=0.0
        Load balancing of the leaves' usage, as in
        :class:`MixtureOfExpertsClassifier`.
    max_iter : int, default=1000
    tol : float, default=1e-6
    n_init : int, default=1
    init_params : {"kmeans", "random"}, default="kmeans"
    backend : {"auto", "numba", "numpy", "cupy"}, default="auto"
    warm_start : bool, default=False
        Start from the previous fit, which must have the same ``branching``.
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    node_coef_ : list of ndarray
        One array per level l, of shape (N_l, branching[l], n_gate_features).
    node_intercept_ : list of ndarray
        One array per level, of shape (N_l, branching[l]).
    expert_coef_, expert_intercept_ : ndarray
        The leaf experts, as in :class:`MixtureOfExpertsClassifier`.
    expert_usage_, n_iter_, converged_, log_likelihood_ : as in the flat estimator
    log_likelihood_history_, objective_history_ : ndarray of shape (`n_iter_`,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)

    See Also
    --------
    MixtureOfExpertsClassifier : The flat mixture (``branching=(K,)``).

    Examples
    --------
    >>> from mixexp import HierarchicalMixtureOfExpertsClassifier
    >>> from mixexp.datasets import make_moe_classification
    >>> X, y, _ = make_moe_classification(n_samples=300, n_features=2, n_experts=4,
    ...                                   random_state=0)
    >>> est = HierarchicalMixtureOfExpertsClassifier(branching=(2, 2), random_state=0)
    >>> est.fit(X, y).predict_proba(X[:2]).shape
    (2, 2)
    """

    _parameter_constraints: dict = _tree_constraints(MixtureOfExpertsClassifier)

    def __init__(
        self,
        branching=(2, 2),
        *,
        gate_features=None,
        expert_features=None,
        solver="em",
        gating="soft",
        top_k=None,
        alpha=0.5,
        balance=0.0,
        max_iter=1000,
        tol=1e-6,
        n_init=1,
        init_params="kmeans",
        backend="auto",
        warm_start=False,
        random_state=None,
        verbose=0,
    ):
        self.branching = branching
        self.gate_features = gate_features
        self.expert_features = expert_features
        self.solver = solver
        self.gating = gating
        self.top_k = top_k
        self.alpha = alpha
        self.balance = balance
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.init_params = init_params
        self.backend = backend
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose

