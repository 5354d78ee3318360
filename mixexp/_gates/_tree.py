"""A tree of softmax gates: the prior of a hierarchical mixture of experts.

Jordan & Jacobs (1994): each internal node of a tree splits its input
space softly among its children with a softmax of linear functions of x;
the experts sit at the leaves. A leaf's prior is the product of the gates
along its path from the root, so its log prior is a sum of log-softmaxes:

    log g_k(x) = sum_l log softmax_{c_l(k)}(x . v_{l, j_l(k)} + b_{l, j_l(k)})

where j_l(k) is the node of level l on the path to leaf k and c_l(k) the
child taken there.

The tree is uniform: ``branching = (b_0, ..., b_{L-1})`` gives level l
N_l = b_0 ... b_{l-1} nodes of b_l children each, and N_L leaves; leaves
are numbered depth first, so the leaves under child c of node j of level l
are a contiguous block. Parameters: ``{"coef_l": (N_l, b_l, d),
"intercept_l": (N_l, b_l)}`` for each level l. ``branching=(K,)`` is the
flat softmax gate of K experts, with the same numbers.

Every node's gate is a :class:`SoftmaxGate` of its own (penalty, Newton or
bound step, one-pass statistics), fitted on the soft targets of its
children: the summed posteriors of the leaves below each child. The gate's
objective sum_ik W_ik log g_ik is a sum over nodes of such multinomial
logistic objectives, so improving every node improves the whole: EM stays
monotone (Jordan & Jacobs 1994, section 4).
"""

import math

import numpy as np

from .._balance import balance_log_prior_gradient
from .._logistic import fit_multinomial_logistic
from .._parameters import Coordinates
from ._softmax import BALANCED_GATE_STEPS, SoftmaxGate


class _TreeCoordinates(Coordinates):
    """Every node's parameters as they are; each node's softmax shift removed."""

    def project_part(self, flat):
        # a common shift of one node's children changes no probability;
        # removing it can only lower the L2 penalty
        for key in self.keys:
            values = self.view(flat, key)
            values -= values.mean(axis=1, keepdims=True)


class TreeGate:
    """Softmax gates at the internal nodes of a uniform tree; the experts are its leaves.

    Parameters
    ----------
    alpha : float
        L2 penalty alpha * ||V||^2 on every node's gate weights (not the
        intercepts).
    branching : tuple of int
        Children of each node, level by level from the root.
    """

    # the tree's shape is fixed: experts cannot be split, pruned or revived
    resizable = False

    def __init__(self, alpha, branching):
        self.alpha = float(alpha)
        self.branching = tuple(int(b) for b in branching)
        self._node_gate = SoftmaxGate(alpha)
        # nodes per level, and leaves below each child of a node of that level
        self.n_nodes = [math.prod(self.branching[:level]) for level in range(self.depth)]
        self.leaves_per_child = [math.prod(self.branching[level + 1:])
                                 for level in range(self.depth)]

    @property
    def depth(self):
        return len(self.branching)

    # ---- shape -----------------------------------------------------------
    def neutral(self, n_experts, n_features):
        """Every node uniform (``n_experts`` must be the tree's number of leaves)."""
        self._check_leaves(n_experts)
        gate = {}
        for level, children in enumerate(self.branching):
            gate[f"coef_{level}"] = np.zeros((self.n_nodes[level], children, n_features))
            gate[f"intercept_{level}"] = np.zeros((self.n_nodes[level], children))
        return gate

    def _check_leaves(self, n_experts):
        if n_experts != math.prod(self.branching):
            raise ValueError(f"A tree with branching={self.branching} has "
                             f"{math.prod(self.branching)} leaves, not {n_experts}.")

    def n_experts(self, gate):
        return math.prod(gate[f"intercept_{level}"].shape[1] for level in range(self.depth))

    @staticmethod
    def n_features(gate):
        return gate["coef_0"].shape[2]

    def n_parameters(self, n_experts, n_features):
        """Free parameters: at each node, one child's logits are redundant."""
        self._check_leaves(n_experts)
        return sum(nodes * (children - 1) * (n_features + 1)
                   for nodes, children in zip(self.n_nodes, self.branching, strict=True))

    # ---- nodes -------------------------------------------------------------
    @staticmethod
    def node(gate, level, j):
        """Node ``j`` of ``level`` as a softmax gate's parameters (views)."""
        return {"coef": gate[f"coef_{level}"][j], "intercept": gate[f"intercept_{level}"][j]}

    def nodes(self):
        """``(level, j)`` of every internal node, root first."""
        return [(level, j) for level in range(self.depth) for j in range(self.n_nodes[level])]

    def _with_nodes(self, gate, new_nodes):
        """A new gate whose nodes are ``new_nodes[(level, j)]`` (others copied)."""
        result = {key: value.copy() for key, value in gate.items()}
        for (level, j), node in new_nodes.items():
            result[f"coef_{level}"][j] = node["coef"]
            result[f"intercept_{level}"][j] = node["intercept"]
        return result

    def node_targets(self, W, level, j):
        """Soft targets of node ``j`` of ``level`` (n, b_level): the sums of ``W`` (n, K)
        over the leaves below each of its children."""
        children, below = self.branching[level], self.leaves_per_child[level]
        start = j * children * below
        block = W[:, start:start + children * below]
        targets = block.reshape(W.shape[0], children, below).sum(axis=2)
        return targets

    def node_log_gates(self, kernels, X, gate, level):
        """log-softmax of every node of ``level``: a list of (n, b_level) float64 arrays."""
        xp = kernels.xp
        return [xp.asarray(kernels.log_gate(X, *self._linear(gate, level, j)), dtype=np.float64)
                for j in range(self.n_nodes[level])]

    @staticmethod
    def _linear(gate, level, j):
        return (np.ascontiguousarray(gate[f"coef_{level}"][j]),
                np.ascontiguousarray(gate[f"intercept_{level}"][j]))

    # ---- densities and objective -----------------------------------------
    def stacked(self, gate):
        """Every child's logit of every node as one linear map, level by level:
        ``(coef (M, d), intercept (M,))`` (the layout of ``tree_log_gate``)."""
        d = self.n_features(gate)
        coef = np.concatenate([gate[f"coef_{level}"].reshape(-1, d)
                               for level in range(self.depth)])
        intercept = np.concatenate([gate[f"intercept_{level}"].ravel()
                                    for level in range(self.depth)])
        return coef, intercept

    def log_prior(self, kernels, X, gate, out=None):
        """log g_k(x_i) of the leaves: (n, K), the sum of the log gates on each path.

        In float64 (or in ``out``'s dtype). A backend's ``tree_log_gate``
        kernel computes it in one pass over the rows; without one (NumPy,
        the kernel's oracle), the ``log_gate`` calls are composed node by node.
        """
        if hasattr(kernels, "tree_log_gate"):
            if out is None:
                out = kernels.xp.empty((X.shape[0], self.n_experts(gate)), dtype=np.float64)
            return kernels.tree_log_gate(X, *self.stacked(gate), np.array(self.branching),
                                         out=out)
        xp = kernels.xp
        n, n_leaves = X.shape[0], self.n_experts(gate)
        total = xp.zeros((n, n_leaves), dtype=np.float64)
        for level in range(self.depth):
            below = self.leaves_per_child[level]
            view = total.reshape(n, self.n_nodes[level], self.branching[level], below)
            for j, log_g in enumerate(self.node_log_gates(kernels, X, gate, level)):
                view[:, j] += log_g[:, :, None]
        if out is None:
            return total
        out[...] = total
        return out

    def penalty(self, gate):
        """alpha * ||V||^2 summed over the nodes."""
        return self.alpha * float(sum(np.sum(gate[f"coef_{level}"] ** 2)
                                      for level in range(self.depth)))

    # ---- M-step ----------------------------------------------------------
    def m_step(self, kernels, X, W, gate, *, log_prior=None, log_prior_ready=False,
               max_iter=1, balance=0.0, sample_weight=None):
        """Every node's gate fitted to its children's summed responsibilities.

        Each node maximises its own weighted multinomial logistic objective
        (warm-started, never worse than before); their sum is the gate's
        objective, so the gate is never worse either. ``log_prior`` is
        unused (each node computes its own log gate).
        """
        if balance > 0:
            return self._balanced_m_step(kernels, X, W, gate, balance, sample_weight)
        fitted = {}
        for level, j in self.nodes():
            targets = kernels.xp.ascontiguousarray(self.node_targets(W, level, j))
            node = self.node(gate, level, j)
            fitted[(level, j)] = self._node_gate.m_step(kernels, X, targets, node,
                                                        max_iter=max_iter)
        return self._with_nodes(gate, fitted)

    def _balanced_m_step(self, kernels, X, W, gate, balance, sample_weight):
        """The M-step with load balancing: the nodes one after another.

        The balance penalty depends on every leaf's gate, so the nodes are
        no longer separable: each node in turn maximises its logistic
        objective less the whole penalty, with the other nodes fixed at
        their latest values (block coordinate ascent: every node's step is
        checked on the whole objective, so the gate's objective never
        decreases). For the node's logits z, d penalty / d z_c = D_c -
        p_c sum_c' D_c', D the penalty's gradient in the leaf log priors
        (``balance_log_prior_gradient``) summed over each child's leaves.
        """
        xp = kernels.xp
        total = float(sample_weight.sum())
        for level, j in self.nodes():
            children, below = self.branching[level], self.leaves_per_child[level]
            if children == 1:
                continue  # a node of one child has no gate to fit
            first = j * children * below
            block = slice(first, first + children * below)
            leaf = self.log_prior(kernels, X, gate)  # float64, with the latest nodes
            node_log_g = self.node_log_gates(kernels, X, gate, level)[j]
            # the leaves' log priors without this node's term
            rest = leaf[:, block] - xp.repeat(node_log_g, below, axis=1)

            def extra(log_p, rest=rest, block=block, below=below, children=children):
                trial = leaf.copy()
                trial[:, block] = rest + xp.repeat(log_p.astype(np.float64, copy=False),
                                                   below, axis=1)
                g = xp.exp(trial)
                penalty, gradient = balance_log_prior_gradient(g, sample_weight, balance)
                node_gradient = self.node_targets(gradient, level, j)
                node_gradient = node_gradient - xp.exp(log_p) * node_gradient.sum(
                    axis=1, keepdims=True)
                return total * penalty, total * node_gradient

            targets = xp.ascontiguousarray(self.node_targets(W, level, j))
            node = self.node(gate, level, j)
            penalty = np.full(node["coef"].shape[1], self.alpha)
            coef, intercept = fit_multinomial_logistic(
                kernels, X, targets, node["coef"], node["intercept"], penalty,
                max_iter=BALANCED_GATE_STEPS, extra=extra)
            gate = self._with_nodes(gate, {(level, j): {"coef": coef, "intercept": intercept}})
        return gate

    # ---- one-pass EM -------------------------------------------------------
    def statistics(self, kernels, X, W, gate, log_prior, hessian_stride=1):
        """Each node's statistics (:meth:`SoftmaxGate.statistics`), keyed ``"level,j"``."""
        statistics = {}
        for level in range(self.depth):
            for j, log_g in enumerate(self.node_log_gates(kernels, X, gate, level)):
                targets = kernels.xp.ascontiguousarray(self.node_targets(W, level, j))
                log_g = log_g.astype(X.dtype, copy=False)
                statistics[f"{level},{j}"] = self._node_gate.statistics(
                    kernels, X, targets, self.node(gate, level, j), log_g, hessian_stride)
        return statistics

    def direction(self, statistics, gate, total_weight, objective, dtype):
        """Each node's ascent direction (None where it promises no verifiable gain),
        or None where no node has one."""
        directions = {}
        for level, j in self.nodes():
            direction = self._node_gate.direction(statistics[f"{level},{j}"],
                                                  self.node(gate, level, j), total_weight,
                                                  objective, dtype)
            if direction is not None:
                directions[(level, j)] = direction
        return directions or None

    def step(self, gate, direction, t):
        """The gate with each node moved by ``t`` times its direction."""
        return self._with_nodes(gate, {
            (level, j): self._node_gate.step(self.node(gate, level, j), node_direction, t)
            for (level, j), node_direction in direction.items()})

    # ---- gradient solvers --------------------------------------------------
    def gradient(self, kernels, X, logit_gradient, gate, penalty_scale=1.0, *,
                 log_prior_gradient):
        """Gradient of the objective in every node's parameters.

        ``log_prior_gradient`` (n, K) is the derivative of the objective's
        row terms in the leaves' log priors (the posterior times the row
        weights, less load balancing's). At node j of level l, with A its
        sums over each child's leaves and g the node's gate, the derivative
        in the node's logits is A - g sum_c A_c (``logit_gradient``, the
        flat softmax's, is unused).
        """
        xp = kernels.xp
        gradient = {}
        for level in range(self.depth):
            coef_gradient = np.empty_like(gate[f"coef_{level}"])
            intercept_gradient = np.empty_like(gate[f"intercept_{level}"])
            for j, log_g in enumerate(self.node_log_gates(kernels, X, gate, level)):
                targets = self.node_targets(log_prior_gradient, level, j)
                node_logits = targets - xp.exp(log_g) * targets.sum(axis=1, keepdims=True)
                coef_gradient[j] = kernels.to_host(node_logits.T @ X)
                intercept_gradient[j] = kernels.to_host(node_logits.sum(axis=0))
            coef_gradient -= 2.0 * self.alpha * penalty_scale * gate[f"coef_{level}"]
            gradient[f"coef_{level}"] = coef_gradient
            gradient[f"intercept_{level}"] = intercept_gradient
        return gradient

    @staticmethod
    def coordinates(gate):
        return _TreeCoordinates(gate)

    # ---- growing and pruning -------------------------------------------
    def split(self, gate, j):
        raise ValueError("The experts of a hierarchical mixture cannot be split: its tree "
                         "has a fixed shape (branching).")

    take = split

    # ---- user scale ------------------------------------------------------
    def to_user(self, gate, x_mean, x_scale):
        """Per level, ``(coef (N_l, b_l, d), intercept (N_l, b_l))`` acting on raw x."""
        levels = []
        for level in range(self.depth):
            coef = gate[f"coef_{level}"] / x_scale
            levels.append((coef, gate[f"intercept_{level}"] - coef @ x_mean))
        return levels

    def from_user(self, levels, x_mean, x_scale):
        """Inverse of :meth:`to_user`."""
        gate = {}
        for level, (coef, intercept) in enumerate(levels):
            gate[f"coef_{level}"] = coef * x_scale
            gate[f"intercept_{level}"] = intercept + coef @ x_mean
        return gate

    def public(self, gate, x_mean, x_scale):
        """The estimator's public attributes: ``node_coef_`` and ``node_intercept_``,
        lists of one array per level, on the user's scale."""
        levels = self.to_user(gate, x_mean, x_scale)
        return {"node_coef_": [coef for coef, _ in levels],
                "node_intercept_": [intercept for _, intercept in levels]}

    def from_public(self, attributes, x_mean, x_scale):
        """The gate from the public attributes (as :meth:`public` names them)."""
        return self.from_user(list(zip(attributes["node_coef_"], attributes["node_intercept_"],
                                       strict=True)), x_mean, x_scale)
