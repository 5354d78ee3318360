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

from .._balance import balance_terms, fit_balanced_gate
from .._gating import GATE_NEWTON_STEPS, fit_gate, gate_penalty
from .._resize import replace_expert
from .._routing import posterior
from ._options import SolverOptions
from ._result import SolverResult


class _Evaluation:
    """E-step at given parameters: responsibilities and the objectives.

    Fills ``resp`` (n, K) and ``log_g`` (n, K), the log gate at ``params``,
    which the next gate M-step starts from instead of recomputing it.
    """

    def __init__(self, family, kernels, data, params, resp, log_g, options):
        if options.classify:
            kernels.log_gate(data.X, params["gate_coef"], params["gate_intercept"], out=log_g)
            log_joint = log_g + family.log_density(kernels, data.X, data.Y, params)
            log_norm = posterior(kernels, log_joint, True, resp_out=resp)[0]
        else:  # the fused E-step writes the log gate in the same pass
            log_norm = family.e_step(kernels, data.X, data.Y, params, resp, log_gate_out=log_g)
        total = data.total_weight
        self.log_likelihood = float(data.sample_weight @ log_norm) / total
        penalty = family.penalty(params) + gate_penalty(params["gate_coef"], data.alpha)
        self.objective = self.log_likelihood - penalty / total
        if options.balance > 0:
            self.objective -= balance_terms(kernels.xp.exp(log_g), data.sample_weight,
                                            options.balance)[0]
        # each expert's share of the training weight, from the responsibilities
        self.share = kernels.to_host(data.sample_weight @ resp) / total


# An expert with less than this share of the responsibilities has vanished.
VANISHED_SHARE = 1e-8


def m_step(family, kernels, data, params, weighted_resp, log_g=None, balance=0.0,
           log_g_ready=False, gate_steps=GATE_NEWTON_STEPS):
    """One M-step from weighted responsibilities (n, K): new parameters.

    ``log_g`` is the gate's scratch buffer (n, K); with ``log_g_ready`` it
    holds the log gate at ``params`` already (from the E-step).
    ``gate_steps`` bounds the gate's Newton steps (the load-balanced gate
    keeps its own bound: its line search sees the balance term too).
    """
    new_params = family.m_step(kernels, data.X, data.Y, weighted_resp, params)
    if balance > 0:
        gate = fit_balanced_gate(
            kernels, data.X, weighted_resp, data.sample_weight, params["gate_coef"],
            params["gate_intercept"], data.alpha, balance, log_g=log_g,
            log_g_ready=log_g_ready,
        )
    else:
        gate = fit_gate(
            kernels, data.X, weighted_resp, params["gate_coef"], params["gate_intercept"],
            data.alpha, log_g=log_g, log_g_ready=log_g_ready, max_iter=gate_steps,
        )
    new_params["gate_coef"], new_params["gate_intercept"] = gate
    return new_params


class _Revival:
    """Re-initialisation of vanished experts, each tried at most once per run."""

    def __init__(self, family, kernels, data, options):
        self.family, self.kernels, self.data, self.options = family, kernels, data, options
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
        family, kernels, data, options = self.family, self.kernels, self.data, self.options
        proposal = replace_expert(family, kernels, data, params, k, self.rng)
        trial_resp, trial_log_g = kernels.xp.empty_like(resp), kernels.xp.empty_like(log_g)
        _Evaluation(family, kernels, data, proposal, trial_resp, trial_log_g, options)
        trial_resp *= data.sample_weight[:, None]
        proposal = m_step(family, kernels, data, proposal, trial_resp, log_g=trial_log_g,
                          balance=options.balance, log_g_ready=True)
        evaluation = _Evaluation(family, kernels, data, proposal, trial_resp, trial_log_g,
                                 options)
        if not evaluation.objective >= current.objective:
            return None
        resp[...] = trial_resp
        log_g[...] = trial_log_g
        return proposal, evaluation


def run_em(family, kernels, data, params, *, max_iter, tol, verbose=0, options=None):
    """Run EM from ``params`` until the objective gains less than ``tol``.

    Parameters
    ----------
    family : expert family (see ``mixexp._experts``)
    kernels : kernel bundle
    data : TrainingData
        Standardised X, 2-D Y, sample weights, alpha.
    params : dict
        Starting parameters (internal scale).
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
    n_experts = params["gate_coef"].shape[0]
    # (n, K) buffers reused across iterations, where the data live (on the
    # GPU for backend="cupy": per iteration only parameters, M-step
    # statistics and a few scalars cross to the host)
    resp = kernels.xp.empty((data.X.shape[0], n_experts), dtype=data.X.dtype)
    log_g = kernels.xp.empty_like(resp)
    current = _Evaluation(family, kernels, data, params, resp, log_g, options)
    objective_history, log_likelihood_history = [], []
    revival = _Revival(family, kernels, data, options)
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        revived = revival.attempt(params, current, resp, log_g)
        if revived is not None:
            # never declared converged right after a revival
            params, current, change = *revived, np.inf
        else:
            resp *= data.sample_weight[:, None]
            params = m_step(family, kernels, data, params, resp, log_g=log_g,
                            balance=options.balance, log_g_ready=True)
            previous, current = current, _Evaluation(family, kernels, data, params, resp,
                                                     log_g, options)
            change = current.objective - previous.objective
        objective_history.append(current.objective)
        log_likelihood_history.append(current.log_likelihood)
        if verbose:
            note = " (re-initialised a vanished expert)" if revived is not None else ""
            print(
                f"  EM iteration {n_iter}: log-likelihood {current.log_likelihood:.6f}"
                f" objective {current.objective:.6f} (change {change:.3e}){note}"
            )
        if abs(change) < tol:
            converged = True
            break
    return SolverResult(
        params=params,
        objective=current.objective,
        log_likelihood=current.log_likelihood,
        n_iter=n_iter,
        converged=converged,
        objective_history=objective_history,
        log_likelihood_history=log_likelihood_history,
    )
