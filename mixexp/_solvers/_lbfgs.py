"""Full-batch L-BFGS on all gate and expert parameters at once (Jacobs et al. 1991).

SciPy's L-BFGS-B minimises minus the mean penalised log-likelihood, with the
analytic gradient of :mod:`._gradient` (one E-step per evaluation). Variances
move on a log scale with the variance floor as a bound. Each accepted
iterate satisfies the Wolfe conditions, so the objective history never
decreases, as EM's.
"""

import numpy as np
from scipy import optimize

from ._gradient import GradientObjective, RowsObjective
from ._monitor import ConvergenceMonitor
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


def run_lbfgs(model, kernels, rows, params, *, max_iter, tol, verbose=0, options=None):
    """Run L-BFGS from ``params`` until the objective gains less than ``tol``.

    Parameters
    ----------
    model : MixtureModel
    kernels : kernel bundle
    rows : InMemoryRows or DaskRows
        The training rows: their standardised copy, or for rows held on a
        cluster one ``map_reduce`` pass per evaluation.
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
    if rows.local:
        data = rows.whole()
        coordinates = model.coordinates(params, model.coordinate_reference(data.Y,
                                                                           data.sample_weight))
        objective = GradientObjective(model, kernels, data, options, coordinates)
    else:  # rows on a cluster (soft gating, no balance): one pass per evaluation
        coordinates = model.coordinates(params, model.coordinate_reference(*rows.targets()))
        objective = RowsObjective(model, kernels, rows, coordinates)
    start = coordinates.project(coordinates.pack(params))
    last = {}  # the latest evaluation, which is the accepted iterate in the callback

    def negative(flat):
        evaluation = objective.evaluate(flat)
        last.update(flat=flat.copy(), evaluation=evaluation)
        return -evaluation.objective, -evaluation.gradient

    monitor = ConvergenceMonitor("L-BFGS iteration", tol, patience=_PATIENCE,
                                 verbose=bool(verbose))
    previous = [objective.evaluate(start, gradient=False).objective]

    def callback(intermediate_result):
        flat = intermediate_result.x
        if np.array_equal(flat, last.get("flat")):
            evaluation = last["evaluation"]
        else:
            evaluation = objective.evaluate(flat, gradient=False)
        change = evaluation.objective - previous[0]
        previous[0] = evaluation.objective
        if monitor.record(evaluation.objective, evaluation.log_likelihood, change):
            raise StopIteration

    result = optimize.minimize(
        negative, start, jac=True, method="L-BFGS-B", callback=callback,
        bounds=optimize.Bounds(coordinates.lower, coordinates.upper),
        options={"maxiter": max_iter, "maxfun": _MAX_FUN_PER_ITER * max_iter,
                 "ftol": 0.0, "gtol": 0.0, "maxcor": _HISTORY},
    )
    # Stopping without an iteration limit (a line search that finds no
    # further decrease) means no progress is possible: treated as converged.
    converged = monitor.converged or result.status != 1
    flat = coordinates.project(result.x.copy())
    final = objective.evaluate(flat, gradient=False)
    objective_history, log_likelihood_history = (monitor.objective_history,
                                                 monitor.log_likelihood_history)
    if not objective_history:
        objective_history.append(final.objective)
        log_likelihood_history.append(final.log_likelihood)
    return SolverResult(
        params=coordinates.unpack(flat),
        objective=final.objective,
        log_likelihood=final.log_likelihood,
        n_iter=len(objective_history),
        converged=converged,
        objective_history=objective_history,
        log_likelihood_history=log_likelihood_history,
    )
