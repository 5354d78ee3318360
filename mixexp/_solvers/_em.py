"""Expectation-maximisation (Jordan & Jacobs 1994).

E-step: responsibilities h_ik in log space. M-step: each expert by its
family's weighted fit, the gate by a weighted multinomial logistic
regression on the soft targets h. Every step is a (generalised) M-step, so
the penalised log-likelihood never decreases.

With hard gating the E-step is a classification step (each sample to its
most probable expert, Celeux & Govaert 1992) and the monotone quantity is
the classification log-likelihood. A load-balancing penalty depends on the
gate alone, so it only changes the gate M-step (see ``mixexp._balance``).

An expert whose share of the responsibilities vanishes (below
``VANISHED_SHARE`` of the training weight) no longer learns anything. EM
tries once per expert to re-initialise it: the expert is replaced by half
of a split of the worst-fitting expert (``mixexp._resize``), and the
proposal is kept only if, after one EM step from it, the objective is no
lower than before. So re-initialisation never breaks monotonicity; an
expert it cannot revive stays, with a negligible gate, and the estimator
warns about it.
"""

import numpy as np

from .._balance import balance_terms
from .._resize import replace_expert
from .._routing import posterior
from ._monitor import ConvergenceMonitor
from ._options import SolverOptions
from ._result import SolverResult

# An expert with less than this share of the responsibilities has vanished.
VANISHED_SHARE = 1e-8


class _Evaluation:
    """E-step at given parameters: responsibilities and the objectives.

    Fills ``resp`` (n, K) and ``log_g`` (n, K), the log gate at ``params``,
    which the next gate M-step starts from instead of recomputing it.
    """

    def __init__(self, model, kernels, data, params, resp, log_g, options):
        if options.classify:
            model.log_prior(kernels, data.X, params, out=log_g)
            log_joint = log_g + model.log_density(kernels, data.X, data.Y, params)
            log_norm = posterior(kernels, log_joint, True, resp_out=resp)[0]
        else:  # the fused E-step writes the log gate in the same pass
            log_norm = model.e_step(kernels, data.X, data.Y, params, resp, log_gate_out=log_g)
        total = data.total_weight
        self.log_likelihood = float(data.sample_weight @ log_norm) / total
        penalty = model.penalty(params)
        self.objective = self.log_likelihood - penalty / total
        if options.balance > 0:
            self.objective -= balance_terms(kernels.xp.exp(log_g), data.sample_weight,
                                            options.balance)[0]
        # each expert's share of the training weight, from the responsibilities
        self.share = kernels.to_host(data.sample_weight @ resp) / total


class _Revival:
    """Re-initialisation of vanished experts, each tried at most once per run."""

    def __init__(self, model, kernels, data, options):
        self.model, self.kernels, self.data, self.options = model, kernels, data, options
        self.tried = set()
        self.rng = np.random.default_rng([*options.seed, 3])

    def attempt(self, params, current, resp, log_g):
        """Try to revive one vanished expert.

        Returns ``(params, evaluation)`` after one EM step from the proposal
        (its responsibilities and log gate written into ``resp`` and
        ``log_g``) if that step's objective is no lower than ``current``'s,
        else None (``resp`` and ``log_g`` unchanged).
        """
        candidates = [k for k in np.flatnonzero(current.share < VANISHED_SHARE)
                      if k not in self.tried]
        if not candidates or len(current.share) == 1:
            return None
        k = int(candidates[0])
        self.tried.add(k)
        model, kernels, data, options = self.model, self.kernels, self.data, self.options
        proposal = replace_expert(model, kernels, data, params, k, self.rng)
        trial_resp, trial_log_g = kernels.xp.empty_like(resp), kernels.xp.empty_like(log_g)
        _Evaluation(model, kernels, data, proposal, trial_resp, trial_log_g, options)
        trial_resp *= data.sample_weight[:, None]
        proposal = model.m_step(kernels, data, proposal, trial_resp, log_prior=trial_log_g,
                                log_prior_ready=True, balance=options.balance)
        evaluation = _Evaluation(model, kernels, data, proposal, trial_resp, trial_log_g,
                                 options)
        if not evaluation.objective >= current.objective:
            return None
        resp[...] = trial_resp
        log_g[...] = trial_log_g
        return proposal, evaluation


def run_em(model, kernels, data, params, *, max_iter, tol, verbose=0, options=None):
    """Run EM from ``params`` until the objective gains less than ``tol``.

    Parameters
    ----------
    model : MixtureModel
        The gate and expert family (``mixexp._model``).
    kernels : kernel bundle
    data : TrainingData
        Standardised X, 2-D Y, sample weights.
    params : dict
        Starting parameters (internal scale), ``{"gate": ..., "experts": ...}``.
    max_iter : int
    tol : float
        Convergence threshold on the gain in mean penalised log-likelihood.
    verbose : int
    options : SolverOptions, optional
        Gating mode (hard gating: classification EM) and load balancing;
        ``top_k`` only concerns prediction here: EM trains the dense gate.

    Returns
    -------
    SolverResult
        The returned parameters are those of the last E-step, so the
        reported log-likelihood and responsibilities belong to them.
    """
    options = options or SolverOptions()
    n_experts = model.n_experts(params)
    # (n, K) buffers reused across iterations, where the data live (on the
    # GPU for backend="cupy": per iteration only parameters, M-step
    # statistics and a few scalars cross to the host)
    resp = kernels.xp.empty((data.X.shape[0], n_experts), dtype=data.X.dtype)
    log_g = kernels.xp.empty_like(resp)
    current = _Evaluation(model, kernels, data, params, resp, log_g, options)
    monitor = ConvergenceMonitor("EM iteration", tol, verbose=bool(verbose))
    revival = _Revival(model, kernels, data, options)
    for _ in range(max_iter):
        revived = revival.attempt(params, current, resp, log_g)
        if revived is not None:
            # never declared converged right after a revival
            params, current, change = *revived, np.inf
        else:
            resp *= data.sample_weight[:, None]
            params = model.m_step(kernels, data, params, resp, log_prior=log_g,
                                  log_prior_ready=True, balance=options.balance)
            previous, current = current, _Evaluation(model, kernels, data, params, resp,
                                                     log_g, options)
            change = current.objective - previous.objective
        note = " (re-initialised a vanished expert)" if revived is not None else ""
        if monitor.record(current.objective, current.log_likelihood, change, note=note):
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
