"""EM on Dask input against the same fit in memory: time, log-likelihood, client memory.

A converged EM fit of MixtureOfExpertsRegressor (default tol, one start,
Numba kernels) on n rows, d features, K experts, three ways, each in a
fresh subprocess:

- ``memory``: NumPy arrays in the process;
- ``dask-default``: a Dask array, Dask's default (threaded) scheduler: the
  "workers" are threads of this process, so the persisted blocks live in it;
- ``dask-cluster``: a ``distributed.LocalCluster`` of 2 worker processes x
  1 thread; the data are generated on the workers and never exist on the
  client.

The rows are drawn block by block from one fixed mixture (seeded per
block), so every mode fits the same data. Each subprocess first runs two
EM iterations on the data (Numba compiles, every worker loads the
kernels), then records
the fit's wall time and the client's peak resident memory above what it
held just before the fit (psutil, sampled every 5 ms), reported next to
X's size::

    python benchmarks/bench_dask.py             # n=1e6, d=10, K=4
    python benchmarks/bench_dask.py --n 200000  # quicker
"""

import argparse
import json
import subprocess
import sys

WORKER = r"""
import json, sys, threading, time, warnings
import numpy as np, psutil, dask, dask.array as da
from mixexp import MixtureOfExpertsRegressor

mode, n, d, k, rows = sys.argv[1], *(int(v) for v in sys.argv[2:6])
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
if mode == "dask-cluster":
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=":0")
    client = Client(cluster)
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

def make(max_iter=500):
    return MixtureOfExpertsRegressor(k, n_init=1, random_state=0, max_iter=max_iter)

make(max_iter=2).fit(X, y)  # compile / load the kernels in every worker
process = psutil.Process()
baseline = peak = process.memory_info().rss
running = True
def sample():
    global peak
    while running:
        peak = max(peak, process.memory_info().rss)
        time.sleep(0.005)
sampler = threading.Thread(target=sample)
sampler.start()
start = time.perf_counter()
est = make().fit(X, y)
seconds = time.perf_counter() - start
running = False
sampler.join()
print(json.dumps({"seconds": seconds, "n_iter": est.n_iter_, "converged": bool(est.converged_),
                  "log_likelihood": est.log_likelihood_, "client_mb": (peak - baseline) / 2**20,
                  "x_mb": n * d * 8 / 2**20}))
if client is not None:
    client.close(); cluster.close()
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--rows", type=int, default=125_000, help="rows per Dask block")
    args = parser.parse_args()
    results = {}
    for mode in ("memory", "dask-default", "dask-cluster"):
        out = subprocess.run([sys.executable, "-c", WORKER, mode, str(args.n), str(args.d),
                              str(args.k), str(args.rows)], capture_output=True, text=True,
                             check=False)
        if out.returncode:
            sys.exit(f"{mode} failed:\n{out.stderr}")
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    reference = results["memory"]
    print(f"n={args.n:.0e}, d={args.d}, K={args.k}, blocks of {args.rows} rows; "
          f"X is {reference['x_mb']:.0f} MB")
    print(f"{'mode':<14}{'fit s':>8}{'iters':>7}{'s/iter':>8}{'x memory':>10}"
          f"{'log-likelihood':>17}{'diff/sample':>13}{'client +MB':>12}")
    for mode, r in results.items():
        print(f"{mode:<14}{r['seconds']:>8.2f}{r['n_iter']:>7d}{r['seconds'] / r['n_iter']:>8.3f}"
              f"{r['seconds'] / reference['seconds']:>9.2f}x{r['log_likelihood']:>17.10f}"
              f"{r['log_likelihood'] - reference['log_likelihood']:>13.1e}"
              f"{r['client_mb']:>12.1f}")


if __name__ == "__main__":
    main()
