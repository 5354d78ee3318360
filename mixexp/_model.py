"""A gate and an expert family composed once: the mixture p(y | x) = sum_k g_k p_k.

Everything the solvers need of a model is here, written against the gate
and family protocols (``mixexp._gates``, ``mixexp._experts``): the E-step,
the penalised objective's penalty, the M-step, the gradient solvers'
coordinates, and the split / take steps that grow, prune or revive experts.
Parameters nest as ``{"gate": ..., "experts": ...}``; the number of experts
is asked of the gate, never read off an array shape.

The gate and the experts may see different columns of the inputs
(``gate_features`` / ``expert_features``, flexmix's concomitant
variables): rows hand the model the whole standardised chunk, and the model
gives the gate and the family each its own column view of it
(:meth:`MixtureModel.gate_view`, :meth:`MixtureModel.expert_view`), so
neither object knows about the other's columns. ``None`` means every
column, and then the view is the chunk itself (no copy: such fits are
bit-identical to a model without selections).

The E-step is the composition log g + log p -> normalised posterior. Pairs
with a fused kernel (one pass over the rows for the whole E-step) are
listed in ``FUSED_E_STEPS``; the composition is their oracle.
"""

import numpy as np

from ._backend import array_namespace
from ._experts import GaussianExperts, LogisticExperts, PoissonExperts, StudentTExperts
from ._gates import SoftmaxGate
from ._gates._softmax import GATE_NEWTON_STEPS


def _softmax_fused_e_step(model, kernels, X, Y, params, resp, log_gate_out):
    coef, intercept = model.gate.linear(params["gate"])
    # (fused kernels serve models whose gate and experts see the same columns)
    return model.family.fused_e_step(kernels, model.expert_view(X), Y, coef, intercept,
                                     params["experts"], resp, log_gate_out=log_gate_out)


# (gate type, family type) -> fused E-step; the composition serves the rest.
FUSED_E_STEPS = {
    (SoftmaxGate, GaussianExperts): _softmax_fused_e_step,
    (SoftmaxGate, LogisticExperts): _softmax_fused_e_step,
    (SoftmaxGate, PoissonExperts): _softmax_fused_e_step,
    (SoftmaxGate, StudentTExperts): _softmax_fused_e_step,
}


def _softmax_fused_pass(model, kernels, chunk, params, hessian_stride, family_options):
    """One-pass EM statistics from the backend's fused kernel, or None if it has none."""
    gate = params["gate"]
    if not model.gate.takes_newton_steps(gate):
        return None  # (the bound gate's statistics are composed)
    coef, intercept = model.gate.linear(gate)
    fused = model.family.fused_pass(
        kernels, model.expert_view(chunk.X), chunk.Y, chunk.sample_weight, coef, intercept,
        params["experts"], hessian_stride, **family_options)
    if fused is None:  # the backend has no such kernel
        return None
    log_likelihood, share, experts, gradient, hessian, hessian_weight = fused
    return {"log_likelihood": log_likelihood, "share": share, "experts": experts,
            "gate": model.gate.newton_statistics(
                gradient, hessian, hessian_weight if hessian_stride > 1 else None)}


# (gate type, family type) -> fused one-pass EM statistics (where the backend
# has the kernel); ``MixtureModel.pass_statistics`` composes them otherwise.
FUSED_PASSES = {(SoftmaxGate, GaussianExperts): _softmax_fused_pass,
                (SoftmaxGate, PoissonExperts): _softmax_fused_pass,
                (SoftmaxGate, StudentTExperts): _softmax_fused_pass,
                (SoftmaxGate, LogisticExperts): _softmax_fused_pass}


class ModelCoordinates:
    """The gate's coordinates then the experts', as one flat vector."""

    def __init__(self, gate, experts):
        self.parts = {"gate": gate, "experts": experts}
        self.slices, offset = {}, 0
        for name, part in self.parts.items():
            self.slices[name] = slice(offset, offset + part.size)
            offset += part.size
        self.size = offset
        self.lower = np.concatenate([part.lower for part in self.parts.values()])
        self.upper = np.concatenate([part.upper for part in self.parts.values()])

    def pack(self, params):
        return np.concatenate([part.pack(params[name]) for name, part in self.parts.items()])

    def unpack(self, flat):
        return {name: part.unpack(flat[self.slices[name]]) for name, part in self.parts.items()}

    def pack_gradient(self, gradient):
        return np.concatenate([part.pack_gradient(gradient[name])
                               for name, part in self.parts.items()])

    def project(self, flat):
        """Clip to the bounds and remove each part's null directions, in place.

        Removing a shift that changes no probability can only lower the L2
        penalties, so this never lowers the objective.
        """
        np.clip(flat, self.lower, self.upper, out=flat)
        for name, part in self.parts.items():
            part.project_part(flat[self.slices[name]])
        return flat


def select_columns(a, columns):
    """The columns ``columns`` (a host int array) of ``a`` along its last axis; ``a`` if None.

    Serves 2-D rows (a copy of the chunk's selected columns, in their own
    namespace: the index moves to the GPU with them) and 1-D per-feature
    arrays (means, scales) alike.
    """
    if columns is None:
        return a
    return a[..., array_namespace(a).asarray(columns)]


class MixtureModel:
    """A gate over the experts of one family.

    Parameters
    ----------
    gate : gate object (``mixexp._gates``)
    family : expert family (``mixexp._experts``)
    gate_columns, expert_columns : ndarray of int or None, default=None
        Columns of the inputs the gate and the experts see (None: all).
    """

    def __init__(self, gate, family, gate_columns=None, expert_columns=None):
        self.gate = gate
        self.family = family
        self.gate_columns = gate_columns
        self.expert_columns = expert_columns
        # a fused kernel reads one X for the gate and the experts
        same = (gate_columns is None and expert_columns is None) or (
            gate_columns is not None and expert_columns is not None
            and np.array_equal(gate_columns, expert_columns))
        self._fused = FUSED_E_STEPS.get((type(gate), type(family))) if same else None
        self._fused_pass = FUSED_PASSES.get((type(gate), type(family))) if same else None

    # ---- columns -----------------------------------------------------------
    def gate_view(self, X):
        """The gate's columns of ``X`` (n, d) or of a per-feature array (d,)."""
        return select_columns(X, self.gate_columns)

    def expert_view(self, X):
        """The experts' columns of ``X`` (n, d) or of a per-feature array (d,)."""
        return select_columns(X, self.expert_columns)

    def widths(self, n_features):
        """Columns the gate and the experts see, of ``n_features``: ``(d_gate, d_experts)``."""
        return tuple(n_features if columns is None else len(columns)
                     for columns in (self.gate_columns, self.expert_columns))

    # ---- shape -----------------------------------------------------------
    def n_experts(self, params):
        return self.gate.n_experts(params["gate"])

    def neutral(self, Y, sample_weight, n_experts, n_features):
        """Uniform gate, every expert alike: what an initial M-step starts from.

        ``n_features``: columns of the inputs (the gate and family get theirs).
        """
        d_gate, d_experts = self.widths(n_features)
        return {"gate": self.gate.neutral(n_experts, d_gate),
                "experts": self.family.neutral(Y, sample_weight, n_experts, d_experts)}

    def n_parameters(self, n_experts, n_features, n_outputs):
        """Free parameters of a model on ``n_features`` input columns."""
        d_gate, d_experts = self.widths(n_features)
        return (self.gate.n_parameters(n_experts, d_gate)
                + self.family.n_parameters(n_experts, d_experts, n_outputs))

    # ---- densities and objective -----------------------------------------
    def log_prior(self, kernels, X, params, out=None):
        """log g_k(x_i): (n, K)."""
        return self.gate.log_prior(kernels, self.gate_view(X), params["gate"], out=out)

    def log_density(self, kernels, X, Y, params):
        """log p_k(y_i | x_i): (n, K)."""
        return self.family.log_density(kernels, self.expert_view(X), Y, params["experts"])

    def e_step(self, kernels, X, Y, params, resp, log_gate_out=None, fused=True):
        """Fill ``resp`` (n, K) with the posterior; return log p(y_i | x_i) (n,), float64.

        With ``log_gate_out`` (n, K), also write the log prior there (the
        gate's M-step starts from it). ``fused=False`` forces the
        composition (the oracle of the fused kernels).
        """
        if fused and self._fused is not None:
            return self._fused(self, kernels, X, Y, params, resp, log_gate_out)
        # float64 (n, K) work array: float32 data gets float64 arithmetic
        log_joint = self.log_prior(kernels, X, params,
                                   out=kernels.xp.empty(resp.shape, dtype=np.float64))
        if log_gate_out is not None:
            log_gate_out[...] = log_joint
        log_joint += self.log_density(kernels, X, Y, params)
        log_norm, posterior = kernels.normalize_log_joint(log_joint, resp_out=log_joint)
        resp[...] = posterior
        return log_norm

    def chunk_weights(self, kernels, chunk, params, log_gate_out=None):
        """The E-step on one chunk of a rows object: ``(log p(y_i | x_i) (n,), W = s h (n, K))``,
        W in the chunk's scratch (valid until the next chunk); ``log_gate_out`` as for
        :meth:`e_step`."""
        resp = chunk.scratch("resp", self.n_experts(params))[: chunk.X.shape[0]]
        log_norm = self.e_step(kernels, chunk.X, chunk.Y, params, resp,
                               log_gate_out=log_gate_out)
        resp *= chunk.sample_weight[:, None]
        return log_norm, resp

    def map_reduce_weighted(self, kernels, rows, params, function):
        """``function(X, Y, W)`` summed over the chunks of ``rows`` (in memory or on a
        cluster): X the experts' columns, W = s h the E-step's weights at ``params``."""
        def chunk_sums(chunk):
            W = self.chunk_weights(kernels, chunk, params)[1]
            return function(self.expert_view(chunk.X), chunk.Y, W)

        return rows.map_reduce(chunk_sums)

    def penalty(self, params):
        """Gate and experts' penalties, summed (subtracted from the summed log-likelihood)."""
        return self.family.penalty(params["experts"]) + self.gate.penalty(params["gate"])

    # ---- EM ----------------------------------------------------------------
    def m_step(self, kernels, data, params, W, *, log_prior=None, log_prior_ready=False,
               gate_steps=GATE_NEWTON_STEPS, balance=0.0):
        """One M-step from weighted responsibilities ``W`` (n, K): new parameters.

        ``log_prior`` is the gate's scratch buffer (n, K); with
        ``log_prior_ready`` it holds the log prior at ``params`` already
        (from the E-step). ``gate_steps`` bounds the gate's Newton steps.
        """
        experts = self.family.m_step(kernels, self.expert_view(data.X), data.Y, W,
                                     params["experts"])
        gate = self.gate.m_step(kernels, self.gate_view(data.X), W, params["gate"],
                                log_prior=log_prior,
                                log_prior_ready=log_prior_ready, max_iter=gate_steps,
                                balance=balance, sample_weight=data.sample_weight)
        return {"gate": gate, "experts": experts}

    # ---- one-pass EM -------------------------------------------------------
    @property
    def one_pass(self):
        """Whether gate and family split their M-steps into statistics and a host solve."""
        return hasattr(self.family, "statistics") and hasattr(self.gate, "statistics")

    def takes_one_pass(self, params):
        """Whether one-pass EM serves these parameters: :attr:`one_pass`, and the family
        does not ask for its multi-pass M-step at this size (``takes_one_pass``)."""
        takes = getattr(self.family, "takes_one_pass", None)
        return self.one_pass and (takes is None or takes(params["experts"]))

    def pass_schedule(self):
        """A new per-run schedule of the family's optional statistics (its
        ``pass_schedule``), or None: one-pass EM gives its ``options()`` to
        each pass and it to the family's ``solve``."""
        schedule = getattr(self.family, "pass_schedule", None)
        return None if schedule is None else schedule()

    def pass_statistics(self, kernels, chunk, params, resp, log_prior, hessian_stride=1,
                        fused=True, family_options=None):
        """E-step at ``params`` on one chunk of rows, and all the M-step needs of it.

        ``resp`` and ``log_prior`` are scratch (at least the chunk's rows by
        K, X's dtype). Returns float64 statistics that add over chunks:
        ``log_likelihood`` (sum_i s_i log p(y_i | x_i)), ``share``
        (sum_i s_i h_ik, (K,)) and the family's and gate's statistics at
        the weights W = s h. ``hessian_stride``: see the gate's ``statistics``.
        A fused kernel serves the pairs that have one (``FUSED_PASSES``);
        ``fused=False`` forces the composition (its oracle).
        ``family_options``: keyword options of the family's statistics (from
        :meth:`pass_schedule`).
        """
        family_options = family_options or {}
        if fused and self._fused_pass is not None:
            statistics = self._fused_pass(self, kernels, chunk, params, hessian_stride,
                                          family_options)
            if statistics is not None:
                return statistics
        n = chunk.X.shape[0]
        resp, log_prior = resp[:n], log_prior[:n]
        log_norm = self.e_step(kernels, chunk.X, chunk.Y, params, resp, log_gate_out=log_prior)
        sample_weight = chunk.sample_weight
        statistics = {"log_likelihood": float(sample_weight @ log_norm),
                      "share": kernels.to_host(sample_weight @ resp).astype(np.float64)}
        resp *= sample_weight[:, None]
        # (a family whose statistics hold a Hessian it can sample takes the stride too)
        sampled = ({"hessian_stride": hessian_stride}
                   if getattr(self.family, "samples_hessian", False) else {})
        statistics["experts"] = self.family.statistics(kernels, self.expert_view(chunk.X),
                                                       chunk.Y, resp, params["experts"],
                                                       **sampled, **family_options)
        statistics["gate"] = self.gate.statistics(kernels, self.gate_view(chunk.X), resp,
                                                  params["gate"], log_prior,
                                                  hessian_stride=hessian_stride)
        return statistics

    # ---- gradient solvers --------------------------------------------------
    def gradient(self, kernels, X, Y, logit_gradient, W, params, penalty_scale=1.0,
                 log_prior_gradient=None):
        """Gradient of the objective in the gate (from its gradient in the logits,
        (n, K)) and in the experts (from the weights ``W`` (n, K)), keyed like ``params``.

        ``log_prior_gradient`` (n, K): the objective's derivative in the experts'
        log priors, which a gate that is not one softmax (a tree) works from;
        ``W`` where None (no term of the gate alone, such as load balancing).
        """
        return {
            "gate": self.gate.gradient(kernels, self.gate_view(X), logit_gradient,
                                       params["gate"], penalty_scale=penalty_scale,
                                       log_prior_gradient=(W if log_prior_gradient is None
                                                           else log_prior_gradient)),
            "experts": self.family.gradient(kernels, self.expert_view(X), Y, W,
                                            params["experts"], penalty_scale=penalty_scale),
        }

    def coordinate_reference(self, Y, sample_weight):
        """What the coordinates depend on besides the parameters (small host arrays)."""
        return {"experts": self.family.coordinate_reference(Y, sample_weight)}

    def coordinates(self, params, reference):
        """:class:`ModelCoordinates` anchored at ``params``."""
        return ModelCoordinates(self.gate.coordinates(params["gate"]),
                                self.family.coordinates(params["experts"],
                                                        reference["experts"]))

    # ---- user scale ------------------------------------------------------
    def to_user(self, params, x_mean, x_scale, squeeze=False):
        """Public attributes (name -> array) from the standardisation of all columns."""
        return {**self.gate.public(params["gate"], self.gate_view(x_mean),
                                   self.gate_view(x_scale)),
                **self.family.to_user(params["experts"], self.expert_view(x_mean),
                                      self.expert_view(x_scale), squeeze=squeeze)}

    def from_user(self, attributes, x_mean, x_scale):
        """Internal parameters for the standardisation (x_mean, x_scale) of all columns."""
        gate = self.gate.from_public(attributes, self.gate_view(x_mean), self.gate_view(x_scale))
        n_experts = self.gate.n_experts(gate)
        return {"gate": gate,
                "experts": self.family.from_user(attributes, n_experts,
                                                 self.expert_view(x_mean),
                                                 self.expert_view(x_scale))}

    # ---- growing and pruning -------------------------------------------
    def split(self, params, j, rng):
        """Expert ``j`` split in two, the new half appended last."""
        return {"gate": self.gate.split(params["gate"], j),
                "experts": self.family.split(params["experts"], j, rng)}

    def take(self, params, index):
        """The model restricted to experts ``index`` (an int array), in that order."""
        return {"gate": self.gate.take(params["gate"], index),
                "experts": self.family.take(params["experts"], index)}
