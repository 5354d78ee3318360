"""Options every solver receives, and their compatibility, checked once up front."""

from dataclasses import dataclass

# Solvers whose objective is drawn at random (mini-batches, gate noise).
STOCHASTIC_SOLVERS = ("adam",)
SOLVER_NAMES = {"em": "EM", "lbfgs": "L-BFGS", "adam": "Adam"}


@dataclass(frozen=True)
class SolverOptions:
    """Settings beyond (max_iter, tol) that shape a solver's objective or its steps.

    ``gating`` and ``balance`` define the objective (the same for every
    solver); ``top_k`` concerns prediction, and training only with
    ``gate_noise`` (noisy top-k gating); ``gate_noise`` and the mini-batch
    settings are only read by ``"adam"``. ``seed`` makes the random choices (batches, gate noise)
    reproducible.
    """

    gating: str = "soft"
    top_k: int | None = None
    balance: float = 0.0
    gate_noise: float = 0.0
    batch_size: int | str = "auto"
    learning_rate_init: float = 0.01
    shuffle: bool = True
    n_iter_no_change: int = 10
    seed: tuple = (0,)

    @property
    def classify(self):
        """Hard gating trains on the classification log-likelihood."""
        return self.gating == "hard"


def check_solver_options(solver, *, n_experts, gating, top_k, gate_noise):
    """Raise ValueError for a combination of options the solver cannot honour.

    Individual values are validated by ``_parameter_constraints``; this
    checks how they combine, once, before any data is touched (as
    scikit-learn's LogisticRegression does for solver and penalty).
    """
    if top_k is not None and top_k > n_experts:
        raise ValueError(
            f"top_k={top_k} is larger than n_experts={n_experts}; use at most n_experts "
            "(top_k=n_experts is the same as soft gating)."
        )
    if top_k is not None and gating == "hard":
        raise ValueError(
            "top_k applies to gating='soft'; gating='hard' already keeps one expert per "
            "sample. Set top_k=None, or use gating='soft' with top_k."
        )
    if gate_noise > 0 and top_k == 1 and n_experts > 1:
        raise ValueError(
            "Noisy top-k gating with top_k=1 gives the gate no gradient (the renormalised "
            "gate of a single expert is 1). Use gating='hard' to train a winner-take-all "
            "gate, or top_k >= 2."
        )
    if gate_noise > 0 and solver not in STOCHASTIC_SOLVERS:
        raise ValueError(
            f"gate_noise={gate_noise} needs solver='adam': noisy gating redraws the noise at "
            f"every step, which {SOLVER_NAMES[solver]} cannot use (it needs a deterministic "
            "objective). Use solver='adam', or set gate_noise=0."
        )
