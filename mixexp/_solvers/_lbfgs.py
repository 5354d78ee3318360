"""Full-batch L-BFGS on all gate and expert parameters at once (Jacobs et al. 1991).

SciPy's L-BFGS-B minimises minus the mean penalised log-likelihood, with the
analytic gradient of :mod:`._gradient` (one E-step per evaluation). Variances
move on a log scale with the variance floor as a bound. Each accepted
iterate satisfies the Wolfe conditions, so the objective history never
decreases, as EM's.
"""

import numpy as np
from scipy import optimize

from ._gradient import GradientObjective, Packing
from ._options import SolverOptions
from ._result import SolverResult

# Function evaluations allowed per iteration on average (line searches).
_MAX_FUN_PER_ITER = 20
# Converged after this many consecutive iterations gaining less than tol:
# L-BFGS can crawl for an iteration or two before it accelerates (near the
# saddle left by splitting an expert, say), where EM's one-step test would
# stop it.
_PATIENCE = 3
# Correction pairs kept: more than SciPy's 10 pays on these mildly coupled
# problems (measured on make_moe_regression n=2000, K=3: 102 iterations
# instead of 175 to converge).
_HISTORY = 20


def run_lbfgs(family, kernels, data, params, *, max_iter, tol, verbose=0, options=None):
    """Run L-BFGS from ``params`` until the objective gains less than ``tol``.

    Parameters
    ----------
    family : expert family
    kernels : kernel bundle
    data : TrainingData
    params : dict
        Starting parameters (internal scale).
    max_iter : int
        L-BFGS iterations at most.
    tol : float
        Convergence threshold on the gain in mean penalised log-likelihood
        per sample per iteration, for ``_PATIENCE`` iterations in a row.
    verbose : int
    options : SolverOptions, optional

    Returns
    -------
    SolverResult
    """
    options = options or SolverOptions()
    packing = Packing(params, data.Y, data.sample_weight, getattr(family, "variance_floor", None))
    objective = GradientObjective(family, kernels, data, options, packing)
    start = packing.project(packing.pack(params))
    last = {}  # the latest evaluation, which is the accepted iterate in the callback

    def negative(flat):
        evaluation = objective.evaluate(flat)
        last.update(flat=flat.copy(), evaluation=evaluation)
        return -evaluation.objective, -evaluation.gradient

    objective_history, log_likelihood_history = [], []
    state = {"previous": objective.evaluate(start, gradient=False).objective, "converged": False,
             "small_steps": 0}

    def callback(intermediate_result):
        flat = intermediate_result.x
        if np.array_equal(flat, last.get("flat")):
            evaluation = last["evaluation"]
        else:
            evaluation = objective.evaluate(flat, gradient=False)
        objective_history.append(evaluation.objective)
        log_likelihood_history.append(evaluation.log_likelihood)
        change = evaluation.objective - state["previous"]
        state["previous"] = evaluation.objective
        if verbose:
            print(
                f"  L-BFGS iteration {len(objective_history)}: log-likelihood "
                f"{evaluation.log_likelihood:.6f} objective {evaluation.objective:.6f} "
                f"(change {change:.3e})"
            )
        state["small_steps"] = state["small_steps"] + 1 if abs(change) < tol else 0
        if state["small_steps"] >= _PATIENCE:
            state["converged"] = True
            raise StopIteration

    result = optimize.minimize(
        negative, start, jac=True, method="L-BFGS-B", callback=callback,
        bounds=optimize.Bounds(packing.lower, packing.upper),
        options={"maxiter": max_iter, "maxfun": _MAX_FUN_PER_ITER * max_iter,
                 "ftol": 0.0, "gtol": 0.0, "maxcor": _HISTORY},
    )
    # Stopping without an iteration limit (a line search that finds no
    # further decrease) means no progress is possible: treated as converged.
    converged = state["converged"] or result.status != 1
    flat = packing.project(result.x.copy())
    final = objective.evaluate(flat, gradient=False)
    if not objective_history:
        objective_history.append(final.objective)
        log_likelihood_history.append(final.log_likelihood)
    return SolverResult(
        params=packing.unpack(flat),
        objective=final.objective,
        log_likelihood=final.log_likelihood,
        n_iter=len(objective_history),
        converged=converged,
        objective_history=objective_history,
        log_likelihood_history=log_likelihood_history,
    )
