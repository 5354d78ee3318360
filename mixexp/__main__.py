"""Command line: ``python -m mixexp {demo,fit,predict}``."""

import argparse
import pickle
import sys
import time

import numpy as np


def _select_by_bic(X, y, n_experts_range, n_init, random_state):
    from . import MixtureOfExpertsRegressor

    fits = []
    for n_experts in n_experts_range:
        start = time.perf_counter()
        est = MixtureOfExpertsRegressor(n_experts, n_init=n_init, random_state=random_state)
        est.fit(X, y)
        fits.append((est.bic(X, y), est, time.perf_counter() - start))
    return fits


def _plot_demo(est, X, y, out):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install 'mixexp[plot]'): no figure written.")
        return
    from .plotting import plot_experts, plot_gate

    fig, (top, bottom) = plt.subplots(
        2, 1, sharex=True, figsize=(8, 7), gridspec_kw={"height_ratios": [3, 1]}
    )
    plot_experts(est, X, y, ax=top)
    plot_gate(est, X, ax=bottom, margin=0.0)
    top.set_xlabel("")
    top.set_ylabel("acceleration (g)")
    top.set_title(f"Motorcycle crash data: mixture of {est.n_experts} linear experts")
    top.legend(loc="lower right", fontsize=8)
    bottom.set_xlabel("time after impact (ms)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(f"Wrote {out}")


def demo(args):
    """Fit the motorcycle data, choosing the number of experts by BIC."""
    from .datasets import load_motorcycle

    data = load_motorcycle()
    X, y = data.data, data.target
    print(f"mixexp demo: motorcycle crash data ({X.shape[0]} samples, feature 'times' in ms, "
          "target 'accel' in g)")
    print(f"Choosing n_experts by BIC over 1..{args.max_experts} (n_init={args.n_init} each):")
    fits = _select_by_bic(X, y, range(1, args.max_experts + 1), args.n_init, args.random_state)
    print("   K   log-likelihood        BIC   time (s)")
    for bic, est, seconds in fits:
        total = est.log_likelihood_ * X.shape[0]
        print(f"  {est.n_experts:2d}   {total:14.3f} {bic:10.3f}   {seconds:8.3f}")
    bic, est, seconds = min(fits, key=lambda fit: fit[0])
    share = est.predict_gate(X).mean(axis=0)
    print(f"\nSelected n_experts={est.n_experts} (lowest BIC)")
    print("  expert  gate share  intercept   slope (g/ms)   noise std (g)")
    for k in range(est.n_experts):
        print(f"  {k + 1:6d}  {share[k]:10.3f}  {est.expert_intercept_[k]:9.3f}"
              f"   {est.expert_coef_[k, 0]:12.4f}   {np.sqrt(est.expert_variance_[k]):13.3f}")
    print(f"  log-likelihood (total) {est.log_likelihood_ * X.shape[0]:.3f}, "
          f"per sample {est.log_likelihood_:.4f}")
    print(f"  BIC {bic:.3f}, AIC {est.aic(X, y):.3f}, R^2 {est.score(X, y):.4f}, "
          f"fit time {seconds:.3f} s, EM iterations {est.n_iter_}")
    if args.out:
        _plot_demo(est, X, y, args.out)
    return 0


def _read_table(path, target):
    import pandas as pd

    frame = pd.read_csv(path)
    if target is None:
        return frame, None
    if target not in frame.columns:
        raise SystemExit(f"error: column {target!r} not in {path} (columns: {list(frame.columns)})")
    return frame.drop(columns=[target]), frame[target].to_numpy()


def fit(args):
    """Fit a regressor on a CSV file and pickle it."""
    from . import MixtureOfExpertsRegressor

    X, y = _read_table(args.data, args.target)
    est = MixtureOfExpertsRegressor(args.n_experts, n_init=args.n_init,
                                    random_state=args.random_state).fit(X, y)
    with open(args.model, "wb") as f:
        pickle.dump(est, f)
    print(f"Fitted {args.n_experts} experts on {len(y)} rows: log-likelihood per sample "
          f"{est.log_likelihood_:.4f}, R^2 {est.score(X, y):.4f}; saved to {args.model}")
    return 0


def predict(args):
    """Predict a CSV file with a pickled model; writes mean and std columns."""
    with open(args.model, "rb") as f:
        est = pickle.load(f)
    X, _ = _read_table(args.data, None)
    mean, std = est.predict(X, return_std=True)
    out = sys.stdout if args.out in (None, "-") else open(args.out, "w")
    print("mean,std", file=out)
    for m, s in zip(mean, std):
        print(f"{float(m)!r},{float(s)!r}", file=out)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mixexp", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("demo", help="fit the motorcycle data and print a report")
    p.add_argument("--max-experts", type=int, default=6)
    p.add_argument("--n-init", type=int, default=10)
    p.add_argument("--random-state", type=int, default=0)
    p.add_argument("--out", default="mixexp-demo.png", help="PNG to write ('' for none)")
    p.set_defaults(run=demo)

    p = commands.add_parser("fit", help="fit a regressor on a CSV file (pandas required)")
    p.add_argument("data")
    p.add_argument("--target", required=True)
    p.add_argument("--n-experts", type=int, default=3)
    p.add_argument("--n-init", type=int, default=10)
    p.add_argument("--random-state", type=int, default=0)
    p.add_argument("--model", default="mixexp-model.pkl")
    p.set_defaults(run=fit)

    p = commands.add_parser("predict", help="predict a CSV file with a fitted model")
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("--out", default=None, help="CSV to write (default: standard output)")
    p.set_defaults(run=predict)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
