"""Expectation-maximisation (Jordan & Jacobs 1994).

E-step: responsibilities h_ik in log space. M-step: each expert by its
family's weighted fit, the gate by a weighted multinomial logistic
regression on the soft targets h. Every step is a (generalised) M-step, so
the penalised log-likelihood never decreases.
"""

import numpy as np

from .._gating import fit_gate, gate_penalty
from ._result import SolverResult


class _Evaluation:
    """E-step at given parameters: responsibilities and the objectives."""

    def __init__(self, family, kernels, data, params, resp):
        log_norm = family.e_step(kernels, data.X, data.Y, params, resp)
        total = data.total_weight
        self.log_likelihood = float(data.sample_weight @ log_norm) / total
        penalty = family.penalty(params) + gate_penalty(params["gate_coef"], data.alpha)
        self.objective = self.log_likelihood - penalty / total


def m_step(family, kernels, data, params, weighted_resp, log_g=None):
    """One M-step from weighted responsibilities (n, K): new parameters."""
    new_params = family.m_step(kernels, data.X, data.Y, weighted_resp, params)
    new_params["gate_coef"], new_params["gate_intercept"] = fit_gate(
        kernels,
        data.X,
        weighted_resp,
        params["gate_coef"],
        params["gate_intercept"],
        data.alpha,
        log_g=log_g,
    )
    return new_params


def run_em(family, kernels, data, params, *, max_iter, tol, verbose=0):
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

    Returns
    -------
    SolverResult
        The returned parameters are those of the last E-step, so the
        reported log-likelihood and responsibilities belong to them.
    """
    n_experts = params["gate_coef"].shape[0]
    # (n, K) buffers reused across iterations
    resp = np.empty((data.X.shape[0], n_experts), dtype=data.X.dtype)
    log_g = np.empty_like(resp)
    current = _Evaluation(family, kernels, data, params, resp)
    objective_history, log_likelihood_history = [], []
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        resp *= data.sample_weight[:, None]
        params = m_step(family, kernels, data, params, resp, log_g=log_g)
        previous, current = current, _Evaluation(family, kernels, data, params, resp)
        objective_history.append(current.objective)
        log_likelihood_history.append(current.log_likelihood)
        change = current.objective - previous.objective
        if verbose:
            print(
                f"  EM iteration {n_iter}: log-likelihood {current.log_likelihood:.6f}"
                f" objective {current.objective:.6f} (change {change:.3e})"
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
