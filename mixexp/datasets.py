"""Bundled data and synthetic generators with known true parameters."""

from importlib import resources
from numbers import Real

import numpy as np
from scipy.special import softmax
from sklearn.utils import Bunch, check_random_state
from sklearn.utils._param_validation import Interval, validate_params

from ._constraints import IntInterval

__all__ = ["load_motorcycle", "make_moe_classification", "make_moe_regression"]

_MOTORCYCLE_DESCR = """\
Motorcycle crash data (Silverman 1985)
--------------------------------------

133 measurements of head acceleration in a simulated motorcycle accident,
used to test crash helmets.

- times: time after the impact, in milliseconds (the feature)
- accel: head acceleration, in g (the target)

The noise level changes sharply along ``times`` (nearly still before about
14 ms, violent afterwards), which a single regression cannot model: the
classic benchmark for mixtures of experts.

Source: B. W. Silverman (1985), "Some aspects of the spline smoothing
approach to non-parametric regression curve fitting", JRSS B 47(1): 1-52;
exported from the R package MASS (``MASS::mcycle``).
"""


def load_motorcycle(*, return_X_y=False, as_frame=False):
    """Load the motorcycle crash data (133 samples, 1 feature).

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=False
        If True, ``data`` is a pandas DataFrame, ``target`` a Series and
        ``frame`` a DataFrame holding both (pandas required).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``data`` (133, 1) times in ms, ``target`` (133,) acceleration in g,
        ``feature_names``, ``target_names``, ``frame`` (None unless
        ``as_frame``) and ``DESCR``.
    (data, target) : tuple
        If ``return_X_y`` is True.

    Examples
    --------
    >>> from mixexp.datasets import load_motorcycle
    >>> motorcycle = load_motorcycle()
    >>> motorcycle.data.shape, motorcycle.target.shape
    ((133, 1), (133,))
    """
    with resources.files("mixexp").joinpath("data", "mcycle.csv").open("r") as f:
        table = np.loadtxt(f, delimiter=",", skiprows=1)
    feature_names, target_names = ["times"], ["accel"]
    data, target, frame = table[:, :1], table[:, 1], None
    if as_frame:
        import pandas as pd

        frame = pd.DataFrame(table, columns=feature_names + target_names)
        data, target = frame[feature_names], frame[target_names[0]]
    if return_X_y:
        return data, target
    return Bunch(
        data=data,
        target=target,
        frame=frame,
        feature_names=feature_names,
        target_names=target_names,
        DESCR=_MOTORCYCLE_DESCR,
    )


# Shared by both generators. Scales are finite (NaN or inf would give NaN
# data); the noise also squares to a finite variance (truth.expert_variance).
_SHAPE_AND_GATE = {
    "n_samples": [IntInterval(1, None, closed="left")],
    "n_features": [IntInterval(1, None, closed="left")],
    "n_experts": [IntInterval(1, None, closed="left")],
    "gate_strength": [Interval(Real, 0, None, closed="left")],
    "random_state": ["random_state"],
}


def _sample_gate(rng, n_samples, n_features, n_experts, gate_strength):
    """Inputs, a random softmax gate and the expert each sample is drawn from."""
    gate_coef = gate_strength * rng.standard_normal((n_experts, n_features))
    gate_intercept = rng.standard_normal(n_experts)
    gate_intercept -= gate_intercept.mean()
    X = rng.standard_normal((n_samples, n_features))
    gate = softmax(X @ gate_coef.T + gate_intercept, axis=1)
    draw = rng.uniform(size=(n_samples, 1))
    expert = np.minimum((draw > np.cumsum(gate, axis=1)).sum(axis=1), n_experts - 1)
    return X, gate_coef, gate_intercept, expert


@validate_params(
    {**_SHAPE_AND_GATE, "noise": [Interval(Real, 0, None, closed="neither")]},
    prefer_skip_nested_validation=True,
)
def make_moe_regression(
    n_samples=1000, n_features=2, n_experts=3, *, noise=0.1, gate_strength=4.0,
    random_state=None,
):
    """Draw regression data from a mixture of linear experts with a softmax gate.

    X ~ N(0, I); each sample's expert k is drawn from the gate
    g(x) = softmax(x V^T + b); y = x w_k + c_k + noise * N(0, 1).

    Parameters
    ----------
    n_samples : int, default=1000
    n_features : int, default=2
    n_experts : int, default=3
    noise : float, default=0.1
        Standard deviation of every expert's Gaussian noise: positive, at
        most 1e150 (the largest target the estimators fit; its square, the
        variance, must be finite).
    gate_strength : float, default=4.0
        Scale of the gate weights, finite and non-negative; larger means
        sharper region boundaries, 0 a constant gate.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    truth : :class:`~sklearn.utils.Bunch`
        The true parameters in the estimator's attribute names:
        ``gate_coef`` (K, d), ``gate_intercept`` (K,), ``expert_coef``
        (K, d), ``expert_intercept`` (K,), ``expert_variance`` (K,), and
        ``expert`` (n_samples,), the expert that drew each sample.

    Examples
    --------
    >>> from mixexp.datasets import make_moe_regression
    >>> X, y, truth = make_moe_regression(n_samples=100, random_state=0)
    >>> X.shape, y.shape, truth.expert_coef.shape
    ((100, 2), (100,), (3, 2))
    """
    # not an Interval bound: comparing a float32 noise with 1e150 overflows
    if float(noise) > 1e150:
        raise ValueError("The 'noise' parameter of make_moe_regression must be at most 1e150 "
                         f"(its square is the experts' variance). Got {noise!r} instead.")
    rng = check_random_state(random_state)
    X, gate_coef, gate_intercept, expert = _sample_gate(
        rng, n_samples, n_features, n_experts, gate_strength
    )
    expert_coef = 2.0 * rng.standard_normal((n_experts, n_features))
    expert_intercept = rng.uniform(-3.0, 3.0, n_experts)
    means = np.einsum("nd,nd->n", X, expert_coef[expert]) + expert_intercept[expert]
    y = means + noise * rng.standard_normal(n_samples)
    truth = Bunch(
        gate_coef=gate_coef,
        gate_intercept=gate_intercept,
        expert_coef=expert_coef,
        expert_intercept=expert_intercept,
        expert_variance=np.full(n_experts, float(noise) ** 2),
        expert=expert,
    )
    return X, y, truth


@validate_params(
    {
        **_SHAPE_AND_GATE,
        "n_classes": [IntInterval(2, None, closed="left")],
        "class_strength": [Interval(Real, 0, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def make_moe_classification(
    n_samples=1000, n_features=2, n_experts=3, n_classes=2, *, gate_strength=4.0,
    class_strength=5.0, random_state=None,
):
    """Draw classification data from a mixture of logistic experts with a softmax gate.

    X ~ N(0, I); each sample's expert k is drawn from the gate
    g(x) = softmax(x V^T + b); its class from expert k's multinomial logistic
    model softmax_c(x W_k^T + c_k). Each gate region thus has its own linear
    class boundaries, which a single logistic regression cannot fit.

    Parameters
    ----------
    n_samples : int, default=1000
    n_features : int, default=2
    n_experts : int, default=3
    n_classes : int, default=2
        At least 2.
    gate_strength : float, default=4.0
        Scale of the gate weights, finite and non-negative; larger means
        sharper region boundaries, 0 a constant gate.
    class_strength : float, default=5.0
        Scale of the experts' weights, finite and non-negative; larger means
        cleaner class boundaries.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        Integer classes 0 .. n_classes - 1.
    truth : :class:`~sklearn.utils.Bunch`
        ``gate_coef`` (K, d), ``gate_intercept`` (K,), ``expert_coef``
        (K, C, d), ``expert_intercept`` (K, C), and ``expert``
        (n_samples,), the expert that drew each sample.

    Examples
    --------
    >>> from mixexp.datasets import make_moe_classification
    >>> X, y, truth = make_moe_classification(n_samples=100, n_classes=3, random_state=0)
    >>> X.shape, sorted(set(y.tolist())), truth.expert_coef.shape
    ((100, 2), [0, 1, 2], (3, 3, 2))
    """
    rng = check_random_state(random_state)
    X, gate_coef, gate_intercept, expert = _sample_gate(
        rng, n_samples, n_features, n_experts, gate_strength
    )
    expert_coef = class_strength * rng.standard_normal((n_experts, n_classes, n_features))
    expert_coef -= expert_coef.mean(axis=1, keepdims=True)
    expert_intercept = rng.standard_normal((n_experts, n_classes))
    expert_intercept -= expert_intercept.mean(axis=1, keepdims=True)
    logits = np.einsum("nd,ncd->nc", X, expert_coef[expert]) + expert_intercept[expert]
    proba = softmax(logits, axis=1)
    draw = rng.uniform(size=(n_samples, 1))
    y = np.minimum((draw > np.cumsum(proba, axis=1)).sum(axis=1), n_classes - 1)
    truth = Bunch(
        gate_coef=gate_coef,
        gate_intercept=gate_intercept,
        expert_coef=expert_coef,
        expert_intercept=expert_intercept,
        expert=expert,
    )
    return X, y, truth
