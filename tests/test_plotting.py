"""mixexp.plotting: what each function draws (artists, limits, labels), not pixels."""

import sys

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import PathCollection, PolyCollection  # noqa: E402

from mixexp import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor  # noqa: E402
from mixexp.datasets import (  # noqa: E402
    load_motorcycle,
    make_moe_classification,
    make_moe_regression,
)
from mixexp.plotting import (  # noqa: E402
    expert_colors,
    plot_expert_usage,
    plot_experts,
    plot_gate,
    plot_log_likelihood,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def motorcycle():
    X, y = load_motorcycle(return_X_y=True)
    est = MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(X, y)
    return est, X, y


@pytest.fixture(scope="module")
def plane():
    X, y, _ = make_moe_regression(n_samples=150, n_features=2, n_experts=3, random_state=0)
    est = MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(X, y)
    return est, X, y


def test_every_function_returns_the_axes_it_was_given(motorcycle):
    est, X, y = motorcycle
    for draw in (lambda ax: plot_gate(est, X, ax=ax), lambda ax: plot_experts(est, X, y, ax=ax),
                 lambda ax: plot_log_likelihood(est, ax=ax),
                 lambda ax: plot_expert_usage(est, ax=ax)):
        ax = plt.figure().add_subplot()
        assert draw(ax) is ax


def test_without_ax_a_new_figure_is_made(motorcycle):
    est, X, _ = motorcycle
    first, second = plot_gate(est, X), plot_expert_usage(est)
    assert first.figure is not second.figure


def test_gate_over_one_feature_draws_one_curve_per_expert(motorcycle):
    est, X, _ = motorcycle
    ax = plot_gate(est, X, n_points=50, margin=0.0)
    lines = ax.get_lines()
    assert len(lines) == est.n_experts
    np.testing.assert_allclose(lines[0].get_xdata()[[0, -1]], [X.min(), X.max()])
    # the curves are the gate: they sum to 1 at every grid point
    total = np.sum([line.get_ydata() for line in lines], axis=0)
    np.testing.assert_allclose(total, 1.0)
    assert ax.get_ylim() == (-0.02, 1.02)
    assert ax.get_xlabel() == "x"


def test_gate_over_a_plane_colours_regions_and_points(plane):
    est, X, _ = plane
    ax = plot_gate(est, X, n_points=30, margin=0.1)
    (image,) = ax.images
    assert image.get_array().shape == (30, 30, 4)
    span = X.max(axis=0) - X.min(axis=0)
    np.testing.assert_allclose(ax.get_xlim(), [X[:, 0].min() - 0.1 * span[0],
                                               X[:, 0].max() + 0.1 * span[0]])
    np.testing.assert_allclose(ax.get_ylim(), [X[:, 1].min() - 0.1 * span[1],
                                               X[:, 1].max() + 0.1 * span[1]])
    (points,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert points.get_offsets().shape == X.shape
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["expert 1", "expert 2", "expert 3"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x0", "x1")


def test_gate_over_a_plane_can_leave_out_the_data(plane):
    est, X, _ = plane
    ax = plot_gate(est, X, n_points=10, show_data=False)
    assert not [c for c in ax.collections if isinstance(c, PathCollection)]


def test_gate_refuses_more_than_two_features():
    X, y, _ = make_moe_regression(n_samples=60, n_features=3, n_experts=2, random_state=0)
    est = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features"):
        plot_gate(est, X)


def test_experts_draws_data_experts_mean_and_band(motorcycle):
    est, X, y = motorcycle
    ax = plot_experts(est, X, y, n_points=60)
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["data", "expert 1", "expert 2", "expert 3", "mixture mean",
                      "mean +/- 2 std"]
    mean_line = ax.get_lines()[-1]
    np.testing.assert_allclose(mean_line.get_ydata(),
                               est.predict(mean_line.get_xdata()[:, None]))
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 1


def test_experts_lines_stop_where_their_gate_is_small(motorcycle):
    est, X, _ = motorcycle
    grid = np.linspace(X.min(), X.max(), 40)[:, None]
    gate = est.predict_gate(grid)
    ax = plot_experts(est, X, n_points=40, threshold=0.5, n_std=0)
    expert_lines = ax.get_lines()[: est.n_experts]
    for k, line in enumerate(expert_lines):
        np.testing.assert_array_equal(np.isfinite(line.get_ydata()), gate[:, k] > 0.5)
    assert not [c for c in ax.collections if isinstance(c, PolyCollection)]  # no band


def test_experts_refuses_classifiers_and_several_features(plane):
    X, y, _ = make_moe_classification(n_samples=80, n_features=1, n_experts=2, random_state=0)
    clf = MixtureOfExpertsClassifier(n_experts=2, random_state=0).fit(X, y)
    with pytest.raises(TypeError, match="regression experts"):
        plot_experts(clf, X)
    est, X2, y2 = plane
    with pytest.raises(ValueError, match="X has 2 features"):
        plot_experts(est, X2, y2)


def test_log_likelihood_history_is_drawn_per_iteration(motorcycle):
    est, _, _ = motorcycle
    ax = plot_log_likelihood(est)
    (line,) = ax.get_lines()
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, est.n_iter_ + 1))
    np.testing.assert_array_equal(line.get_ydata(), est.log_likelihood_history_)
    assert line.get_label() == "EM" and ax.get_xlabel() == "iteration"
    plot_log_likelihood(est, ax=ax, objective=True, label="objective", ls=":")
    second = ax.get_lines()[1]
    np.testing.assert_array_equal(second.get_ydata(), est.objective_history_)
    assert second.get_label() == "objective" and second.get_linestyle() == ":"


def test_expert_usage_bars_are_the_fitted_usage(motorcycle):
    est, _, _ = motorcycle
    ax = plot_expert_usage(est)
    heights = [bar.get_height() for bar in ax.patches]
    np.testing.assert_allclose(heights, est.expert_usage_)
    (even,) = ax.get_lines()
    np.testing.assert_allclose(even.get_ydata(), 1 / 3)
    assert ax.get_ylim()[1] >= max(heights)


@pytest.mark.parametrize("options", [{"gating": "hard"}, {"top_k": 2}, {}])
def test_expert_usage_on_the_training_data_matches_the_fit(motorcycle, options):
    _, X, y = motorcycle
    est = MixtureOfExpertsRegressor(n_experts=3, random_state=0, max_iter=30, tol=1e-3,
                                    **options).fit(X, y)
    heights = [bar.get_height() for bar in plot_expert_usage(est, X).patches]
    np.testing.assert_allclose(heights, est.expert_usage_, atol=1e-12)


def test_expert_usage_without_fitted_usage_needs_x(motorcycle):
    est, X, _ = motorcycle
    del_usage = MixtureOfExpertsRegressor(n_experts=3)
    del_usage.__dict__.update({k: v for k, v in est.__dict__.items() if k != "expert_usage_"})
    with pytest.raises(ValueError, match="pass X"):
        plot_expert_usage(del_usage)
    heights = [bar.get_height() for bar in plot_expert_usage(del_usage, X).patches]
    np.testing.assert_allclose(heights, est.predict_gate(X).mean(axis=0))


def test_pipeline_and_dataframe_inputs(recwarn):
    pd = pytest.importorskip("pandas")
    data = load_motorcycle(as_frame=True)
    pipe = make_pipeline(StandardScaler(), MixtureOfExpertsRegressor(n_experts=2, random_state=0))
    pipe.fit(data.data, data.target)
    ax = plot_experts(pipe, data.data, data.target, n_points=30)
    assert ax.get_xlabel() == "times"
    np.testing.assert_allclose(ax.get_lines()[-1].get_ydata(),
                               pipe.predict(pd.DataFrame({"times": ax.get_lines()[-1]
                                                          .get_xdata()})))
    assert plot_gate(pipe, data.data, n_points=30).get_xlabel() == "times"
    plot_expert_usage(pipe, data.data)
    plot_log_likelihood(pipe)
    assert not [w for w in recwarn if "feature names" in str(w.message)]


def test_an_unfitted_or_foreign_estimator_is_refused(motorcycle):
    from sklearn.exceptions import NotFittedError
    from sklearn.linear_model import Ridge

    _, X, _ = motorcycle
    with pytest.raises(NotFittedError):
        plot_gate(MixtureOfExpertsRegressor(), X)
    with pytest.raises(TypeError, match="got Ridge"):
        plot_gate(Ridge(), X)


def test_expert_colors_are_distinct_for_many_experts():
    for n_experts in (1, 3, 12, 25):
        colors = expert_colors(n_experts)
        assert colors.shape == (n_experts, 4)
        assert len({tuple(c) for c in colors}) == n_experts


def test_missing_matplotlib_names_the_extra(monkeypatch, motorcycle):
    est, X, _ = motorcycle
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r'pip install "mixexp\[plot\]"'):
        plot_gate(est, X)


def test_experts_of_poisson_counts_are_their_rates():
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(300, 1))
    y = rng.poisson(np.where(X[:, 0] < 0, np.exp(1 - X[:, 0]), np.exp(0.5 * X[:, 0])))
    est = MixtureOfExpertsRegressor(n_experts=2, expert="poisson", random_state=0).fit(X, y)
    ax = plot_experts(est, X, y, n_points=50, threshold=0.0)
    xs = np.linspace(X.min(), X.max(), 50)[:, None]
    for k, line in enumerate(ax.get_lines()[:2]):
        np.testing.assert_allclose(line.get_ydata(), est.predict_experts(xs)[:, k])
    np.testing.assert_allclose(ax.get_lines()[2].get_ydata(), est.predict(xs))
