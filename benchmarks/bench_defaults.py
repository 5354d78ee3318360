"""Default settings on real tables: held-out R^2 by fold against Ridge.

For every CSV in a folder (the last column the target; see
``benchmarks/reference/export_tables.R``, which exports R's MASS and
mlbench regression tables), 5-fold cross-validation (shuffled, seeded):
on each fold the features are standardised on the training part, Ridge
(scikit-learn's default alpha=1) is fitted, and a
``MixtureOfExpertsRegressor`` with default settings (``random_state`` only)
whose number of experts ``select_n_experts`` chooses by BIC over 1..6.
Prints per table the rows, features, Ridge's and mixexp's held-out R^2 of
each fold and their minimum, and the K chosen on each fold. A table
"holds" when no mixexp fold is more than ``--margin`` below Ridge's on the
same fold.

    Rscript benchmarks/reference/export_tables.R /tmp/moe_tables
    python benchmarks/bench_defaults.py /tmp/moe_tables [--margin 0.25] [--alpha A]
"""

import argparse
import pathlib
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold
from sklearn.preprocessing import StandardScaler

from mixexp import MixtureOfExpertsRegressor, select_n_experts


def load(path):
    table = np.genfromtxt(path, delimiter=",", skip_header=1)
    return table[:, :-1], table[:, -1]


def cross_validate(X, y, params, n_splits=5, seed=0):
    """Per fold: Ridge's R^2, mixexp's R^2 and the chosen K."""
    rows = []
    for train, test in KFold(n_splits, shuffle=True, random_state=seed).split(X):
        scaler = StandardScaler().fit(X[train])
        X_train, X_test = scaler.transform(X[train]), scaler.transform(X[test])
        ridge = Ridge().fit(X_train, y[train])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            best, _ = select_n_experts(MixtureOfExpertsRegressor(random_state=0, **params),
                                       X_train, y[train], n_experts=range(1, 7))
        rows.append((r2_score(y[test], ridge.predict(X_test)),
                     r2_score(y[test], best.predict(X_test)), best.n_experts))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=pathlib.Path, help="folder of CSV tables")
    parser.add_argument("--margin", type=float, default=0.25,
                        help="how far below Ridge a fold may fall and still hold")
    parser.add_argument("--alpha", type=float, default=None,
                        help="mixexp's alpha (default: the estimator's default)")
    args = parser.parse_args()
    params = {} if args.alpha is None else {"alpha": args.alpha}
    paths = sorted(args.folder.glob("*.csv"))
    if not paths:
        parser.error(f"no CSV files in {args.folder}")
    print(f"mixexp settings: {params or 'defaults'}; 5 folds; K by BIC over 1..6; "
          f"a fold fails when mixexp's R^2 < Ridge's - {args.margin:g}")
    header = (f"{'table':<16} {'n':>4} {'d':>3}  {'Ridge R^2 by fold':<31} {'min':>6}  "
              f"{'mixexp R^2 by fold':<31} {'min':>6}  {'K':<9} holds")
    print(header)
    print("-" * len(header))
    failing = 0
    for path in paths:
        X, y = load(path)
        rows = cross_validate(X, y, params)
        ridge, moe, ks = map(np.asarray, zip(*rows))
        holds = bool(np.all(moe >= ridge - args.margin))
        failing += not holds
        print(f"{path.stem:<16} {len(y):4d} {X.shape[1]:3d}  "
              f"{' '.join(f'{r:5.2f}' for r in ridge):<31} {ridge.min():6.2f}  "
              f"{' '.join(f'{r:5.2f}' for r in moe):<31} {moe.min():6.2f}  "
              f"{','.join(map(str, ks)):<9} {'yes' if holds else 'NO'}")
    print(f"tables where a fold falls more than {args.margin:g} below Ridge: {failing} "
          f"of {len(paths)}")


if __name__ == "__main__":
    main()
