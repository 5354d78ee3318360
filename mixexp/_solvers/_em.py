"""Expectation-maximisation (Jordan & Jacobs 1994), one pass over the rows per iteration.

E-step: responsibilities h_ik in log space. M-step: each expert by its
family's weighted fit, the gate by a weighted multinomial logistic
regression on the soft targets h. Every step is a (generalised) M-step, so
the penalised log-likelihood never decreases.

With hard gating the E-step is a classification step (each sample to its
most probable expert, Celeux & Govaert 1992) and the monotone quantity is
the classification log-likelihood. A load-balancing penalty depends on the
gate alone, so it only changes the gate M-step (see ``mixexp._balance``).

An expert whose share of the responsibilities vanishes (below
``VANISHED_SHARE`` of the training weight) no longer learns anything. EM
tries once per expert to re-initialise it: the expert is replaced by half
of a split of the worst-fitting expert (``mixexp._resize``), and the
proposal is kept only if, after one EM step from it, the objective is no
lower than before. So re-initialisation never breaks monotonicity; an
expert it cannot revive stays, with a negligible gate, and the estimator
warns about it.

One pass per iteration (soft gating, no load balancing, a gate and family
that split their M-steps into statistics and a host solve). The pass that
computes the E-step at the current parameters theta_t also accumulates
everything the M-step needs (the experts' weighted moments around their
current fits, the gate's gradient and Hessian at its current value), so
the M-step is a set of small solves on the host: the experts' exact
M-step, and one Newton step for the gate. The gate's step is checked by
the next pass, which evaluates the objective at the new parameters anyway:
kept if the objective did not fall, else halved (a pass each time), and
after ``_MAX_GATE_HALVINGS`` dropped. Monotonicity: an accepted iterate
either has an objective no lower than theta_t's by the check itself, or
keeps the gate of theta_t with the experts' exact M-step, which is a
generalised M-step (it raises the expected complete-data objective Q, so
the penalised log-likelihood does not fall: Dempster et al. 1977). So the
penalised objective never decreases, as in the multi-pass form, which
serves the other cases and evaluates the gate's line search on Q itself.

A family may skip optional statistics on some passes: its
``pass_schedule()`` (the Student-t family's: the nu step's candidate sums,
see ``CandidateSchedule``) gives each pass its options and learns from each
solve; it lives in this loop only, not in the parameters.

A family whose host solve is not an exact M-step (``exact_solve = False``:
the Poisson family's Newton step, which may overshoot) has its step checked
with the gate's: both are halved together until the next pass's objective
does not fall. The objective and Q are tangent at theta_t, so a small
enough joint step along ascent directions raises the objective; if
``_MAX_STEP_HALVINGS`` do not, the iterate stays (and EM has converged).
The stopping rule sees a halved step's gain divided by the fraction t of
the step taken: a step halved five times gains about 1/32 of what its
direction offers, and that small gain says nothing about convergence
(with logistic experts' steps made 10 and 100 times too long on purpose,
stopping on the raw gain ended fits 0.021 and 0.072 per sample below the
optimum's log-likelihood, on the gain per unit step 0.019 and 0.022; the
fits of real data measured needed no halving at all). The families of
this kind are Poisson's and the multinomial logistic experts', whose host
solve is one penalised Newton step per expert.
"""

import numpy as np

from .._balance import balance_terms
from .._resize import replace_expert
from .._routing import posterior
from ._em_rows import multi_pass_rows
from ._monitor import ConvergenceMonitor
from ._options import SolverOptions
from ._result import SolverResult

# An expert with less than this share of the responsibilities has vanished.
VANISHED_SHARE = 1e-8
# Halvings of a gate step whose objective fell before the step is dropped
# (each costs a pass; near convergence the full Newton step is kept).
_MAX_GATE_HALVINGS = 3
# Halvings of a joint gate and expert step of a family without an exact
# solve, before the iterate stays where it is.
_MAX_STEP_HALVINGS = 20
# Above this many rows, the gate's Newton step takes its Hessian from a
# systematic subsample of about this many rows (every m-th row of each
# chunk); the gradient still sums every row, and the step is checked by
# the next pass like any other. The Hessian costs K (d + 1)^2 / 2 products
# per row, K times the rest of a pass: at n=1e6, d=10, K=8 the subsample
# cuts an iteration's time by about a third for the same iteration count.
# Below it (every data set of the reference tests) the exact Hessian.
# With the fused pass (Numba's gaussian_pass) the sampled Hessian is about
# an eighth of a pass at 2**17 rows; fewer rows cost iterations (n=1e6,
# d=10, K=8: 74 iterations at 2**17, 75 at 2**16, 76 at 2**15), so 2**17.
HESSIAN_SAMPLE_ROWS = 2**17


class _Evaluation:
    """E-step at given parameters: responsibilities and the objectives.

    Fills ``resp`` (n, K) and ``log_g`` (n, K), the log gate at ``params``,
    which the next gate M-step starts from instead of recomputing it.
    """

    def __init__(self, model, kernels, data, params, resp, log_g, options):
        if options.classify:
            model.log_prior(kernels, data.X, params, out=log_g)
            log_joint = log_g + model.log_density(kernels, data.X, data.Y, params)
            log_norm = posterior(kernels, log_joint, True, resp_out=resp)[0]
        else:  # the fused E-step writes the log gate in the same pass
            log_norm = model.e_step(kernels, data.X, data.Y, params, resp, log_gate_out=log_g)
        total = data.total_weight
        self.log_likelihood = float(data.sample_weight @ log_norm) / total
        penalty = model.penalty(params)
        self.objective = self.log_likelihood - penalty / total
        if options.balance > 0:
            self.objective -= balance_terms(kernels.xp.exp(log_g), data.sample_weight,
                                            options.balance)[0]
        # each expert's share of the training weight, from the responsibilities
        self.share = kernels.to_host(data.sample_weight @ resp) / total


class _Revival:
    """Re-initialisation of vanished experts, each tried at most once per run."""

    def __init__(self, model, kernels, rows, options):
        self.model, self.kernels, self.rows, self.options = model, kernels, rows, options
        self.tried = set()
        self.rng = np.random.default_rng([*options.seed, 3])

    def attempt(self, params, current, resp, log_g):
        """Try to revive one vanished expert.

        Returns ``(params, evaluation)`` after one EM step from the proposal
        (its responsibilities and log gate written into ``resp`` and
        ``log_g`` unless they are None) if that step's objective is no lower
        than ``current``'s, else None (``resp`` and ``log_g`` unchanged).
        """
        candidates = [k for k in np.flatnonzero(current.share < VANISHED_SHARE)
                      if k not in self.tried]
        # the proposal's EM step runs on all rows at once, which rows held on
        # a cluster do not offer: there a vanished expert stays (and is warned of)
        # (nor does a gate of fixed shape split experts)
        if (not candidates or len(current.share) == 1 or not self.rows.local
                or not self.model.gate.resizable):
            return None
        k = int(candidates[0])
        self.tried.add(k)
        # the standardised copy of the rows is made only here, where needed
        model, kernels, data, options = self.model, self.kernels, self.rows.whole(), self.options
        proposal = replace_expert(model, kernels, data, params, k, self.rng)
        trial_resp = kernels.xp.empty((data.X.shape[0], len(current.share)), dtype=data.X.dtype)
        trial_log_g = kernels.xp.empty_like(trial_resp)
        _Evaluation(model, kernels, data, proposal, trial_resp, trial_log_g, options)
        trial_resp *= data.sample_weight[:, None]
        proposal = model.m_step(kernels, data, proposal, trial_resp, log_prior=trial_log_g,
                                log_prior_ready=True, balance=options.balance)
        evaluation = _Evaluation(model, kernels, data, proposal, trial_resp, trial_log_g,
                                 options)
        if not evaluation.objective >= current.objective:
            return None
        if resp is not None:  # (one-pass EM keeps no (n, K) buffers)
            resp[...] = trial_resp
            log_g[...] = trial_log_g
        return proposal, evaluation


class _Pass:
    """One pass at given parameters: the objectives and the M-step's statistics."""

    def __init__(self, model, kernels, rows, params, hessian_stride, family_options=None):
        n_experts = model.n_experts(params)

        # (chunk, K) scratch of the rows, reused by every pass: no (n, K)
        # array. The function is shipped to where the rows are (Dask
        # workers): it holds only the model, parameters and kernel bundle.
        def chunk_statistics(chunk):
            return model.pass_statistics(kernels, chunk, params,
                                         chunk.scratch("resp", n_experts),
                                         chunk.scratch("log_prior", n_experts), hessian_stride,
                                         family_options=family_options)

        self.statistics = rows.map_reduce(chunk_statistics)
        total = rows.total_weight
        self.log_likelihood = self.statistics["log_likelihood"] / total
        self.objective = self.log_likelihood - model.penalty(params) / total
        self.share = self.statistics["share"] / total


def run_em(model, kernels, rows, params, *, max_iter, tol, verbose=0, options=None):
    """Run EM from ``params`` until the objective gains less than ``tol``.

    Parameters
    ----------
    model : MixtureModel
        The gate and expert family (``mixexp._model``).
    kernels : kernel bundle
    rows : InMemoryRows or DaskRows
        The training rows (``mixexp._rows``, ``mixexp._dask``); only
        ``map_reduce`` in the one-pass case.
    params : dict
        Starting parameters (internal scale), ``{"gate": ..., "experts": ...}``.
    max_iter : int
    tol : float
        Convergence threshold on the gain in mean penalised log-likelihood.
    verbose : int
    options : SolverOptions, optional
        Gating mode (hard gating: classification EM) and load balancing;
        ``top_k`` only concerns prediction here: EM trains the dense gate.

    Returns
    -------
    SolverResult
        The returned parameters are those of the last E-step, so the
        reported log-likelihood and responsibilities belong to them.
    """
    options = options or SolverOptions()
    if not rows.local and hasattr(model.family, "stream_update"):
        # estimators as experts on a cluster: partial_fit streamed through the blocks
        from ._em_stream import run_streamed_em  # (it builds on this module)

        return run_streamed_em(model, kernels, rows, params, max_iter=max_iter, tol=tol,
                               verbose=verbose, options=options)
    monitor = ConvergenceMonitor("EM iteration", tol, verbose=bool(verbose))
    if options.classify or options.balance > 0 or not model.takes_one_pass(params):
        # rows on a cluster keep no (n, K) buffers: every pass recomputes the E-step
        multi_pass = _multi_pass if rows.local else multi_pass_rows
        current, params = multi_pass(model, kernels, rows, params, max_iter, monitor, options)
    else:
        current, params = _one_pass(model, kernels, rows, params, max_iter, monitor, options)
    return SolverResult(
        params=params,
        objective=current.objective,
        log_likelihood=current.log_likelihood,
        n_iter=monitor.n_iter,
        converged=monitor.converged,
        objective_history=monitor.objective_history,
        log_likelihood_history=monitor.log_likelihood_history,
    )


def _one_pass(model, kernels, rows, params, max_iter, monitor, options):
    """EM with one pass per iteration (see the module docstring): (last pass, params)."""
    hessian_stride = max(1, rows.n_samples // HESSIAN_SAMPLE_ROWS)
    # which optional statistics the family wants of the next pass (None: all)
    schedule = model.pass_schedule()

    def evaluate(params):
        options = None if schedule is None else schedule.options()
        return _Pass(model, kernels, rows, params, hessian_stride, options)

    def solve(statistics, experts):
        scheduled = {} if schedule is None else {"schedule": schedule}
        return model.family.solve(statistics, experts, **scheduled)

    current = evaluate(params)
    revival = _Revival(model, kernels, rows, options)
    for _ in range(max_iter):
        revived = revival.attempt(params, current, None, None)
        t = 1.0  # the fraction of a checked step taken
        if revived is not None:
            # never declared converged right after a revival
            params, change = revived[0], np.inf
            current = evaluate(params)
        elif not getattr(model.family, "exact_solve", True):
            params, current, change, t = _checked_step(model, rows, params, current, evaluate, solve)
        else:
            experts = solve(current.statistics["experts"], params["experts"])
            direction = model.gate.direction(
                current.statistics["gate"], params["gate"], rows.total_weight,
                current.objective * rows.total_weight, rows.dtype)
            # (the gate's halvings leave the experts' exact step whole: its gain
            # is an iteration's gain, as in multi-pass EM)
            gate_t = 1.0
            for halving in range(_MAX_GATE_HALVINGS + 1):
                if halving == _MAX_GATE_HALVINGS:
                    direction = None  # the experts' step alone: a generalised M-step
                gate = (params["gate"] if direction is None
                        else model.gate.step(params["gate"], direction, gate_t))
                trial = {"gate": gate, "experts": experts}
                evaluation = evaluate(trial)
                if direction is None or evaluation.objective >= current.objective:
                    break
                gate_t *= 0.5
            params, previous, current = trial, current, evaluation
            change = current.objective - previous.objective
        note = " (re-initialised a vanished expert)" if revived is not None else ""
        if t != 1.0:
            note = f" (step halved to {t:g})"
        # a halved step's gain is about t times what its direction offers: the
        # stopping rule sees the gain per unit step (see the module docstring)
        if monitor.record(current.objective, current.log_likelihood, change / t,
                          shown=f"change {change:.3e}", note=note):
            break
    return current, params


def _checked_step(model, rows, params, current, evaluate, solve):
    """One iteration of one-pass EM for a family without an exact solve (see the module
    docstring): ``(params, evaluation, change, t)``; the gate and experts' steps are
    halved together until the objective does not fall (``t`` the fraction of the step
    taken), or the iterate stays (``change`` 0, ``t`` 1: nothing left to gain)."""
    experts = solve(current.statistics["experts"], params["experts"])
    direction = model.gate.direction(
        current.statistics["gate"], params["gate"], rows.total_weight,
        current.objective * rows.total_weight, rows.dtype)
    t = 1.0
    for _ in range(_MAX_STEP_HALVINGS):
        gate = (params["gate"] if direction is None
                else model.gate.step(params["gate"], direction, t))
        trial = {"gate": gate, "experts": model.family.step_towards(params["experts"],
                                                                   experts, t)}
        evaluation = evaluate(trial)
        if evaluation.objective >= current.objective:
            return trial, evaluation, evaluation.objective - current.objective, t
        t *= 0.5
    return params, current, 0.0, 1.0


def _multi_pass(model, kernels, rows, params, max_iter, monitor, options):
    """EM on the whole standardised rows, several passes per iteration: (last E-step, params).

    Serves hard gating (classification EM), load balancing (whose gate
    objective is not a sum over rows) and families without a statistics /
    solve split; the gate's line search runs on Q itself.
    """
    data = rows.whole()
    n_experts = model.n_experts(params)
    # (n, K) buffers reused across iterations, where the data live (on the
    # GPU for backend="cupy": per iteration only parameters, M-step
    # statistics and a few scalars cross to the host)
    resp = kernels.xp.empty((data.X.shape[0], n_experts), dtype=data.X.dtype)
    log_g = kernels.xp.empty_like(resp)
    current = _Evaluation(model, kernels, data, params, resp, log_g, options)
    revival = _Revival(model, kernels, rows, options)
    for _ in range(max_iter):
        revived = revival.attempt(params, current, resp, log_g)
        if revived is not None:
            # never declared converged right after a revival
            params, current, change = *revived, np.inf
        else:
            resp *= data.sample_weight[:, None]
            params = model.m_step(kernels, data, params, resp, log_prior=log_g,
                                  log_prior_ready=True, balance=options.balance)
            previous, current = current, _Evaluation(model, kernels, data, params, resp,
                                                     log_g, options)
            change = current.objective - previous.objective
        note = " (re-initialised a vanished expert)" if revived is not None else ""
        if monitor.record(current.objective, current.log_likelihood, change, note=note):
            break
    return current, params
