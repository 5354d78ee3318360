"""The softmax gating network: its penalty and its M-step.

The gate is g_k(x) = softmax_k(x . v_k + b_k) on internally standardised
inputs, so its penalty alpha * ||V||^2 does not depend on the features'
scales. Its M-step is a weighted multinomial logistic regression on the soft
targets (the responsibilities), warm-started from the previous gate.
"""

import numpy as np

from ._logistic import fit_multinomial_logistic


def gate_penalty(gate_coef, alpha):
    """alpha * ||V||^2 on the (standardised-scale) gate weights."""
    return alpha * float(np.sum(gate_coef**2))


def fit_gate(kernels, X, W, gate_coef, gate_intercept, alpha, log_g=None):
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

    Returns
    -------
    gate_coef, gate_intercept : the new gate, never worse than the previous.
    """
    if gate_coef.shape[0] == 1:
        return np.zeros_like(gate_coef), np.zeros_like(gate_intercept)
    penalty = np.full(gate_coef.shape[1], float(alpha))
    return fit_multinomial_logistic(
        kernels, X, W, gate_coef, gate_intercept, penalty, log_p=log_g
    )
