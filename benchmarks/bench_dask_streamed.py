"""Estimator experts on Dask input (partial_fit streamed through the blocks): cost per EM
iteration against built-in Gaussian experts on the same blocks, and against the
in-memory estimator-expert fit.

MixtureOfExpertsRegressor with K experts on n rows of d features (a piecewise-linear
mixture, ``make_moe_regression``), one start, on a ``distributed.LocalCluster`` of
2 worker processes x 1 thread (the data are sent to the workers once and persisted):

- ``gaussian-dask``: built-in Gaussian experts, one pass per EM iteration;
- ``sgd-dask``: ``SGDRegressor(shuffle=False)`` experts, three passes per iteration,
  the first sequential over the blocks (``mixexp._solvers._em_stream``);
- ``sgd-memory``: the same experts in memory, refitted with ``fit`` each M-step.

Seconds per iteration are the difference of a fit with ``max_iter=m`` and one with
``max_iter=2`` over ``m - 2`` iterations (set-up, first pass and start cancel; a first
``max_iter=2`` fit, untimed, compiles and loads the kernels); the
passes per iteration are counted on the Dask rows::

    python benchmarks/bench_dask_streamed.py                 # n=2e5, d=5, K=4
    python benchmarks/bench_dask_streamed.py --n 1000000 --chunk 100000
"""

import argparse
import time
import warnings

import dask.array as da
import distributed
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDRegressor

from mixexp import MixtureOfExpertsRegressor
from mixexp._dask import DaskRows
from mixexp.datasets import make_moe_regression


def _counted_passes():
    """Wrap DaskRows' two kinds of pass with a counter: {name: passes}."""
    counts = {"map_reduce": 0, "fold": 0}
    for name in counts:
        original = getattr(DaskRows, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            counts[_name] += 1
            return _original(self, *args, **kwargs)

        setattr(DaskRows, name, counted)
    return counts


def _timed_fit(make, X, y, max_iter, counts):
    before = dict(counts)
    start = time.perf_counter()
    est = make(max_iter).fit(X, y)
    seconds = time.perf_counter() - start
    passes = sum(counts[k] - before[k] for k in counts)
    return est, seconds, passes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--d", type=int, default=5)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=50_000)
    parser.add_argument("--max-iter", type=int, default=7)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y, _ = make_moe_regression(n_samples=args.n, n_features=args.d, n_experts=args.k,
                                  noise=0.2, random_state=0)

    def sgd():
        return SGDRegressor(shuffle=False, random_state=0)

    modes = {
        "gaussian-dask": (lambda m: MixtureOfExpertsRegressor(args.k, alpha=1e-4, random_state=0,
                                                              max_iter=m, tol=0), True),
        "sgd-dask": (lambda m: MixtureOfExpertsRegressor(args.k, alpha=1e-4, expert=sgd(),
                                                         random_state=0,
                                                         max_iter=m, tol=0), True),
        "sgd-memory": (lambda m: MixtureOfExpertsRegressor(args.k, alpha=1e-4, expert=sgd(),
                                                           random_state=0, max_iter=m, tol=0),
                       False),
    }
    counts = _counted_passes()
    print(f"n={args.n} d={args.d} K={args.k} chunk={args.chunk}, LocalCluster 2 processes x "
          "1 thread")
    print(f"{'mode':<15} {'s/iter':>8} {'passes/iter':>12} {'log-lik':>9}")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        dX = client.persist(da.from_array(X, chunks=(args.chunk, args.d)))
        dy = client.persist(da.from_array(y, chunks=args.chunk))
        for name, (make, on_dask) in modes.items():
            data = (dX, dy) if on_dask else (X, y)
            _timed_fit(make, *data, 2, counts)  # (warm-up: kernels compiled and loaded)
            _, short, short_passes = _timed_fit(make, *data, 2, counts)
            est, long, long_passes = _timed_fit(make, *data, args.max_iter, counts)
            iterations = est.n_iter_ - 2
            per_pass = ((long_passes - short_passes) / iterations if on_dask else float("nan"))
            print(f"{name:<15} {(long - short) / iterations:>8.3f} {per_pass:>12.1f} "
                  f"{est.log_likelihood_:>9.4f}")


if __name__ == "__main__":
    main()
