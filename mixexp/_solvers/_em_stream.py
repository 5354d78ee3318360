"""Generalised EM for scikit-learn estimators as experts on rows held on Dask workers.

In memory, the M-step fits a new clone of each expert on all rows
(``mixexp._experts._estimator``). Rows spread over a cluster are never
gathered in one process, so here each expert is trained as dask-ml's
``Incremental`` trains a model: its ``partial_fit`` is streamed through the
blocks, the model travelling from block to block and the data staying where
they are. An iteration at theta_t takes three passes:

1. a sequential pass (``rows.fold``): every chunk computes the E-step at
   theta_t and calls ``partial_fit`` on each expert's candidate (a copy of
   the expert, continued) with weights W = s h; all K candidates share the
   pass;
2. a parallel pass: under the same weights, the old experts' and the
   candidates' weighted log-likelihoods (the regression experts' weighted
   squared residuals), from which the family's guard keeps, per expert, the
   one that scores higher (``stream_solve``): a generalised M-step, as in
   memory;
3. the evaluation pass at the new parameters, which gives the objective,
   the responsibilities' shares and the gate's Newton statistics for the
   next iteration, and checks the gate's step (taken from the previous
   evaluation's statistics, as one-pass EM does). A step that lowered the
   objective is halved, a pass each time, and after ``_MAX_GATE_HALVINGS``
   the gate stays: the experts' guarded step alone raises Q, so the
   objective does not fall (Dempster et al. 1977). Should even that fall
   by rounding, the iterate stays where it was. So the objective never
   decreases.

One epoch of ``partial_fit`` per iteration is not the weighted refit the
in-memory M-step makes: the candidate continues from the current expert
and moves by the estimator's online updates (for SGD, steps whose size
follows its learning-rate schedule), so the fit differs from the
in-memory one, needs more iterations, and depends on the order of the
blocks (and, where ``partial_fit`` shuffles or averages within a call, on
the chunking).
"""

import numpy as np

from .._experts._family import active_experts
from ._em import _MAX_GATE_HALVINGS, HESSIAN_SAMPLE_ROWS
from ._monitor import ConvergenceMonitor
from ._options import SolverOptions
from ._result import SolverResult


class _Evaluation:
    """The parallel pass at ``params``: objective, shares and the gate's statistics."""

    def __init__(self, model, kernels, rows, params, hessian_stride):
        n_experts = model.n_experts(params)

        def chunk_statistics(chunk):
            n = chunk.X.shape[0]
            log_prior = chunk.scratch("log_prior", n_experts)[:n]
            log_norm, W = model.chunk_weights(kernels, chunk, params, log_prior)
            return {"log_likelihood": float(chunk.sample_weight @ log_norm),
                    "share": kernels.to_host(W.sum(axis=0, dtype=np.float64)),
                    "gate": model.gate.statistics(kernels, model.gate_view(chunk.X), W,
                                                  params["gate"], log_prior,
                                                  hessian_stride=hessian_stride)}

        self.statistics = rows.map_reduce(chunk_statistics)
        total = rows.total_weight
        self.log_likelihood = self.statistics["log_likelihood"] / total
        self.objective = self.log_likelihood - model.penalty(params) / total
        self.share = self.statistics["share"] / total


def _streamed_experts(model, kernels, rows, params, active):
    """The experts' guarded M-step at ``params``: a sequential pass of partial_fit, then
    a parallel pass that scores the old experts against the candidates."""
    family = model.family

    def update(chunk, candidates):
        W = model.chunk_weights(kernels, chunk, params)[1]
        return family.stream_update(kernels, model.expert_view(chunk.X), chunk.Y, W,
                                    candidates, active)

    candidates = rows.fold(update, family.stream_start(params["experts"]))

    def score(chunk):
        W = model.chunk_weights(kernels, chunk, params)[1]
        return family.stream_statistics(kernels, model.expert_view(chunk.X), chunk.Y, W,
                                        params["experts"], candidates)

    return family.stream_solve(rows.map_reduce(score), params["experts"], candidates, active)


def run_streamed_em(model, kernels, rows, params, *, max_iter, tol, verbose=0, options=None):
    """Run generalised EM with experts streamed through ``partial_fit`` (see the module
    docstring) from ``params`` until the objective gains less than ``tol``.

    ``rows``: ``mixexp._dask.DaskRows`` (``map_reduce`` and ``fold``); ``options``:
    soft gating without load balancing (the estimators refuse the others up front).
    Returns a :class:`SolverResult`.
    """
    options = options or SolverOptions()
    monitor = ConvergenceMonitor("EM iteration", tol, verbose=bool(verbose))
    hessian_stride = max(1, rows.n_samples // HESSIAN_SAMPLE_ROWS)
    current = _Evaluation(model, kernels, rows, params, hessian_stride)
    for _ in range(max_iter):
        active = active_experts(current.share * rows.total_weight)
        experts = _streamed_experts(model, kernels, rows, params, active)
        direction = model.gate.direction(current.statistics["gate"], params["gate"],
                                         rows.total_weight,
                                         current.objective * rows.total_weight, rows.dtype)
        gate_t = 1.0
        for halving in range(_MAX_GATE_HALVINGS + 1):
            if halving == _MAX_GATE_HALVINGS:
                direction = None  # the experts' guarded step alone
            gate = (params["gate"] if direction is None
                    else model.gate.step(params["gate"], direction, gate_t))
            trial = {"gate": gate, "experts": experts}
            evaluation = _Evaluation(model, kernels, rows, trial, hessian_stride)
            if evaluation.objective >= current.objective:
                break
            gate_t *= 0.5
        note = ""
        if evaluation.objective >= current.objective:
            params, previous, current = trial, current, evaluation
            change = current.objective - previous.objective
        else:  # (the experts' step fell by rounding alone: nothing left to gain)
            change, note = 0.0, " (no step raised the objective)"
        if monitor.record(current.objective, current.log_likelihood, change,
                          shown=f"change {change:.3e}", note=note):
            break
    return SolverResult(
        params=params,
        objective=current.objective,
        log_likelihood=current.log_likelihood,
        n_iter=monitor.n_iter,
        converged=monitor.converged,
        objective_history=monitor.objective_history,
        log_likelihood_history=monitor.log_likelihood_history,
    )
