"""The Gaussian experts' ridge step against the closed-form weighted ridge solution."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from mixexp._experts._gaussian import ridge_step


def _moments(X, Y, W, coef, intercept):
    """The statistics ridge_step takes, at the current parameters (coef, intercept)."""
    residual = Y[:, None, :] - np.einsum("nd,ktd->nkt", X, coef) - intercept  # (n, K, t)
    return {"gram": np.einsum("nk,nd,ne->kde", W, X, X), "x_sum": W.T @ X,
            "w_sum": W.sum(axis=0), "xr": np.einsum("nk,nkt,nd->ktd", W, residual, X),
            "r_sum": np.einsum("nk,nkt->kt", W, residual),
            "rss": np.einsum("nk,nkt->kt", W, residual**2)}


@pytest.mark.parametrize("per_expert", [False, True], ids=["shared", "per-expert"])
def test_ridge_step_is_each_experts_weighted_ridge(per_expert):
    rng = np.random.default_rng(0)
    n, d, K, t = 200, 3, 3, 2
    X, Y = rng.normal(size=(n, d)), rng.normal(size=(n, t))
    W = rng.dirichlet(np.ones(K), size=n) * rng.uniform(0.5, 2.0, size=(n, 1))
    experts = {"coef": rng.normal(size=(K, t, d)), "intercept": rng.normal(size=(K, t))}
    penalty = (rng.uniform(0.1, 50.0, size=(K, d)) if per_expert
               else rng.uniform(0.1, 50.0, size=d))
    coef, intercept, rss = ridge_step(_moments(X, Y, W, experts["coef"], experts["intercept"]),
                                      experts, penalty, np.ones(K, dtype=bool))
    Xh = np.hstack([X, np.ones((n, 1))])
    for k in range(K):
        own = penalty[k] if per_expert else penalty
        system = Xh.T @ (W[:, k, None] * Xh) + np.diag(np.append(own, 0.0))
        solution = np.linalg.solve(system, Xh.T @ (W[:, k, None] * Y))  # (d + 1, t)
        assert_allclose(coef[k], solution[:d].T, rtol=1e-10, atol=1e-12)
        assert_allclose(intercept[k], solution[d], rtol=1e-10, atol=1e-12)
        assert_allclose(rss[k], W[:, k] @ (Y - Xh @ solution) ** 2, rtol=1e-10)
