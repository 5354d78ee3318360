"""Plots of a fitted mixture of experts: gate, experts, training history, usage.

Every function draws on the Axes given as ``ax`` (a new figure's Axes when
``ax`` is None) and returns it, so plots can be combined and restyled with
the usual Matplotlib calls. Expert ``k`` has the same colour in every plot.

The estimator may be a :class:`~mixexp.MixtureOfExpertsRegressor`, a
:class:`~mixexp.MixtureOfExpertsClassifier` (or one of their hierarchical
counterparts, whose leaves are the experts here), or a
:class:`~sklearn.pipeline.Pipeline` ending in one: the inputs are then passed
through the pipeline's earlier steps before they reach the mixture, and the
axes are those of the raw inputs.

Matplotlib is an optional dependency, imported when a function is first
called: ``pip install "mixexp[plot]"``.
"""

import numpy as np
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "expert_colors",
    "plot_expert_usage",
    "plot_experts",
    "plot_gate",
    "plot_log_likelihood",
    "plot_node_gates",
]

_INSTALL_HINT = 'pip install "mixexp[plot]"'
_SOLVER_LABELS = {"em": "EM", "lbfgs": "L-BFGS", "adam": "Adam"}


def _pyplot():
    """Import matplotlib.pyplot, or say how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            f"mixexp.plotting needs matplotlib, which could not be imported ({exc}). "
            f"Install it with `{_INSTALL_HINT}`."
        ) from exc
    return plt


def _get_ax(ax):
    if ax is None:
        ax = _pyplot().subplots()[1]
    return ax


def expert_colors(n_experts):
    """The colour of each expert, shared by every plot of this module.

    Parameters
    ----------
    n_experts : int

    Returns
    -------
    colors : ndarray of shape (n_experts, 4)
        RGBA colours: Matplotlib's ``tab10`` for up to 10 experts,
        ``tab20`` up to 20, evenly spaced ``turbo`` colours beyond.
    """
    _pyplot()  # the install hint, if matplotlib is missing
    from matplotlib import colormaps

    if n_experts <= 10:
        return colormaps["tab10"](np.arange(n_experts))
    if n_experts <= 20:
        return colormaps["tab20"](np.arange(n_experts))
    return colormaps["turbo"](np.linspace(0.05, 0.95, n_experts))


# ---- the estimator behind an optional Pipeline -----------------------------
def _split_pipeline(estimator):
    """(preprocessing or None, the mixture of experts) of an estimator or Pipeline."""
    if hasattr(estimator, "steps"):
        return estimator[:-1], estimator[-1]
    return None, estimator


def _mixture(estimator):
    """The fitted mixture of experts, checked."""
    model = _split_pipeline(estimator)[1]
    if not hasattr(model, "predict_gate"):
        raise TypeError(
            "Expected a fitted MixtureOfExpertsRegressor, MixtureOfExpertsClassifier or a "
            f"Pipeline ending in one, got {type(model).__name__}."
        )
    check_is_fitted(model)
    return model


def _n_fitted_experts(model):
    """Experts of the fitted model: ``n_experts`` may have been set since the fit."""
    return model._fitted_n_experts


def _call(estimator, method, X, **kwargs):
    """``model.method(X)`` after the pipeline's preprocessing, if any."""
    preprocessing, model = _split_pipeline(estimator)
    if preprocessing is not None:
        X = preprocessing.transform(X)
    return getattr(model, method)(X, **kwargs)


def _n_columns(X):
    shape = np.shape(X)
    if len(shape) != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {shape}.")
    return shape[1]


def _column(X, j):
    if hasattr(X, "iloc"):
        return np.asarray(X.iloc[:, j], dtype=float)
    return np.asarray(X, dtype=float)[:, j]


def _column_names(X):
    if hasattr(X, "columns"):
        return [str(name) for name in X.columns]
    return [f"x{j}" if _n_columns(X) > 1 else "x" for j in range(_n_columns(X))]


def _span(values, n_points, margin):
    low, high = float(np.min(values)), float(np.max(values))
    pad = margin * (high - low)
    return np.linspace(low - pad, high + pad, n_points)


def _as_input(X, columns):
    """Grid columns (list of 1-D arrays) in the same container type as ``X``."""
    if hasattr(X, "columns"):
        import pandas as pd

        return pd.DataFrame(dict(zip(X.columns, columns)))
    return np.column_stack(columns)


def _check_n_features(X, allowed, function):
    n_features = _n_columns(X)
    if n_features not in allowed:
        wanted = " or ".join(str(n) for n in allowed)
        raise ValueError(
            f"{function} draws over a {wanted}-feature input, but X has {n_features} features. "
            "Pass the one or two columns the model was fitted on, or fit a model on them."
        )
    return n_features


def _routed_gate(model, gate):
    """The gate prediction mixes with (``gating``, ``top_k``) from the dense gate (n, K)."""
    n_experts = gate.shape[1]
    keep = 1 if model.gating == "hard" else model.top_k
    if keep is None or keep >= n_experts:
        return gate
    # ties go to the lower expert index, as in the kernels
    order = np.argsort(-gate, axis=1, kind="stable")[:, :keep]
    kept = np.zeros_like(gate)
    np.put_along_axis(kept, order, np.take_along_axis(gate, order, axis=1), axis=1)
    return kept / kept.sum(axis=1, keepdims=True)


# ---- public plots -----------------------------------------------------------
def plot_gate(estimator, X, *, ax=None, n_points=None, margin=0.05, show_data=True,
              colors=None):
    """Draw the gate probabilities over a 1-D input, or the experts' regions over a plane.

    With one input feature, each expert's gate probability g_k(x) is a curve
    over the range of ``X``. With two, the plane is coloured by the expert
    of largest gate probability, more strongly where that probability is
    close to 1 (so soft boundaries look blurred), and the points of ``X``
    are drawn in the colour of their own most probable expert.

    This is the dense softmax gate of
    :meth:`~mixexp.MixtureOfExpertsRegressor.predict_gate`, whatever
    ``gating`` and ``top_k`` are.

    Parameters
    ----------
    estimator : fitted MixtureOfExpertsRegressor, MixtureOfExpertsClassifier or Pipeline
        A Pipeline must end in a mixture of experts; its earlier steps
        transform the grid before the gate is evaluated.
    X : array-like or DataFrame of shape (n_samples, 1) or (n_samples, 2)
        Inputs (as given to ``fit``) whose range sets the grid.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure's Axes if None.
    n_points : int, default=None
        Grid points per axis: 400 for one feature, 200 for two.
    margin : float, default=0.05
        Fraction of the data range added on each side of the grid.
    show_data : bool, default=True
        Two features only: draw the points of ``X``.
    colors : sequence of colours, default=None
        One per expert; :func:`expert_colors` if None.

    Returns
    -------
    ax : matplotlib Axes

    See Also
    --------
    plot_expert_usage : How much of the data each expert takes.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from mixexp import MixtureOfExpertsRegressor
    >>> from mixexp.datasets import make_moe_regression
    >>> from mixexp.plotting import plot_gate
    >>> X, y, _ = make_moe_regression(n_samples=200, n_features=2, random_state=0)
    >>> est = MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(X, y)
    >>> ax = plot_gate(est, X)
    >>> len(ax.images)  # the regions, drawn as one image
    1
    >>> plt.close("all")
    """
    _pyplot()
    from matplotlib.colors import to_rgba_array
    from matplotlib.patches import Patch

    model = _mixture(estimator)
    n_features = _check_n_features(X, (1, 2), "plot_gate")
    ax = _get_ax(ax)
    colors = to_rgba_array(expert_colors(_n_fitted_experts(model)) if colors is None else colors)
    names = _column_names(X)

    if n_features == 1:
        xs = _span(_column(X, 0), n_points or 400, margin)
        gate = _call(estimator, "predict_gate", _as_input(X, [xs]))
        for k in range(gate.shape[1]):
            ax.plot(xs, gate[:, k], color=colors[k], label=f"expert {k + 1}")
        ax.set_xlabel(names[0])
        ax.set_ylabel("gate $g_k(x)$")
        ax.set_ylim(-0.02, 1.02)
        return ax

    n_points = n_points or 200
    x0 = _span(_column(X, 0), n_points, margin)
    x1 = _span(_column(X, 1), n_points, margin)
    grid0, grid1 = np.meshgrid(x0, x1)
    gate = _call(estimator, "predict_gate", _as_input(X, [grid0.ravel(), grid1.ravel()]))
    n_experts = gate.shape[1]
    owner = gate.argmax(axis=1)
    # opacity from the winning probability: 1/K (a tie of all) -> faint, 1 -> strong
    certainty = (gate.max(axis=1) - 1.0 / n_experts) / max(1.0 - 1.0 / n_experts, 1e-12)
    rgba = colors[owner]
    rgba[:, 3] = 0.15 + 0.45 * np.clip(certainty, 0.0, 1.0)
    ax.imshow(rgba.reshape(n_points, n_points, 4), origin="lower", aspect="auto",
              extent=(x0[0], x0[-1], x1[0], x1[-1]), interpolation="nearest")
    if show_data:
        own = _call(estimator, "predict_gate", X).argmax(axis=1)
        ax.scatter(_column(X, 0), _column(X, 1), c=colors[own], s=12,
                   edgecolors="k", linewidths=0.3)
    handles = [Patch(color=colors[k], alpha=0.6, label=f"expert {k + 1}")
               for k in range(n_experts)]
    ax.legend(handles=handles, loc="best", fontsize="small")
    ax.set_xlim(x0[0], x0[-1])
    ax.set_ylim(x1[0], x1[-1])
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    return ax


def plot_node_gates(estimator, X, *, axes=None, n_points=400, margin=0.05):
    """Draw each level of a hierarchical mixture's gates over a 1-D input, one row per level.

    Row l holds, for every node j of level l, the probability that the
    node sends x to each of its children (solid, dashed, dotted... lines
    per node), from
    :meth:`~mixexp.HierarchicalMixtureOfExpertsRegressor.predict_node_gates`.
    The last row is followed by the leaves' own gate (the product of the
    node gates along each path), as :func:`plot_gate` draws it.

    Parameters
    ----------
    estimator : fitted HierarchicalMixtureOfExpertsRegressor, HierarchicalMixtureOfExpertsClassifier or Pipeline
        A Pipeline must end in a hierarchical mixture of experts.
    X : array-like or DataFrame of shape (n_samples, 1)
        Inputs (as given to ``fit``) whose range sets the grid.
    axes : sequence of matplotlib Axes, default=None
        One per level of the tree plus one for the leaves; a new figure
        with that many rows if None.
    n_points : int, default=400
        Grid points.
    margin : float, default=0.05
        Fraction of the data range added on each side of the grid.

    Returns
    -------
    axes : list of matplotlib Axes

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from mixexp import HierarchicalMixtureOfExpertsRegressor
    >>> from mixexp.datasets import load_motorcycle
    >>> from mixexp.plotting import plot_node_gates
    >>> X, y = load_motorcycle(return_X_y=True)
    >>> est = HierarchicalMixtureOfExpertsRegressor((2, 2), random_state=0).fit(X, y)
    >>> axes = plot_node_gates(est, X)
    >>> len(axes)  # the root, its two children, the four leaves
    3
    >>> plt.close("all")
    """
    plt = _pyplot()
    model = _mixture(estimator)
    if not hasattr(model, "predict_node_gates"):
        raise TypeError("plot_node_gates draws the gates of a hierarchical mixture "
                        "(HierarchicalMixtureOfExpertsRegressor or ...Classifier); use "
                        f"plot_gate for {type(model).__name__}.")
    _check_n_features(X, (1,), "plot_node_gates")
    xs = _span(_column(X, 0), n_points, margin)
    grid = _as_input(X, [xs])
    levels = _call(estimator, "predict_node_gates", grid)
    if axes is None:
        figure, axes = plt.subplots(len(levels) + 1, 1, sharex=True,
                                    figsize=(6.4, 2.0 * (len(levels) + 1)), squeeze=False)
        axes = list(axes[:, 0])
    elif len(axes) != len(levels) + 1:
        raise ValueError(f"axes must hold {len(levels) + 1} Axes (one per level of the tree "
                         f"and one for the leaves), got {len(axes)}.")
    styles = ("-", "--", ":", "-.")
    for level, (ax, gates) in enumerate(zip(axes, levels)):
        n_nodes, n_children = gates.shape[1:]
        colors = expert_colors(n_children)
        for j in range(n_nodes):
            for c in range(n_children):
                ax.plot(xs, gates[:, j, c], color=colors[c], ls=styles[j % len(styles)],
                        label=f"node {j + 1}, child {c + 1}" if n_nodes > 1
                        else f"child {c + 1}")
        ax.set_ylabel("root" if level == 0 else f"level {level}")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize="x-small", loc="best")
    plot_gate(estimator, X, ax=axes[-1], n_points=n_points, margin=margin)
    axes[-1].set_ylabel("leaves $g_k(x)$")
    axes[-1].legend(fontsize="x-small", loc="best")
    return axes


def plot_experts(estimator, X, y=None, *, ax=None, n_points=400, margin=0.0, threshold=0.05,
                 n_std=2.0, colors=None):
    """Draw each expert's fit over a 1-D input, with the mixture mean and its band.

    Each expert's line x w_k + c_k (a Poisson expert's rate exp(x w_k + c_k),
    an estimator expert's prediction) is drawn (dashed) where its gate
    probability exceeds ``threshold``, that is where it has a say; the
    mixture mean of :meth:`~mixexp.MixtureOfExpertsRegressor.predict` is the
    solid black line, and the shaded band is the mean +/- ``n_std``
    predictive standard deviations (``predict(X, return_std=True)``: the
    experts' noise, widened by the uncertainty of their lines away from the
    rows they were fitted on, plus their disagreement). Mean and band follow the
    estimator's ``gating`` and ``top_k``.

    Parameters
    ----------
    estimator : fitted MixtureOfExpertsRegressor or Pipeline ending in one
        With one input feature and one target.
    X : array-like or DataFrame of shape (n_samples, 1)
        Inputs whose range sets the grid.
    y : array-like of shape (n_samples,), default=None
        If given, the data are drawn as grey points.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure's Axes if None.
    n_points : int, default=400
        Grid points.
    margin : float, default=0.0
        Fraction of the data range added on each side of the grid.
    threshold : float, default=0.05
        An expert's line is drawn where its gate probability exceeds this;
        0 draws every line over the whole range.
    n_std : float, default=2.0
        Half-width of the band, in predictive standard deviations; 0 draws
        no band.
    colors : sequence of colours, default=None
        One per expert; :func:`expert_colors` if None.

    Returns
    -------
    ax : matplotlib Axes

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from mixexp import MixtureOfExpertsRegressor
    >>> from mixexp.datasets import load_motorcycle
    >>> from mixexp.plotting import plot_experts
    >>> X, y = load_motorcycle(return_X_y=True)
    >>> est = MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(X, y)
    >>> ax = plot_experts(est, X, y)
    >>> ax.get_legend_handles_labels()[1]
    ['data', 'expert 1', 'expert 2', 'expert 3', 'mixture mean', 'mean +/- 2 std']
    >>> plt.close("all")
    """
    model = _mixture(estimator)
    if hasattr(model, "classes_") or not hasattr(model, "predict_experts"):
        raise TypeError(
            "plot_experts draws regression experts; for a classifier, plot the gate "
            "(plot_gate) or the decision regions."
        )
    _check_n_features(X, (1,), "plot_experts")
    # (read off the fit, not off expert_intercept_: estimator experts have none)
    if getattr(model, "_y_ndim", 1) != 1:
        raise ValueError(
            "plot_experts draws a single target, but the model was fitted on "
            f"{model._n_targets} targets."
        )
    ax = _get_ax(ax)
    colors = expert_colors(_n_fitted_experts(model)) if colors is None else colors
    xs = _span(_column(X, 0), n_points, margin)
    grid = _as_input(X, [xs])
    mean, std = _call(estimator, "predict", grid, return_std=True)
    experts = _call(estimator, "predict_experts", grid)
    gate = _call(estimator, "predict_gate", grid)

    if y is not None:
        ax.scatter(_column(X, 0), np.asarray(y, dtype=float), s=12, color="0.3", label="data")
    for k in range(experts.shape[1]):
        # NaN outside the expert's region breaks the line there
        line = np.where(gate[:, k] > threshold, experts[:, k], np.nan)
        ax.plot(xs, line, "--", color=colors[k], label=f"expert {k + 1}")
    ax.plot(xs, mean, color="k", lw=2, label="mixture mean")
    if n_std > 0:
        ax.fill_between(xs, mean - n_std * std, mean + n_std * std, color="k", alpha=0.15,
                        label=f"mean +/- {n_std:g} std")
    ax.set_xlabel(_column_names(X)[0])
    ax.set_ylabel("y")
    return ax


def plot_log_likelihood(estimator, *, ax=None, objective=False, label=None, **kwargs):
    """Draw the training history of a fit: mean log-likelihood per iteration.

    Parameters
    ----------
    estimator : fitted MixtureOfExpertsRegressor, MixtureOfExpertsClassifier or Pipeline
    ax : matplotlib Axes, default=None
        Where to draw; a new figure's Axes if None. Draw several fits on
        one Axes to compare solvers.
    objective : bool, default=False
        Draw ``objective_history_`` (the penalised log-likelihood the
        solver maximises, never decreasing) instead of
        ``log_likelihood_history_``.
    label : str, default=None
        Legend label; the solver's name ("EM", "L-BFGS" or "Adam") if None.
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.plot`.

    Returns
    -------
    ax : matplotlib Axes

    Notes
    -----
    One iteration is one EM or L-BFGS iteration, or one Adam epoch; after
    ``partial_fit`` calls, one entry per call. For hard gating the history
    is the classification log-likelihood that training maximises.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from mixexp import MixtureOfExpertsRegressor
    >>> from mixexp.datasets import load_motorcycle
    >>> from mixexp.plotting import plot_log_likelihood
    >>> X, y = load_motorcycle(return_X_y=True)
    >>> est = MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(X, y)
    >>> line = plot_log_likelihood(est).get_lines()[0]
    >>> len(line.get_xdata()) == est.n_iter_
    True
    >>> plt.close("all")
    """
    model = _mixture(estimator)
    history = np.asarray(model.objective_history_ if objective
                         else model.log_likelihood_history_)
    ax = _get_ax(ax)
    kwargs.setdefault("marker", "o" if history.size < 2 else None)
    ax.plot(np.arange(1, history.size + 1), history,
            label=_SOLVER_LABELS.get(model.solver, model.solver) if label is None else label,
            **kwargs)
    ax.set_xlabel("epoch" if model.solver == "adam" else "iteration")
    ax.set_ylabel("mean penalised log-likelihood" if objective
                  else "mean log-likelihood per sample")
    return ax


def plot_expert_usage(estimator, X=None, *, ax=None, colors=None):
    """Bar chart of the share of the data each expert takes.

    Without ``X``, the bars are the fitted ``expert_usage_`` (the training
    data's weighted mean of the gate prediction uses). With ``X``, they are
    the mean of that gate over ``X``: the dense softmax for soft gating,
    the winning expert for ``gating="hard"``, the renormalised top-k gate
    with ``top_k``. A dashed line marks the even share 1/K; bars near zero
    show experts the gate has (almost) stopped using (see the ``balance``
    parameter).

    Parameters
    ----------
    estimator : fitted MixtureOfExpertsRegressor, MixtureOfExpertsClassifier or Pipeline
    X : array-like of shape (n_samples, n_features), default=None
        Inputs to measure usage on; required if the estimator has no
        ``expert_usage_``.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure's Axes if None.
    colors : sequence of colours, default=None
        One per expert; :func:`expert_colors` if None.

    Returns
    -------
    ax : matplotlib Axes

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from mixexp import MixtureOfExpertsRegressor
    >>> from mixexp.datasets import load_motorcycle
    >>> from mixexp.plotting import plot_expert_usage
    >>> X, y = load_motorcycle(return_X_y=True)
    >>> est = MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(X, y)
    >>> heights = [bar.get_height() for bar in plot_expert_usage(est).patches]
    >>> len(heights), bool(abs(sum(heights) - 1) < 1e-9)
    (3, True)
    >>> plt.close("all")
    """
    model = _mixture(estimator)
    if X is not None:
        usage = _routed_gate(model, _call(estimator, "predict_gate", X)).mean(axis=0)
    elif hasattr(model, "expert_usage_"):
        usage = np.asarray(model.expert_usage_)
    else:
        raise ValueError(
            f"This {type(model).__name__} has no expert_usage_; pass X to measure usage "
            "as the mean gate on X."
        )
    ax = _get_ax(ax)
    n_experts = usage.size
    colors = expert_colors(n_experts) if colors is None else colors
    positions = np.arange(1, n_experts + 1)
    ax.bar(positions, usage, color=colors[:n_experts], edgecolor="k", linewidth=0.5)
    ax.axhline(1.0 / n_experts, color="0.3", ls="--", lw=1, label="even share 1/K")
    ax.set_xticks(positions)
    ax.set_xlabel("expert")
    ax.set_ylabel("share of the data")
    ax.set_ylim(0.0, max(1.05 * usage.max(), 1.2 / n_experts))
    return ax
