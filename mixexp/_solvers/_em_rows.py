"""Multi-pass EM over rows that are not in one memory (``mixexp._dask.DaskRows``).

The in-memory multi-pass EM (``mixexp._solvers._em._multi_pass``) keeps the
responsibilities of all rows, (n, K), between its E-step and the passes of
its M-step. Rows held on a cluster offer no such buffer, and gathering one
to the client is what they exist to avoid. Here every pass recomputes the
E-step at the iteration's parameters theta_t chunk by chunk, into the
worker's per-chunk scratch (``Chunk.scratch``), and returns only sums: the
M-step sees the same responsibilities as in memory, at the cost of an
E-step per pass.

It serves what one-pass EM does not: hard gating (the classification
E-step), load balancing (a term of the gate alone: its value and gradient
come from sums of g and of g g x over rows, see :class:`_Softmax`), and
logistic experts above ``NEWTON_MAX_PARAMS`` parameters (whose family asks
for its multi-pass M-step). The M-step takes the in-memory steps with sums
over rows in place of whole arrays:

* Gaussian experts: their exact M-step, ``solve`` of one pass's
  statistics at W = s h (which is what their ``m_step`` does in memory);
* logistic experts and the softmax gate: the damped Newton steps of
  ``mixexp._logistic.fit_multinomial_logistic`` (same step, same stopping
  rule, same Armijo line search), or its Boehning bound steps for a gate
  above ``NEWTON_MAX_PARAMS`` parameters. The experts' and the gate's
  regressions are independent given theta_t, so they advance in lockstep:
  one pass serves a Newton step or a line-search trial of each of them.
  A trial's pass also returns the Newton statistics at the trial point,
  which serve the next step when the trial is accepted (the usual case).

The first pass of each M-step is the evaluation pass at theta_t itself,
which also gives the objective. Every step is the in-memory one, so the
penalised objective never decreases and the fit matches the in-memory fit
up to the rounding of sums taken in another order.
"""

import numpy as np

from .._balance import squared_cv
from .._experts import GaussianExperts, LogisticExperts
from .._experts._family import active_experts
from .._gates import SoftmaxGate
from .._gates._softmax import BALANCED_GATE_STEPS, GATE_NEWTON_STEPS
from .._logistic import (
    _ARMIJO,
    _MAX_HALVINGS,
    NEWTON_MAX_PARAMS,
    boehning_bound,
    bound_step,
    center,
    penalised_newton_step,
    preconditioned_lbfgs,
    rounding_resolution,
    softmax_gradient,
)
from .._routing import posterior

# Newton steps of each expert's logistic M-step: fit_multinomial_logistic's default,
# which LogisticExperts.m_step uses in memory (the equality tests would see a drift)
_EXPERT_NEWTON_STEPS = 3


def check_rows_em(model):
    """Raise ValueError for a model whose multi-pass EM cannot run over rows on a cluster."""
    if not isinstance(model.gate, SoftmaxGate):  # (settings, not an argument's type)
        raise ValueError(  # noqa: TRY004
            "EM's multi-pass M-step needs the softmax gate on Dask input: a tree of gates "
            "(the hierarchical estimators) trains there with one-pass EM or L-BFGS only, "
            "so not with logistic experts of more than "
            f"{NEWTON_MAX_PARAMS} parameters (n_classes * (n_expert_features + 1)). Use "
            "solver='lbfgs', MixtureOfExpertsClassifier, fewer expert_features, or fit "
            "in memory.")
    family = model.family
    if not (_has_statistics(family) or isinstance(family, LogisticExperts)):
        raise ValueError(
            f"{type(family).__name__} cannot take EM's multi-pass M-step (gating='hard', "
            "balance > 0) on Dask input: it needs all rows in one memory there.")


def _has_statistics(family):
    """Whether the family's multi-pass M-step is its ``solve`` of one pass's statistics
    (Gaussian experts: ``GaussianExperts.m_step`` is exactly that)."""
    return isinstance(family, GaussianExperts)


class _Softmax:
    """One weighted multinomial logistic regression of the M-step, driven by passes.

    The steps of ``fit_multinomial_logistic`` (``bound``: of its Boehning
    bound ascent) on targets T that the chunk function computes from the
    responsibilities (an expert: ``W[:, k] * Y``; the gate: ``W``). Each
    call of :meth:`request` says what the next pass should compute for it;
    :meth:`update` takes the pass's sums and moves on.

    With ``balance`` (the gate only) the objective subtracts
    ``S * balance * CV^2(I)``, I = sum_i s_i g_i / S, and its gradient in the
    gate's parameters is 2 K balance (I_k A_k - sum_j I_j B_kj), with
    A_k = sum_i s_i g_ik z_i and B_kj = sum_i s_i g_ik g_ij z_i, z = (x, 1):
    sums over rows, as the in-memory ``extra`` term computes row by row.
    """

    def __init__(self, key, coef, intercept, penalty, max_iter, dtype, *, bound=False,
                 balance=0.0, total_weight=None):
        self.key = key
        self.coef, self.intercept = center(coef, intercept)
        self.penalty, self.max_iter, self.dtype = penalty, max_iter, dtype
        self.bound, self.balance = bound, balance
        self.sample_total = total_weight  # S, for the balance term
        self.done = False
        self.steps = 0
        self._phase = "start"
        self._trial = None

    # ---- what the next pass computes ---------------------------------------
    def request(self):
        """``(key, coef, intercept, wants)`` for the next pass, or None when done."""
        if self.done:
            return None
        if self.bound:
            wants = ("total", "bound", "gradient") if self._phase == "start" else ("gradient",)
            return self.key, self.coef, self.intercept, wants
        wants = ["objective"]
        if self._phase == "start":
            wants += ["total", "newton"]
            coef, intercept = self.coef, self.intercept
        else:  # a line-search trial; its Newton statistics serve the next step if accepted
            coef, intercept = self._trial
            if self.steps + 1 < self.max_iter:
                wants.append("newton")
        if self.balance > 0:
            wants.append("balance")
        return self.key, coef, intercept, tuple(wants)

    # ---- the pass's sums -----------------------------------------------------
    def update(self, sums):
        if self.bound:
            self._bound_update(sums)
        elif self._phase == "start":
            self.total = sums["total"]
            self.objective = self._value(sums, self.coef)
            self._newton(sums)
        else:
            self._search_update(sums)

    def _value(self, sums, coef):
        value = sums["objective"] - float(np.sum(self.penalty * coef**2))
        if self.balance > 0:
            total = self.sample_total
            value -= total * self.balance * squared_cv(sums["importance"] / total)
        return value

    def _newton(self, sums):
        """A Newton step from the statistics at the current point (or stop)."""
        d = self.coef.shape[1]
        grad, hess = sums["newton"]
        grad = grad.copy()
        grad[:, :d] -= 2.0 * self.penalty * self.coef
        if self.balance > 0:
            importance = sums["importance"] / self.sample_total
            n_experts = importance.size
            balance_gradient = importance[:, None] * sums["gate_moments"] - np.einsum(
                "j,kjd->kd", importance, sums["gate_products"])
            grad -= (2.0 * n_experts * self.balance) * balance_gradient
        step, decrement = penalised_newton_step(grad, hess, self.penalty)
        if not np.isfinite(decrement) or decrement <= rounding_resolution(
                self.objective, self.total, self.dtype):
            self.done = True
            return
        self._step, self._decrement, self._t, self._halvings = step, decrement, 1.0, 0
        self._phase = "search"
        self._set_trial()

    def _set_trial(self):
        d = self.coef.shape[1]
        self._trial = center(self.coef + self._t * self._step[:, :d],
                             self.intercept + self._t * self._step[:, d])

    def _search_update(self, sums):
        value = self._value(sums, self._trial[0])
        if value >= self.objective + _ARMIJO * self._t * self._decrement:
            (self.coef, self.intercept), self.objective = self._trial, value
            self.steps += 1
            if self.steps >= self.max_iter:
                self.done = True
            else:
                self._newton(sums)
            return
        self._t *= 0.5
        self._halvings += 1
        if self._halvings >= _MAX_HALVINGS:
            self.done = True  # no ascent found: keep the current parameters
        else:
            self._set_trial()

    def _bound_update(self, sums):
        d = self.coef.shape[1]
        if self._phase == "start":
            gram, x_sum, w_sum = sums["bound"]
            self._w_sum = w_sum
            self._bound = boehning_bound(gram, x_sum, w_sum, self.penalty)
            self._phase = "steps"
        grad = sums["gradient"].copy()
        grad[:, :d] -= 2.0 * self.penalty * self.coef
        step = bound_step(grad, self._bound)
        if float(np.sum(grad * step)) <= 1e-15 * max(float(self._w_sum), 1.0):
            self.done = True
            return
        self.coef, self.intercept = center(self.coef + step[:, :d], self.intercept + step[:, d])
        self.steps += 1
        if self.steps >= self.max_iter:
            self.done = True


def _chunk_problem(kernels, chunk, X, T, coef, intercept, wants):
    """One chunk's sums for one regression's request (float64, host)."""
    xp = kernels.xp
    sums = {}
    if "total" in wants:
        sums["total"] = float(xp.sum(T, dtype=np.float64))
    if "bound" in wants:
        row_weight = T.sum(axis=1)[:, None]
        gram, x_sum, _, _, w_sum = kernels.weighted_moments(X, T[:, :1], row_weight)
        sums["bound"] = (gram[0], x_sum[0], float(w_sum[0]))
    if "gradient" in wants:
        sums["gradient"] = softmax_gradient(kernels, X, T, coef, intercept)
    if "diagonal" in wants:  # the L-BFGS preconditioner's sums (see _lbfgs_expert)
        proba = xp.exp(kernels.log_gate(X, coef, intercept))
        row_weight = T.sum(axis=1)[:, None]
        curvature = proba * (row_weight - proba * row_weight)
        diagonal = np.empty((coef.shape[0], coef.shape[1] + 1))
        diagonal[:, :-1] = kernels.to_host(curvature.T @ (X * X))
        diagonal[:, -1] = kernels.to_host(curvature.sum(axis=0))
        sums["diagonal"] = diagonal
    if "objective" in wants or "newton" in wants:
        n_classes = coef.shape[0]
        log_p = kernels.log_gate(X, coef, intercept,
                                 out=chunk.scratch(f"log_p{n_classes}", n_classes)[: X.shape[0]])
        sums["objective"] = float(xp.sum(T * log_p, dtype=np.float64))
        if "newton" in wants:
            sums["newton"] = kernels.gate_gradient_hessian(X, T, log_p)
        if "balance" in wants:
            weight = chunk.sample_weight
            gate = xp.exp(log_p.astype(np.float64))
            sums["importance"] = kernels.to_host(weight @ gate)
            if "newton" in wants:
                weighted = gate * weight[:, None]
                n_experts, d = coef.shape
                moments = np.empty((n_experts, d + 1))
                moments[:, :d] = kernels.to_host(weighted.T @ X)
                moments[:, d] = kernels.to_host(weighted.sum(axis=0))
                products = np.empty((n_experts, n_experts, d + 1))
                for j in range(n_experts):
                    pair = weighted * gate[:, j : j + 1]
                    products[:, j, :d] = kernels.to_host(pair.T @ X)
                    products[:, j, d] = kernels.to_host(pair.sum(axis=0))
                sums["gate_moments"], sums["gate_products"] = moments, products
    return sums


def _chunk_pass(model, kernels, chunk, params, classify, requests, family_statistics):
    """E-step at ``params`` on one chunk, and the sums the requests ask for (host)."""
    xp = kernels.xp
    X, Y, weight = chunk.X, chunk.Y, chunk.sample_weight
    n, n_experts = X.shape[0], model.n_experts(params)
    resp = chunk.scratch("resp", n_experts)[:n]
    log_g = chunk.scratch("log_prior", n_experts)[:n]
    if classify:  # as _Evaluation does in memory
        model.log_prior(kernels, X, params, out=log_g)
        log_norm = posterior(kernels, log_g + model.log_density(kernels, X, Y, params), True,
                             resp_out=resp)[0]
    else:
        log_norm = model.e_step(kernels, X, Y, params, resp, log_gate_out=log_g)
    sums = {"log_likelihood": float(weight @ log_norm),
            "share": kernels.to_host(weight @ resp).astype(np.float64),
            "importance": kernels.to_host(weight @ xp.exp(log_g.astype(np.float64)))}
    resp *= weight[:, None]  # W = s h
    if family_statistics:
        sums["experts"] = model.family.statistics(kernels, model.expert_view(X), Y, resp,
                                                  params["experts"])
    problems = {}
    for key, coef, intercept, wants in requests:
        if key == "gate":
            view, targets = model.gate_view(X), resp
        else:
            view, targets = model.expert_view(X), resp[:, key : key + 1] * Y
        problems[key] = _chunk_problem(kernels, chunk, view, targets, coef, intercept, wants)
    sums["problems"] = problems
    return sums


def _lbfgs_experts(experts):
    """Whether logistic experts take L-BFGS steps (``fit_multinomial_logistic``'s rule)."""
    n_classes, d = experts["coef"].shape[1:]
    return n_classes * (d + 1) > NEWTON_MAX_PARAMS


def _lbfgs_expert(sums, coef, intercept, penalty, max_iter):
    """``mixexp._logistic._lbfgs_ascent`` with one pass per evaluation: an expert
    of more than ``NEWTON_MAX_PARAMS`` parameters (``sums((coef, intercept, wants))``
    runs the pass). The experts run one after the other: many passes."""
    coef, intercept = center(coef, intercept)
    d = coef.shape[1]
    start_sums = sums((coef, intercept, ("total", "diagonal")))
    total_weight = max(start_sums["total"], 1e-300)
    diagonal = start_sums["diagonal"]
    diagonal[:, :d] += 2.0 * penalty

    def penalised(flat):
        weights = np.ascontiguousarray(flat[:, :d])
        point = sums((weights, np.ascontiguousarray(flat[:, d]), ("objective", "gradient")))
        value = point["objective"] - float(np.sum(penalty * weights**2))
        grad = point["gradient"].copy()
        grad[:, :d] -= 2.0 * penalty * weights
        return value, grad

    return preconditioned_lbfgs(penalised, coef, intercept, diagonal, total_weight, max_iter)


class _Evaluation:
    """A pass at given parameters: objectives, shares and the M-step's first sums."""

    def __init__(self, sums, model, params, total, balance):
        self.sums = sums
        self.log_likelihood = sums["log_likelihood"] / total
        self.objective = self.log_likelihood - model.penalty(params) / total
        if balance > 0:
            self.objective -= balance * squared_cv(sums["importance"] / total)
        self.share = sums["share"] / total


def multi_pass_rows(model, kernels, rows, params, max_iter, monitor, options):
    """EM with several passes per iteration over rows without a whole copy.

    Same arguments and result as ``mixexp._solvers._em._multi_pass``:
    ``(last evaluation, params)``.
    """
    check_rows_em(model)
    total, dtype = rows.total_weight, rows.dtype
    family_statistics = _has_statistics(model.family)

    def make_problems(params):
        """The M-step's regressions from ``params`` (all experts: the inactive ones are
        dropped once the pass has given the shares)."""
        problems = []
        if not family_statistics:
            experts = params["experts"]
            if not _lbfgs_experts(experts):  # (else L-BFGS, in the M-step)
                for k in range(experts["coef"].shape[0]):
                    problems.append(_Softmax(k, experts["coef"][k], experts["intercept"][k],
                                             model.family.weight_penalty,
                                             _EXPERT_NEWTON_STEPS, dtype))
        gate = params["gate"]
        n_experts, d = gate["coef"].shape
        if n_experts > 1:
            balanced = options.balance > 0
            bound = not balanced and n_experts * (d + 1) > NEWTON_MAX_PARAMS
            steps = BALANCED_GATE_STEPS if balanced else GATE_NEWTON_STEPS
            problems.append(_Softmax("gate", gate["coef"], gate["intercept"],
                                     np.full(d, model.gate.alpha),
                                     2 * steps if bound else steps, dtype, bound=bound,
                                     balance=options.balance, total_weight=total))
        return problems

    def requested(at, requests, statistics=False):
        classify = options.classify

        def chunk_function(chunk):
            return _chunk_pass(model, kernels, chunk, at, classify, requests, statistics)

        return rows.map_reduce(chunk_function)

    def run_pass(at, problems, statistics=False):
        sums = requested(at, [request for request in (p.request() for p in problems)
                              if request is not None], statistics)
        for problem in problems:
            if not problem.done:
                problem.update(sums["problems"][problem.key])
        return sums

    def evaluate(at):
        problems = make_problems(at)
        sums = run_pass(at, problems, family_statistics)
        return _Evaluation(sums, model, at, total, options.balance), problems

    def m_step(at, evaluation, problems):
        active = active_experts(evaluation.sums["share"])
        for problem in problems:  # an expert with no weight keeps its parameters
            if problem.key != "gate" and not active[problem.key]:
                problem.done = True
        while any(not p.done for p in problems):
            run_pass(at, problems)
        if family_statistics:
            experts = model.family.solve(evaluation.sums["experts"], at["experts"])
        else:
            coef = at["experts"]["coef"].copy()
            intercept = at["experts"]["intercept"].copy()
            for problem in problems:
                if problem.key != "gate" and active[problem.key]:
                    coef[problem.key], intercept[problem.key] = problem.coef, problem.intercept
            if _lbfgs_experts(at["experts"]):
                for k in np.flatnonzero(active):
                    coef[k], intercept[k] = _lbfgs_expert(
                        lambda request, k=k: requested(at, [(k, *request)])["problems"][k],
                        coef[k], intercept[k], model.family.weight_penalty,
                        _EXPERT_NEWTON_STEPS)
            experts = {"coef": coef, "intercept": intercept}
        gates = [p for p in problems if p.key == "gate"]
        gate = ({"coef": gates[0].coef, "intercept": gates[0].intercept} if gates
                else model.gate.neutral(1, at["gate"]["coef"].shape[1]))
        return {"gate": gate, "experts": experts}

    current, problems = evaluate(params)
    for _ in range(max_iter):
        new = m_step(params, current, problems)
        previous = current
        current, problems = evaluate(new)
        params = new
        if monitor.record(current.objective, current.log_likelihood,
                          current.objective - previous.objective):
            break
    return current, params
