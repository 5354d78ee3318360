"""Mini-batch Adam on all gate and expert parameters (Kingma & Ba 2015).

One iteration is one epoch: the rows are split into mini-batches of
``batch_size`` (shuffled each epoch when ``shuffle``), and each batch takes
one Adam step along the gradient of :mod:`._gradient` (gate noise, when
asked, is redrawn at every step: noisy top-k gating, Shazeer et al. 2017).
After each epoch the noise-free objective of the whole training set is
evaluated; training stops when it has not improved by ``tol`` for
``n_iter_no_change`` epochs (MLPRegressor's rule), and the best parameters
seen are returned. The objective history is that of the best parameters so
far, which is what a stochastic solver can promise never decreases.
"""

from dataclasses import dataclass

import numpy as np

from ._gradient import GradientObjective
from ._monitor import ConvergenceMonitor
from ._options import SolverOptions
from ._result import SolverResult

_BETA_1, _BETA_2, _EPSILON = 0.9, 0.999, 1e-8
_AUTO_BATCH_SIZE = 200
_MAX_GRADIENT = 1e100


@dataclass
class AdamState:
    """Everything Adam carries between steps (and between ``partial_fit`` calls).

    ``flat`` is the current point on ``coordinates``, ``m`` and ``v`` the
    moment estimates, ``t`` the number of steps taken and ``rng`` the
    generator of batches and gate noise. The coordinates are anchored at
    ``anchor`` (the parameters Adam started from) with the data summary
    ``reference``: with them, :meth:`to_dict` keeps the state as plain
    arrays and numbers (what a fitted estimator stores and persists), and
    :meth:`from_dict` rebuilds the same coordinates exactly.
    """

    coordinates: object
    anchor: dict
    reference: dict
    flat: np.ndarray
    m: np.ndarray
    v: np.ndarray
    t: int
    rng: np.random.Generator

    @classmethod
    def start(cls, model, data, params, seed):
        reference = model.coordinate_reference(data.Y, data.sample_weight)
        coordinates = model.coordinates(params, reference)
        flat = coordinates.project(coordinates.pack(params))
        return cls(coordinates, params, reference, flat, np.zeros_like(flat),
                   np.zeros_like(flat), 0, np.random.default_rng(seed))

    def to_dict(self):
        return {"anchor": self.anchor, "reference": self.reference, "flat": self.flat.copy(),
                "m": self.m.copy(), "v": self.v.copy(), "t": self.t,
                "rng": self.rng.bit_generator.state}

    @classmethod
    def from_dict(cls, model, state):
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng"]
        return cls(model.coordinates(state["anchor"], state["reference"]), state["anchor"],
                   state["reference"], state["flat"].copy(), state["m"].copy(),
                   state["v"].copy(), int(state["t"]), rng)


def _batch_size(options, n_samples):
    size = _AUTO_BATCH_SIZE if options.batch_size == "auto" else int(options.batch_size)
    return max(1, min(size, n_samples))


def adam_epoch(objective, state, options):
    """One pass over ``objective.data`` in mini-batches, updating ``state`` in place."""
    xp = objective.kernels.xp
    n_samples = objective.data.X.shape[0]
    batch_size = _batch_size(options, n_samples)
    # the order is drawn on the host: the same batches on every backend
    order = state.rng.permutation(n_samples) if options.shuffle else None
    sample_weight = objective.data.sample_weight
    for start in range(0, n_samples, batch_size):
        rows = slice(start, start + batch_size) if order is None else xp.asarray(np.sort(
            order[start : start + batch_size]))
        if not bool(xp.any(sample_weight[rows] > 0)):
            continue  # a batch of zero weight carries no information
        gradient = objective.evaluate(state.flat, rows=rows, rng=state.rng).gradient
        # the step is m / sqrt(v): a gradient this large moves its coordinate by the
        # full learning rate either way, and clipped it cannot overflow when squared
        # (a penalty of 1e200 against tiny sample weights, say)
        np.clip(gradient, -_MAX_GRADIENT, _MAX_GRADIENT, out=gradient)
        state.t += 1
        state.m *= _BETA_1
        state.m += (1.0 - _BETA_1) * gradient
        state.v *= _BETA_2
        state.v += (1.0 - _BETA_2) * gradient**2
        # bias-corrected step, ascent on the objective
        step_size = options.learning_rate_init * np.sqrt(1.0 - _BETA_2**state.t) / (
            1.0 - _BETA_1**state.t)
        state.flat += step_size * state.m / (np.sqrt(state.v) + _EPSILON)
        state.coordinates.project(state.flat)


def run_adam(model, kernels, rows, params, *, max_iter, tol, verbose=0, options=None,
             state=None):
    """Run Adam epochs from ``params`` (or from ``state``, to continue).

    Parameters
    ----------
    model : MixtureModel
    kernels : kernel bundle
    rows : InMemoryRows
        The training rows (their standardised copy is used).
    params : dict
        Starting parameters (internal scale); ignored when ``state`` is given.
    max_iter : int
        Epochs at most.
    tol : float
        An epoch improves when it raises the best objective by more than tol.
    verbose : int
    options : SolverOptions, optional
    state : dict, optional
        Continue from it (``partial_fit``): moments and step count carry on.

    Returns
    -------
    SolverResult
        ``state`` holds the Adam state (:meth:`AdamState.to_dict`),
        positioned at the returned parameters.
    """
    options = options or SolverOptions()
    data = rows.whole()
    state = (AdamState.start(model, data, params, [*options.seed, 1]) if state is None
             else AdamState.from_dict(model, state))
    objective = GradientObjective(model, kernels, data, options, state.coordinates)
    best = objective.evaluate(state.flat, gradient=False)
    best_flat = state.flat.copy()
    # the history is the best objective so far; an epoch "gains" what it
    # adds to the best (never negative), MLPRegressor's n_iter_no_change rule
    monitor = ConvergenceMonitor("Adam epoch", tol, patience=options.n_iter_no_change + 1,
                                 one_sided=True, verbose=bool(verbose))
    for _ in range(max_iter):
        adam_epoch(objective, state, options)
        current = objective.evaluate(state.flat, gradient=False)
        gain = current.objective - best.objective
        if current.objective > best.objective:
            best, best_flat = current, state.flat.copy()
        if monitor.record(best.objective, best.log_likelihood, gain,
                          shown=f"this epoch {current.objective:.6f}"):
            break
    state.flat = best_flat  # a later partial_fit continues from the returned model
    return SolverResult(
        params=state.coordinates.unpack(best_flat),
        objective=best.objective,
        log_likelihood=best.log_likelihood,
        n_iter=monitor.n_iter,
        converged=monitor.converged,
        objective_history=monitor.objective_history,
        log_likelihood_history=monitor.log_likelihood_history,
        state=state.to_dict(),
    )


def adam_partial_fit(model, kernels, rows, params, state, options):
    """One epoch over ``data`` from ``state`` (or from ``params`` if None): ``partial_fit``.

    Unlike :func:`run_adam` the last parameters are kept (a stream has no
    held-out best); the reported objective is the noise-free one on
    the batch after the epoch.
    """
    data = rows.whole()
    state = (AdamState.start(model, data, params, [*options.seed, 1]) if state is None
             else AdamState.from_dict(model, state))
    objective = GradientObjective(model, kernels, data, options, state.coordinates)
    adam_epoch(objective, state, options)
    current = objective.evaluate(state.flat, gradient=False)
    return SolverResult(
        params=state.coordinates.unpack(state.flat),
        objective=current.objective,
        log_likelihood=current.log_likelihood,
        n_iter=1,
        converged=False,
        objective_history=[current.objective],
        log_likelihood_history=[current.log_likelihood],
        state=state.to_dict(),
    )
