"""The softmax gating network: its penalty and its M-step.

The gate is g_k(x) = softmax_k(x . v_k + b_k) on internally standardised
inputs, so its penalty alpha * ||V||^2 does not depend on the features'
scales. Its M-step is a weighted multinomial logistic regression on the soft
targets (the responsibilities), warm-started from the previous gate.
"""

import numpy as np

from ._logistic import fit_multinomial_logistic


# Newton steps per gate M-step. Warm-started from the previous iteration,
# the gate is already close: the third step's gain was 1e-4 to 1e-16 nats
# per sample against EM gains of 1e-1 to 1e-5 per iteration, and with two
# steps EM reached the same optima (motorcycle K=3: -580.51719; n=1e5, K=3:
# the same objective after 10 iterations to 3e-6) for two thirds of the
# gate's cost. The initial M-step starts from a zero gate, far from its
# optimum: it takes three.
GATE_NEWTON_STEPS = 2
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
