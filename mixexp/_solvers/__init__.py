"""Training methods: the package face the estimators import from.

Each solver is a function ``solve(model, kernels, data, params, *,
max_iter, tol, verbose, options)`` returning a :class:`SolverResult`;
they share one :class:`ConvergenceMonitor`.
"""

from ._adam import adam_partial_fit, run_adam
from ._em import VANISHED_SHARE, run_em
from ._lbfgs import run_lbfgs
from ._monitor import ConvergenceMonitor
from ._options import (
    SOLVER_NAMES,
    STOCHASTIC_SOLVERS,
    SolverOptions,
    check_solver_options,
)
from ._result import SolverResult

SOLVERS = {"em": run_em, "lbfgs": run_lbfgs, "adam": run_adam}

__all__ = [
    "VANISHED_SHARE",
    "ConvergenceMonitor",
    "SOLVERS",
    "SOLVER_NAMES",
    "STOCHASTIC_SOLVERS",
    "SolverOptions",
    "SolverResult",
    "adam_partial_fit",
    "check_solver_options",
    "run_adam",
    "run_em",
    "run_lbfgs",
]
