"""The one result type every solver returns."""

from dataclasses import dataclass, field


@dataclass
class SolverResult:
    """Outcome of one training run from one start.

    Attributes
    ----------
    params : dict of ndarray
        Fitted parameters on the internal (standardised) scale.
    objective : float
        Mean penalised log-likelihood per unit of sample weight: the quantity
        the solver maximises.
    log_likelihood : float
        Mean (weighted) log-likelihood of the training data, unpenalised.
    n_iter : int
        Iterations performed.
    converged : bool
    objective_history, log_likelihood_history : list of float
        One value per iteration, for the parameters after that iteration.
    state : object or None
        What a solver needs to continue later (Adam's moments, for
        ``partial_fit``); None for solvers that restart from parameters.
    """

    params: dict
    objective: float
    log_likelihood: float
    n_iter: int
    converged: bool
    objective_history: list = field(default_factory=list)
    log_likelihood_history: list = field(default_factory=list)
    state: object = None
