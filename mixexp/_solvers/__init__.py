"""Training methods. Each solver is a function returning a :class:`SolverResult`."""

from ._adam import run_adam
from ._em import run_em
from ._lbfgs import run_lbfgs
from ._options import (
    SOLVER_NAMES,
    STOCHASTIC_SOLVERS,
    SolverOptions,
    check_solver_options,
)
from ._result import SolverResult

SOLVERS = {"em": run_em, "lbfgs": run_lbfgs, "adam": run_adam}

__all__ = [
    "SOLVERS",
    "SOLVER_NAMES",
    "STOCHASTIC_SOLVERS",
    "SolverOptions",
    "SolverResult",
    "check_solver_options",
    "run_adam",
    "run_em",
    "run_lbfgs",
]
