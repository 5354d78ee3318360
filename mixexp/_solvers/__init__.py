"""Training methods. Each solver is a function returning a :class:`SolverResult`."""

from ._em import run_em
from ._result import SolverResult

SOLVERS = {"em": run_em}

__all__ = ["SOLVERS", "SolverResult", "run_em"]
