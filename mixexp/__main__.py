"""Command line: ``python -m mixexp {demo,fit,predict}``.

A user error (a file that cannot be read or written, a malformed or
non-numeric table, a bad option) is reported as one line on standard error
with exit status 2, as argparse reports a bad argument, and output paths are
checked before any fitting starts.
"""

import argparse
import os
import pickle
import sys
import time
import warnings

import numpy as np

PROG = "python -m mixexp"
DESCRIPTION = """\
mixexp's command line: a demo on the motorcycle data, fitting a mixture of
experts regressor on a CSV table, predicting a CSV table with it. A user
error (a file that cannot be read or written, a malformed or non-numeric
table, a bad option) is one line on standard error and exit status 2; output
paths are checked before any fitting starts."""


class UserError(Exception):
    """A mistake in the command's input: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (argparse adds the usage above them)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _seed(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected a seed in [0, 2**32 - 1], got {value}")
    return value


def _one_line(exc):
    return " ".join(str(exc).split()) or type(exc).__name__


def _check_writable(path, option):
    """UserError unless ``path`` can be written; called before the work, not after it."""
    if os.path.isdir(path):
        raise UserError(f"{option} {path} is a directory, not a file")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UserError(f"cannot write {option} {path}: directory {parent} does not exist")
    writable = (os.access(path, os.W_OK) if os.path.exists(path)
                else os.access(parent, os.W_OK | os.X_OK))
    if not writable:
        raise UserError(f"cannot write {option} {path}: permission denied")


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
    """Fit the motorcycle data, choosing the number of experts by BIC; print the fit's table."""
    from . import MixtureOfExpertsRegressor, select_n_experts
    from .datasets import load_motorcycle

    if args.out:
        _check_writable(args.out, "--out")
    try:
        import pandas as pd
    except ImportError:
        raise UserError("the demo prints pandas tables: pip install 'mixexp[plot,inference]'")
    data = load_motorcycle(as_frame=True)
    X, y = data.data, data.target
    print(f"mixexp demo: motorcycle crash data ({X.shape[0]} samples, feature 'times' in ms, "
          "target 'accel' in g)")
    print(f"Choosing n_experts by BIC over 1..{args.max_experts} (n_init={args.n_init} each):")
    start = time.perf_counter()
    est, scores = select_n_experts(
        MixtureOfExpertsRegressor(n_init=args.n_init, random_state=args.random_state), X, y,
        n_experts=range(1, args.max_experts + 1), criterion="bic")
    seconds = time.perf_counter() - start
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 100):
        print(scores[["n_parameters", "log_likelihood", "bic", "icl"]].to_string())
    share = est.predict_gate(X).mean(axis=0)
    print(f"\nSelected n_experts={est.n_experts} (lowest BIC); gate shares "
          + ", ".join(f"{v:.3f}" for v in share))
    table = est.summary(X, y)
    with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 100):
        print(table.to_string())
    print(f"  log-likelihood (total) {est.log_likelihood_ * X.shape[0]:.3f}, "
          f"per sample {est.log_likelihood_:.4f}")
    print(f"  BIC {est.bic(X, y):.3f}, AIC {est.aic(X, y):.3f}, R^2 {est.score(X, y):.4f}, "
          f"selection time {seconds:.3f} s, EM iterations {est.n_iter_}")
    if args.out:
        _plot_demo(est, X, y, args.out)
    return 0


def _read_table(path):
    """The CSV table at ``path`` as a DataFrame, or a UserError saying what is wrong."""
    try:
        import pandas as pd
    except ImportError:
        raise UserError("reading CSV files needs pandas (pip install pandas)") from None
    try:
        # index_col=False: a row with more fields than the header is an error
        # (pandas would silently make its first field the index), reported by
        # a ParserWarning that is raised here
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, index_col=False)
    except FileNotFoundError:
        raise UserError(f"no such file: {path}") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or _one_line(exc)}") from None
    except pd.errors.EmptyDataError:
        raise UserError(f"{path} is empty: expected a CSV table with a header line") from None
    except pd.errors.ParserWarning:
        raise UserError(f"{path} is not a well-formed CSV table: a row has more fields than "
                        "the header line") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not a well-formed CSV table: {_one_line(exc)}") from None
    if len(frame) == 0:
        raise UserError(f"{path} has a header but no rows")
    return frame


def _numeric(frame, path):
    """``frame`` as float64, or a UserError naming a non-numeric or incomplete column."""
    import pandas as pd

    for name in frame.columns:
        column = frame[name]
        if column.dtype.kind not in "biuf":
            numbers = pd.to_numeric(column, errors="coerce")
            example = column[numbers.isna() & column.notna()].iloc[0]
            raise UserError(f"column {name!r} of {path} is not numeric (it holds {example!r})")
        if column.isna().any():
            row = int(np.flatnonzero(column.isna().to_numpy())[0]) + 1
            raise UserError(f"column {name!r} of {path} has a missing value (data row {row})")
    return frame.astype(np.float64)


def fit(args):
    """Fit a regressor on a CSV file and pickle it."""
    from . import MixtureOfExpertsRegressor

    _check_writable(args.model, "--model")
    frame = _read_table(args.data)
    if args.target not in frame.columns:
        raise UserError(f"column {args.target!r} not in {args.data} "
                        f"(columns: {list(map(str, frame.columns))})")
    X = _numeric(frame.drop(columns=[args.target]), args.data)
    y = _numeric(frame[[args.target]], args.data)[args.target].to_numpy()
    if X.shape[1] == 0:
        raise UserError(f"{args.data} has no feature columns besides the target {args.target!r}")
    est = MixtureOfExpertsRegressor(args.n_experts, expert=args.expert,
                                    gate_features=args.gate_features,
                                    expert_features=args.expert_features, n_init=args.n_init,
                                    random_state=args.random_state).fit(X, y)
    with open(args.model, "wb") as f:
        pickle.dump(est, f)
    print(f"Fitted {args.n_experts} experts on {len(y)} rows: log-likelihood per sample "
          f"{est.log_likelihood_:.4f}, R^2 {est.score(X, y):.4f}; saved to {args.model}")
    return 0


def _column_names(text):
    """A comma-separated list of column names ('' for none)."""
    return [name.strip() for name in text.split(",")] if text.strip() else []


def _load_model(path):
    from . import MixtureOfExpertsRegressor

    try:
        with open(path, "rb") as f:
            est = pickle.load(f)
    except FileNotFoundError:
        raise UserError(f"no such model file: {path}") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or _one_line(exc)}") from None
    except Exception as exc:  # whatever unpickling a foreign file raises
        raise UserError(f"{path} is not a model saved by 'fit' ({_one_line(exc)})") from None
    if not isinstance(est, MixtureOfExpertsRegressor):
        raise UserError(f"{path} holds a {type(est).__name__}, not a "
                        "MixtureOfExpertsRegressor saved by 'fit'")
    return est


def _features(est, frame, path, target):
    """The columns of ``frame`` the model predicts from."""
    names = getattr(est, "feature_names_in_", None)
    if names is not None:
        # by name: the target and any other extra column are left out
        missing = [name for name in names if name not in frame.columns]
        if missing:
            raise UserError(f"{path} lacks the column(s) {missing} the model was fitted on "
                            f"(columns: {list(map(str, frame.columns))})")
        return _numeric(frame[list(names)], path)
    # a model fitted in Python on an array knows no names: every column but the target
    if target is not None and target in frame.columns:
        frame = frame.drop(columns=[target])
    if frame.shape[1] != est.n_features_in_:
        raise UserError(f"{path} has {frame.shape[1]} feature column(s) but the model was "
                        f"fitted on {est.n_features_in_} (use --target to leave out the target)")
    return _numeric(frame, path).to_numpy()


def predict(args):
    """Predict a CSV file with a pickled model; writes mean and std columns."""
    to_stdout = args.out in (None, "-")
    if not to_stdout:
        _check_writable(args.out, "--out")
    est = _load_model(args.model)
    X = _features(est, _read_table(args.data), args.data, args.target)
    mean, std = est.predict(X, return_std=True)
    lines = ["mean,std"] + [f"{float(m)!r},{float(s)!r}" for m, s in zip(mean, std)]
    if to_stdout:
        print("\n".join(lines))
    else:
        with open(args.out, "w") as out:
            out.write("\n".join(lines) + "\n")
    return 0


# What a command raises for bad input: the estimators' ValueErrors (data they
# refuse) and OSErrors (a file vanishing or filling the disk) as well as ours.
_USER_ERRORS = (UserError, ValueError, OSError)


def _parser():
    parser = _Parser(prog=PROG, description=DESCRIPTION,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("demo", help="fit the motorcycle data and print a report")
    p.add_argument("--max-experts", type=_positive_int, default=6,
                   help="largest number of experts tried (default: 6)")
    p.add_argument("--n-init", type=_positive_int, default=10,
                   help="starts per fit (default: 10)")
    p.add_argument("--random-state", type=_seed, default=0)
    p.add_argument("--out", default="mixexp-demo.png", help="PNG to write ('' for none)")
    p.set_defaults(run=demo)

    p = commands.add_parser(
        "fit", help="fit a regressor on a CSV file (pandas required)",
        description="Fit a MixtureOfExpertsRegressor on a CSV table with a header line: "
                    "--target names the target column, every other column is a feature. "
                    "The model is pickled to --model; 'predict' reads it.")
    p.add_argument("data", help="CSV file with a header line")
    p.add_argument("--target", required=True, help="name of the target column")
    p.add_argument("--n-experts", type=_positive_int, default=3)
    p.add_argument("--expert", choices=["gaussian", "student_t", "poisson"], default="gaussian",
                   help="the experts: linear-Gaussian (default), robust linear regressions "
                        "with Student-t noise (student_t: per-expert scale and degrees of "
                        "freedom), or Poisson regressions with a log link, for non-negative "
                        "integer counts")
    p.add_argument("--gate-features", type=_column_names, default=None, metavar="NAMES",
                   help="comma-separated columns the gate sees (default: every feature; "
                        "'' for a gate of constant mixing proportions)")
    p.add_argument("--expert-features", type=_column_names, default=None, metavar="NAMES",
                   help="comma-separated columns the experts see (default: every feature; "
                        "'' for constant experts)")
    p.add_argument("--n-init", type=_positive_int, default=10)
    p.add_argument("--random-state", type=_seed, default=0)
    p.add_argument("--model", default="mixexp-model.pkl",
                   help="file to write the model to, checked before fitting "
                        "(default: mixexp-model.pkl)")
    p.set_defaults(run=fit)

    p = commands.add_parser(
        "predict", help="predict a CSV file with a fitted model",
        description="Predict the rows of a CSV table with a model written by 'fit': writes "
                    "a CSV table of the predictive mean and standard deviation, one row per "
                    "input row. The features are taken by name, the columns the model was "
                    "fitted on; any other column, such as the target, is ignored, so the "
                    "training file itself can be predicted. Models are pickles: load only "
                    "files you trust.")
    p.add_argument("model", help="model file written by 'fit'")
    p.add_argument("data", help="CSV file with a header line")
    p.add_argument("--out", default=None, help="CSV to write (default: standard output)")
    p.add_argument("--target", default=None,
                   help="column to leave out; needed only for a model fitted in Python on "
                        "an array, which knows no column names")
    p.set_defaults(run=predict)
    return parser


def main(argv=None):
    """Run the command line; returns the exit status (2 for a user error)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad argument (2): argparse has printed it
        return exc.code
    try:
        return args.run(args)
    except _USER_ERRORS as exc:
        print(f"{PROG} {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
