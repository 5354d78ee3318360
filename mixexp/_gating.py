"""The softmax gating network: its penalty and its M-step.

The gate is g_k(x) = softmax_k(x . v_k + b_k) on internally standardised
inputs, so its penalty alpha * ||V||^2 does not depend on the features'
scales. Its M-step is a weighted multinomial logistic regression on the soft
targets (the responsibilities), warm-started from the previous gate.
"""

import numpy as np

from ._logistic import fit_multinomial_logistic


# Newton steps per gate M-step (a generalised M-step: any improvement keeps
# EM monotone). Warm-started from the previous iteration the gate is close
# to its optimum: with one step instead of two, EM needed the same number
# of iterations to converge, give or take one (motorcycle K=3: 53 and 53;
# n=1e5 K=3: 13 and 12; n=2e5 K=8: 17 and 16; a classifier, n=2e4 K=4: 75
# and 73) to the same optima, and each iteration skips a Hessian pass and a
# line-search pass. The initial M-step starts from a zero gate, far from
# its optimum: it takes three.
GATE_NEWTON_STEPS = 1
INITIAL_GATE_NEWTON_STEPS = 3


def gate_penalty(gate_coef, alpha):
    """alpha * ||V||^2 on the (standardised-scale) gate weights."""
    return alpha * float(np.sum(gate_coef**2))


def fit_gate(kernels, X, W, gate_coef, gate_intercept, alpha, log_g=None, log_g_ready=False,
             max_iter=GATE_NEWTON_STEPS):
    """Gate M-step: maximise sum_ik W_ik log g_k(x_i) - alpha ||V||^2.

    Parameters
    ----------
    kernels : kernel bundle
    X : ndarray of shape (n, d)
        Standardised inputs.
    W : ndarray of shape (n, K)
        Responsibilities times sample weights.
    gate_coef, gate_intercept : ndarray of shape (K, d) and (K,)
        The previous gate (warm start).
    alpha : float
    log_g : ndarray of shape (n, K), optional
        Scratch buffer.
    log_g_ready : bool, default=False
        ``log_g`` holds the log gate of (gate_coef, gate_intercept) already.
    max_iter : int, default=GATE_NEWTON_STEPS
        Newton steps at most.

    Returns
    -------
    gate_coef, gate_intercept : the new gate, never worse than the previous.
    """
    if gate_coef.shape[0] == 1:
        return np.zeros_like(gate_coef), np.zeros_like(gate_intercept)
    penalty = np.full(gate_coef.shape[1], float(alpha))
    return fit_multinomial_logistic(
        kernels, X, W, gate_coef, gate_intercept, penalty, max_iter=max_iter,
        log_p=log_g, log_p_ready=log_g_ready,
    )
