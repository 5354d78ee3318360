"""EM on Dask input against the same fit in memory: time per iteration, client memory.

MixtureOfExpertsRegressor (one start, Numba kernels) on n rows, d features,
K experts, in separate fresh subprocesses:

- ``memory``: NumPy arrays in the process;
- ``dask-default``: a Dask array, Dask's default (threaded) scheduler: the
  "workers" are threads of this process, so the persisted blocks live in it;
- ``dask-cluster``: a ``distributed.LocalCluster`` of 2 worker processes x
  1 thread; the data are generated on the workers and never exist on the
  client.

The rows are drawn block by block from one fixed mixture (seeded per
block), so every mode fits the same data. Each subprocess first fits twice
with ``max_iter=2`` (Numba compiles, every worker loads the kernels; the
second of these is timed), then fits with ``max_iter`` and ``tol=0``; the
seconds per EM iteration are the difference of the two fits' times over
the difference of their iterations (the set-up, the first pass and the
initialisation cancel). It records the client's peak resident memory above
what it held just before the long fit (psutil, sampled every 5 ms), next to
X's size::

    python benchmarks/bench_dask.py                      # n=2e6, d=10, K=8
    python benchmarks/bench_dask.py --n 20000000 --modes memory dask-cluster

``--spill MB`` instead fits, to convergence (``--tol``), a data set twice
the total memory limit of a LocalCluster of 2 worker processes x 1 thread
whose ``memory_limit`` is MB each: the data are generated on the workers,
which spill what does not fit to disk. It reports whether the fit
converged and whether a worker died (the workers' process ids before and
after)::

    python benchmarks/bench_dask.py --spill 700 --k 4 --tol 1e-4
"""

import argparse
import json
import subprocess
import sys

WORKER = r"""
import json, sys, threading, time, warnings
import numpy as np, psutil, dask, dask.array as da
from mixexp import MixtureOfExpertsRegressor

mode, n, d, k, rows, max_iter = sys.argv[1], *(int(v) for v in sys.argv[2:7])
tol, memory_limit = float(sys.argv[7]), int(sys.argv[8])
warnings.simplefilter("ignore")
model = np.random.default_rng(0)
gate, coef = 2.0 * model.standard_normal((k, d)), model.standard_normal((k, d))
intercept = 3.0 * model.standard_normal(k)

def block(block_info=None):
    info = block_info[None]
    size = info["chunk-shape"][0]
    rng = np.random.default_rng([1, info["chunk-location"][0]])
    X = rng.standard_normal((size, d))
    logits = X @ gate.T
    g = np.exp(logits - logits.max(axis=1, keepdims=True))
    g /= g.sum(axis=1, keepdims=True)
    expert = (g.cumsum(axis=1) > rng.random((size, 1))).argmax(axis=1)
    y = np.einsum("nd,nd->n", X, coef[expert]) + intercept[expert] + 0.5 * rng.standard_normal(size)
    return np.column_stack([X, y])

chunks = ((rows,) * (n // rows) + ((n % rows,) if n % rows else ()), (d + 1,))
client = None
if mode in ("dask-cluster", "dask-spill"):
    from distributed import Client, LocalCluster
    limit = {"memory_limit": f"{memory_limit}MB"} if mode == "dask-spill" else {}
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=":0", **limit)
    client = Client(cluster)
    pids = sorted(client.run(lambda: __import__("os").getpid()).values())
data = da.map_blocks(block, chunks=chunks, dtype=np.float64)
if mode == "memory":
    data = data.compute(scheduler="sync")
    X, y = data[:, :d], data[:, d]
else:
    data = data.persist()  # the default scheduler computes it here; a cluster on its workers
    if client is not None:
        from distributed import wait
        wait(data)
    X, y = data[:, :d], data[:, d]

def make(max_iter, tol=0.0):
    return MixtureOfExpertsRegressor(k, alpha=1e-4, n_init=1, random_state=0, max_iter=max_iter,
                                     tol=tol)

def timed(est):
    start = time.perf_counter()
    est.fit(X, y)
    return time.perf_counter() - start, est

process = psutil.Process()
if mode == "dask-spill":  # one fit to convergence; no warm-up (its data would stay too)
    baseline = process.memory_info().rss
    seconds, est = timed(make(max_iter, tol))
    short = None
else:
    make(2).fit(X, y)  # compile / load the kernels in every worker
    short = timed(make(2))
    baseline = process.memory_info().rss
peak = baseline
running = True
def sample():
    global peak
    while running:
        peak = max(peak, process.memory_info().rss)
        time.sleep(0.005)
sampler = threading.Thread(target=sample)
sampler.start()
if short is not None:
    seconds, est = timed(make(max_iter))
running = False
sampler.join()
result = {"seconds": seconds, "n_iter": est.n_iter_, "converged": bool(est.converged_),
          "log_likelihood": est.log_likelihood_, "client_mb": (peak - baseline) / 2**20,
          "x_mb": n * d * 8 / 2**20}
if short is not None:
    result["per_iter"] = (seconds - short[0]) / (est.n_iter_ - short[1].n_iter_)
if client is not None:
    result["workers_survived"] = sorted(client.run(
        lambda: __import__("os").getpid()).values()) == pids
print(json.dumps(result))
if client is not None:
    client.close(); cluster.close()
"""


def run(mode, args, n):
    out = subprocess.run([sys.executable, "-c", WORKER, mode, str(n), str(args.d), str(args.k),
                          str(args.rows), str(args.max_iter), str(args.tol), str(args.spill)],
                         capture_output=True, text=True, check=False)
    if out.returncode:
        sys.exit(f"{mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_000_000)
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--rows", type=int, default=250_000, help="rows per Dask block")
    parser.add_argument("--max-iter", type=int, default=12,
                        help="EM iterations of the timed fit (at least 3)")
    parser.add_argument("--modes", nargs="+", default=["memory", "dask-default", "dask-cluster"],
                        choices=["memory", "dask-default", "dask-cluster"])
    parser.add_argument("--spill", type=int, default=0, metavar="MB",
                        help="fit twice the workers' total memory limit (MB each) instead")
    parser.add_argument("--tol", type=float, default=1e-4, help="tol of the --spill fit")
    args = parser.parse_args()
    if args.spill:
        n = 2 * 2 * args.spill * 2**20 // ((args.d + 1) * 8)
        args.max_iter = max(args.max_iter, 500)
        r = run("dask-spill", args, n)
        print(f"n={n:.2e}, d={args.d}, K={args.k}, blocks of {args.rows} rows: data "
              f"{n * (args.d + 1) * 8 / 2**20:.0f} MB on 2 workers of memory_limit="
              f"{args.spill} MB; tol={args.tol}")
        print(f"fit {r['seconds']:.1f} s, {r['n_iter']} iterations, converged={r['converged']}, "
              f"workers survived={r['workers_survived']}, client +{r['client_mb']:.0f} MB")
        return
    results = {mode: run(mode, args, args.n) for mode in args.modes}
    reference = results.get("memory")
    print(f"n={args.n:.0e}, d={args.d}, K={args.k}, blocks of {args.rows} rows; "
          f"X is {args.n * args.d * 8 / 2**20:.0f} MB; {args.max_iter} vs 2 iterations timed")
    print(f"{'mode':<14}{'s/iter':>8}{'x memory':>10}{'log-likelihood':>17}"
          f"{'diff/sample':>13}{'client +MB':>12}")
    for mode, r in results.items():
        ratio = r["per_iter"] / reference["per_iter"] if reference else float("nan")
        diff = r["log_likelihood"] - reference["log_likelihood"] if reference else float("nan")
        print(f"{mode:<14}{r['per_iter']:>8.3f}{ratio:>9.2f}x{r['log_likelihood']:>17.10f}"
              f"{diff:>13.1e}{r['client_mb']:>12.1f}")


if __name__ == "__main__":
    main()
