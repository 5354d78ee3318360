"""One convergence monitor for every solver: history, verbose lines, stopping rule."""


class ConvergenceMonitor:
    """Records one entry per iteration and says when training has converged.

    Converged after ``patience`` consecutive iterations whose gain is small:
    ``|gain| < tol`` (EM, L-BFGS), or ``gain <= tol`` with ``one_sided``
    (Adam, whose gain over the best so far is never negative).

    Parameters
    ----------
    label : str
        Printed before the iteration number ("EM iteration", "Adam epoch").
    tol : float
    patience : int, default=1
    one_sided : bool, default=False
    verbose : bool, default=False
        Print one line per iteration.
    """

    def __init__(self, label, tol, *, patience=1, one_sided=False, verbose=False):
        self.label = label
        self.tol = tol
        self.patience = patience
        self.one_sided = one_sided
        self.verbose = verbose
        self.objective_history = []
        self.log_likelihood_history = []
        self.small_gains = 0
        self.converged = False

    @property
    def n_iter(self):
        return len(self.objective_history)

    def record(self, objective, log_likelihood, gain, *, shown=None, note=""):
        """Add an iteration's objective and log-likelihood; return whether converged.

        ``gain`` is what the stopping rule tests; ``shown`` the text after
        the values in the verbose line (default: the change).
        """
        self.objective_history.append(objective)
        self.log_likelihood_history.append(log_likelihood)
        if self.verbose:
            shown = f"change {gain:.3e}" if shown is None else shown
            print(f"  {self.label} {self.n_iter}: log-likelihood {log_likelihood:.6f} "
                  f"objective {objective:.6f} ({shown}){note}")
        small = gain <= self.tol if self.one_sided else abs(gain) < self.tol
        self.small_gains = self.small_gains + 1 if small else 0
        self.converged = self.small_gains >= self.patience
        return self.converged
