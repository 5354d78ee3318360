"""An independent oracle for the regressor's predictive std (the classical prediction interval).

Built from public attributes and the training data only: each expert's
weighted design moments on the user's scale, from the responsibilities
training uses, with each expert's penalty on the user's weights.
"""

import numpy as np
from scipy.special import logsumexp
from scipy.stats import norm


def user_penalties(est, X_train, sample_weight=None):
    """Each expert's penalty per weight on the user's scale: (K, d).

    A float alpha is that penalty; alpha="auto" chose ``expert_alpha_`` per
    weight of the standardised features (weighted mean 0, population std 1).
    """
    n_experts, d = est.predict_gate(X_train[:1]).shape[1], X_train.shape[1]
    if not isinstance(est.alpha, str):
        return np.full((n_experts, d), float(est.alpha))
    weight = np.ones(len(X_train)) if sample_weight is None else np.asarray(sample_weight, float)
    mean = weight @ X_train / weight.sum()
    scale = np.sqrt(weight @ (X_train - mean) ** 2 / weight.sum())
    scale = np.where(scale > 0, scale, 1.0)
    return np.asarray(est.expert_alpha_)[:, None] * scale**2


def expert_leverage(est, X_train, y_train, X, sample_weight=None):
    """x' A_k^-1 x per row and expert: (n, K, 1), on the user's scale (one target)."""
    # the responsibilities training uses: the dense posterior (top_k only changes
    # prediction), or its argmax for hard gating (classification EM)
    means = est.predict_experts(X_train)
    log_joint = np.log(est.predict_gate(X_train)) + norm.logpdf(
        np.reshape(y_train, (len(y_train), 1)), means, np.sqrt(est.expert_variance_))
    if est.gating == "hard":
        resp = np.eye(log_joint.shape[1])[log_joint.argmax(axis=1)]
    else:
        resp = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    if sample_weight is not None:
        resp = resp * np.asarray(sample_weight)[:, None]
    design = np.column_stack([X_train, np.ones(len(X_train))])
    rows = np.column_stack([X, np.ones(len(X))])
    d = X_train.shape[1]
    penalties = user_penalties(est, X_train, sample_weight)
    leverage = np.empty((len(X), resp.shape[1], 1))
    for k in range(resp.shape[1]):
        precision = (design * resp[:, [k]]).T @ design
        # the ridge system: the penalty is in units of the expert's noise
        precision[np.arange(d), np.arange(d)] += penalties[k]
        leverage[:, k, 0] = np.einsum("nj,nj->n", rows, np.linalg.solve(precision, rows.T).T)
    return leverage


def predictive_std(est, X_train, y_train, X, gate=None, sample_weight=None):
    """sqrt(sum_k g_k ((mu_k - mean)^2 + sigma_k^2 (1 + x' A_k^-1 x))) for one target."""
    gate = est.predict_gate(X) if gate is None else gate
    means = est.predict_experts(X)
    mean = np.sum(gate * means, axis=1)
    leverage = expert_leverage(est, X_train, y_train, X, sample_weight)[:, :, 0]
    return np.sqrt(np.sum(gate * ((means - mean[:, None]) ** 2
                                  + est.expert_variance_ * (1.0 + leverage)), axis=1))
