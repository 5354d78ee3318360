"""The objective of the gradient solvers and its analytic gradient (Jacobs et al. 1991).

All parameters (gate and experts) move together along the gradient of

    f = [sum_i s_i l_i - P_experts - alpha ||V||^2] / S - balance CV^2(I)

where l_i is the per-sample term of the gating mode (log p(y_i | x_i) for
soft gating, max_k log g_k p_k for hard gating), S the total sample weight
and P the experts' penalty: the objective EM maximises, so solvers can be
compared. ``top_k`` enters training only with gate noise (noisy top-k
gating, Adam): the top-k likelihood jumps where the kept set changes, which
stalls a deterministic solver, while redrawn noise smooths it on average.
With responsibilities h (the posterior of the routed model, one-hot for
hard gating) and the routed gate g~, the gradient
is sum_i s_i h_ik d log p_k for expert k and sum_i s_i (h_ik - g~_ik) x_i for
the gate: one E-step gives both.

On a mini-batch the data term is the batch mean and the penalties keep the
1 / S of the whole training set, so a batch gradient is an unbiased estimate
of the full one (the balance term uses the batch's importance).

The per-sample work runs where the data live (``kernels.xp``: on the GPU
for backend="cupy"); the flat parameter and gradient vectors are host
arrays, so SciPy's L-BFGS and the Adam updates run on the host.
"""

import numpy as np

from .._backend import array_namespace, to_host
from .._balance import balance_terms
from .._gating import gate_penalty
from .._routing import posterior, routing_k

_GATE_KEYS = ("gate_coef", "gate_intercept")
# Log-variances are kept below log(target variance) + this, so exp() cannot
# overflow during a line search; the bound is never active at a sensible fit.
_LOG_VARIANCE_HEADROOM = 40.0


def _weighted_center_scale(Y, sample_weight):
    """Weighted mean and spread (1 where zero) of each target: host arrays (t,)."""
    xp = array_namespace(Y)
    weights = sample_weight / sample_weight.sum()
    center = weights @ Y
    scale = to_host(xp.sqrt(weights @ (Y - center) ** 2))
    return to_host(center), np.where(scale > 0, scale, 1.0)


class Packing:
    """One flat vector of well-scaled, unconstrained coordinates for a parameter dict.

    Gate parameters are taken as they are (the gate already sees
    standardised inputs). A family with a ``"variance"`` entry (Gaussian
    experts) is moved in units of each expert's noise level at the start:
    weights and intercepts (centred on the target mean) divided by that
    standard deviation sigma0_k, variances as log(sigma_k^2 / sigma0_k^2).
    The curvature of the log-likelihood in an expert's mean is about its
    sample count over sigma_k^2, so these units bring it to the scale of
    the gate's (measured on make_moe_regression, n=2000, K=3: 175 L-BFGS
    iterations instead of 308 with the target's spread as the unit).
    Without one (logistic experts), the class logits are scale-free and
    taken as they are. Adam's step sizes are in these units, so a learning
    rate means the same for any target scale.

    Parameters
    ----------
    params : dict of ndarray
        A parameter dict fixing the layout (shapes, keys).
    Y : ndarray of shape (n, t)
    sample_weight : ndarray of shape (n,)
    variance_floor : ndarray of shape (t,), optional
        Lower bound of the variances (Gaussian experts).
    """

    def __init__(self, params, Y, sample_weight, variance_floor=None):
        self.keys = [*_GATE_KEYS, *(key for key in params if key not in _GATE_KEYS)]
        self.shapes = {key: params[key].shape for key in self.keys}
        self.gaussian = "variance" in params
        n_targets = params["intercept"].shape[1]
        if self.gaussian:
            self.center, target_scale = _weighted_center_scale(Y, sample_weight)
            self.scale = np.sqrt(params["variance"])  # (K, t)
        else:
            self.center, self.scale = np.zeros(n_targets), np.ones(params["intercept"].shape)
        self.slices = {}
        offset = 0
        for key in self.keys:
            size = int(np.prod(self.shapes[key]))
            self.slices[key] = slice(offset, offset + size)
            offset += size
        self.size = offset
        self.lower = np.full(self.size, -np.inf)
        self.upper = np.full(self.size, np.inf)
        if self.gaussian:
            log_var = 2.0 * np.log(self.scale)
            floor = np.log(variance_floor) - log_var if variance_floor is not None else -np.inf
            self._fill("variance", self.lower, floor)
            self._fill("variance", self.upper,
                       _LOG_VARIANCE_HEADROOM + 2.0 * np.log(target_scale) - log_var)

    def _fill(self, key, vector, per_target):
        vector[self.slices[key]] = np.broadcast_to(per_target, self.shapes[key]).ravel()

    def pack(self, params):
        """Parameter dict -> flat vector (size,)."""
        flat = np.empty(self.size)
        for key in self.keys:
            value = params[key]
            if key == "coef":
                value = value / self.scale[:, :, None]
            elif key == "intercept":
                value = (value - self.center) / self.scale
            elif key == "variance":
                value = np.log(value) - 2.0 * np.log(self.scale)
            flat[self.slices[key]] = value.ravel()
        return flat

    def unpack(self, flat):
        """Flat vector -> parameter dict (new arrays)."""
        params = {}
        for key in self.keys:
            value = flat[self.slices[key]].reshape(self.shapes[key])
            if key == "coef":
                value = value * self.scale[:, :, None]
            elif key == "intercept":
                value = value * self.scale + self.center
            elif key == "variance":
                value = np.exp(value + 2.0 * np.log(self.scale))
            else:
                value = value.copy()
            params[key] = value
        return params

    def pack_gradient(self, gradients):
        """Gradient dict (in the natural parameters; log-variance for "variance") -> flat."""
        flat = np.empty(self.size)
        for key in self.keys:
            value = gradients[key]
            if key in ("coef", "intercept"):
                # chain rule of the division by the expert scale
                value = value * (self.scale[:, :, None] if key == "coef" else self.scale)
            flat[self.slices[key]] = value.ravel()
        return flat

    def project(self, flat):
        """Clip to the bounds and remove the softmax shifts, in place.

        A common shift of all gate logits (or of one logistic expert's class
        logits) changes no probability, and removing it can only lower the
        L2 penalty, so this never lowers the objective.
        """
        np.clip(flat, self.lower, self.upper, out=flat)
        gate = flat[self.slices["gate_coef"]].reshape(self.shapes["gate_coef"])
        gate -= gate.mean(axis=0)
        bias = flat[self.slices["gate_intercept"]]
        bias -= bias.mean()
        if not self.gaussian:
            coef = flat[self.slices["coef"]].reshape(self.shapes["coef"])
            coef -= coef.mean(axis=1, keepdims=True)
            intercept = flat[self.slices["intercept"]].reshape(self.shapes["intercept"])
            intercept -= intercept.mean(axis=1, keepdims=True)
        return flat


class Evaluation:
    """Objective, log-likelihood and (optionally) gradient at one point."""

    __slots__ = ("gradient", "log_likelihood", "objective")

    def __init__(self, objective, log_likelihood, gradient):
        self.objective = objective
        self.log_likelihood = log_likelihood
        self.gradient = gradient


class GradientObjective:
    """The mean penalised log-likelihood of the training data, on a :class:`Packing`.

    Parameters
    ----------
    family : expert family
    kernels : kernel bundle
    data : TrainingData
        Standardised X, 2-D Y, sample weights and alpha. Its total weight
        scales the penalties, also when a mini-batch is evaluated.
    options : SolverOptions
    packing : Packing
    """

    def __init__(self, family, kernels, data, options, packing):
        self.family = family
        self.kernels = kernels
        self.data = data
        self.options = options
        self.packing = packing
        self.total_weight = data.total_weight

    def evaluate(self, flat, rows=None, rng=None, gradient=True):
        """Objective at ``flat`` on the rows ``rows`` (all rows if None).

        Parameters
        ----------
        flat : ndarray of shape (size,)
        rows : slice or array of int, optional
            A mini-batch (an index array in the kernels' namespace).
        rng : numpy Generator, optional
            Draws the gate noise (``options.gate_noise``); without it the
            gate is noise-free, as in prediction.
        gradient : bool
            Also compute the flat gradient of the objective.

        Returns
        -------
        Evaluation
        """
        data, kernels, options = self.data, self.kernels, self.options
        xp = kernels.xp
        X, Y, sample_weight = data.X, data.Y, data.sample_weight
        if rows is not None:
            X, Y, sample_weight = X[rows], Y[rows], sample_weight[rows]
        params = self.packing.unpack(flat)
        batch_weight = float(sample_weight.sum())
        row_weight = sample_weight / batch_weight

        log_g = kernels.log_gate(X, params["gate_coef"], params["gate_intercept"])
        train_log_g = log_g
        if rng is not None and options.gate_noise > 0:
            # noise on the logits, renormalised: log-softmax(z + noise); drawn
            # on the host, so a seed gives the same noise on every backend
            noisy = log_g + options.gate_noise * xp.asarray(rng.standard_normal(log_g.shape))
            train_log_g = noisy - kernels.normalize_log_joint(noisy)[0][:, None]
        k = None
        if options.gate_noise > 0 and not options.classify:
            k = routing_k(options.gating, options.top_k, log_g.shape[1])
        if k is not None:
            train_log_g = kernels.top_k_log_gate(train_log_g, k)
        log_joint = train_log_g + self.family.log_density(kernels, X, Y, params)
        per_row, resp = posterior(kernels, log_joint, options.classify)
        log_likelihood = float(row_weight @ per_row)

        penalty = self.family.penalty(params) + gate_penalty(params["gate_coef"], data.alpha)
        objective = log_likelihood - penalty / self.total_weight
        gate = None
        if options.balance > 0:
            gate = xp.exp(log_g)
            balance_penalty, balance_gradient = balance_terms(gate, sample_weight,
                                                              options.balance)
            objective -= balance_penalty
        if not gradient:
            return Evaluation(objective, log_likelihood, None)

        # gate: (h - g~) per sample (h is one-hot and g~ dense for hard gating)
        logit_gradient = resp - xp.exp(train_log_g)
        logit_gradient *= row_weight[:, None]
        if gate is not None:
            logit_gradient -= balance_gradient
        penalty_scale = 1.0 / self.total_weight
        gradients = self.family.gradient(
            kernels, X, Y, resp * row_weight[:, None], params, penalty_scale=penalty_scale
        )
        gradients["gate_coef"] = (kernels.to_host(logit_gradient.T @ X)
                                  - 2.0 * data.alpha * penalty_scale * params["gate_coef"])
        gradients["gate_intercept"] = kernels.to_host(logit_gradient.sum(axis=0))
        return Evaluation(objective, log_likelihood, self.packing.pack_gradient(gradients))
