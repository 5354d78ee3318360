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
arrays, so SciPy's L-BFGS and the Adam updates run on the host. The
coordinates (units, bounds, projection) are the model's
(``MixtureModel.coordinates``): each gate and family chooses its own.
"""

from .._balance import balance_log_prior_gradient, balance_terms
from .._routing import posterior, routing_k


class Evaluation:
    """Objective, log-likelihood and (optionally) gradient at one point."""

    __slots__ = ("gradient", "log_likelihood", "objective")

    def __init__(self, objective, log_likelihood, gradient):
        self.objective = objective
        self.log_likelihood = log_likelihood
        self.gradient = gradient


class GradientObjective:
    """The mean penalised log-likelihood of the training data, on flat coordinates.

    Parameters
    ----------
    model : MixtureModel
    kernels : kernel bundle
    data : TrainingData
        Standardised X, 2-D Y and sample weights. Its total weight scales
        the penalties, also when a mini-batch is evaluated.
    options : SolverOptions
    coordinates : ModelCoordinates
        What the flat vectors mean.
    """

    def __init__(self, model, kernels, data, options, coordinates):
        self.model = model
        self.kernels = kernels
        self.data = data
        self.options = options
        self.coordinates = coordinates
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
        model = self.model
        params = self.coordinates.unpack(flat)
        batch_weight = float(sample_weight.sum())
        row_weight = sample_weight / batch_weight

        log_g = model.log_prior(kernels, X, params)
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
        log_joint = train_log_g + model.log_density(kernels, X, Y, params)
        per_row, resp = posterior(kernels, log_joint, options.classify)
        log_likelihood = float(row_weight @ per_row)

        penalty = model.penalty(params)
        objective = log_likelihood - penalty / self.total_weight
        gate = None
        if options.balance > 0:
            gate = xp.exp(log_g)
            balance_penalty, balance_gradient = balance_terms(gate, sample_weight,
                                                              options.balance)
            # the same penalty's gradient in the log priors, for a gate that is not
            # one softmax (a tree of them)
            balance_log_prior = balance_log_prior_gradient(gate, sample_weight,
                                                           options.balance)[1]
            objective -= balance_penalty
        if not gradient:
            return Evaluation(objective, log_likelihood, None)

        # gate: (h - g~) per sample (h is one-hot and g~ dense for hard gating)
        logit_gradient = resp - xp.exp(train_log_g)
        logit_gradient *= row_weight[:, None]
        if gate is not None:
            logit_gradient -= balance_gradient
        penalty_scale = 1.0 / self.total_weight
        weighted_posterior = resp * row_weight[:, None]
        log_prior_gradient = (weighted_posterior if gate is None
                              else weighted_posterior - balance_log_prior)
        gradients = model.gradient(kernels, X, Y, logit_gradient, weighted_posterior, params,
                                   penalty_scale=penalty_scale,
                                   log_prior_gradient=log_prior_gradient)
        return Evaluation(objective, log_likelihood, self.coordinates.pack_gradient(gradients))


class RowsObjective:
    """:class:`GradientObjective` over a rows object, one ``map_reduce`` pass per evaluation.

    For rows that offer no whole copy (``mixexp._dask.DaskRows``), with soft
    gating, no balance and no gate noise: then the log-likelihood and its
    gradient are sums over rows. Each chunk returns its sums at penalty
    scale 0 (the gradients are linear in the row weights and affine in the
    penalty scale); the penalties' gradient is added once, from the same
    functions on a row of weight zero.

    Parameters
    ----------
    model : MixtureModel
    kernels : kernel bundle
    rows : rows object
    coordinates : ModelCoordinates
    """

    def __init__(self, model, kernels, rows, coordinates):
        self.model = model
        self.kernels = kernels
        self.rows = rows
        self.coordinates = coordinates
        self.total_weight = rows.total_weight

    def evaluate(self, flat, gradient=True):
        """Objective (and flat gradient) at ``flat``: :class:`Evaluation`."""
        model, kernels = self.model, self.kernels
        params = self.coordinates.unpack(flat)

        def chunk_sums(chunk):
            X, Y, weight = chunk.X, chunk.Y, chunk.sample_weight
            log_g = model.log_prior(kernels, X, params)
            per_row, resp = kernels.normalize_log_joint(
                log_g + model.log_density(kernels, X, Y, params))
            sums = {"log_likelihood": float(weight @ per_row)}
            if gradient:
                resp *= weight[:, None]
                logit_gradient = resp - kernels.xp.exp(log_g) * weight[:, None]
                sums.update(model.gradient(kernels, X, Y, logit_gradient, resp, params,
                                           penalty_scale=0.0))
            return sums

        sums = self.rows.map_reduce(chunk_sums)
        total = self.total_weight
        log_likelihood = sums["log_likelihood"] / total
        objective = log_likelihood - model.penalty(params) / total
        if not gradient:
            return Evaluation(objective, log_likelihood, None)
        penalties = self._penalty_gradient(params, 1.0 / total)
        gradients = {part: {key: value / total + penalties[part][key]
                            for key, value in sums[part].items()}
                     for part in ("gate", "experts")}
        return Evaluation(objective, log_likelihood, self.coordinates.pack_gradient(gradients))

    def _penalty_gradient(self, params, penalty_scale):
        """The penalties' part of the gradient: the gradients of one row of weight 0."""
        xp, dtype = self.kernels.xp, self.rows.dtype
        n_experts = self.model.n_experts(params)
        X = xp.zeros((1, self.rows.n_features), dtype=dtype)
        Y = xp.zeros((1, params["experts"]["intercept"].shape[1]), dtype=dtype)
        W = xp.zeros((1, n_experts), dtype=dtype)
        return self.model.gradient(self.kernels, X, Y, W, W, params,
                                   penalty_scale=penalty_scale)
