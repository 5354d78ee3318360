"""
===================================================
Fitting on a Dask cluster: data stay on the workers
===================================================

A :class:`~mixexp.MixtureOfExpertsClassifier` fitted on a Dask DataFrame
runs where the partitions are: every EM pass sends the parameters to the
workers, each partition returns a few kilobytes of sums, and only those
come back. The client never holds a row-sized array; the predictions are
lazy Dask arrays, computed on the workers.

Here a ``distributed.LocalCluster`` of two in-process workers stands
in for a real cluster (``Client("scheduler-address")`` is the only change),
and the same model is fitted in memory to show that the two fits agree.
See the user guide page :ref:`dask` for what runs where.
"""

# %%
# A table in partitions, with string labels
# ------------------------------------------
import time

import dask.dataframe as dd
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from distributed import Client, LocalCluster

from mixexp import MixtureOfExpertsClassifier
from mixexp.datasets import make_moe_classification
from mixexp.plotting import plot_gate

features, classes, _ = make_moe_classification(n_samples=20_000, n_features=2, n_experts=3,
                                               n_classes=2, random_state=10)
table = pd.DataFrame({"x1": features[:, 0], "x2": features[:, 1],
                      "label": np.array(["no", "yes"])[classes]})
settings = {"n_experts": 3, "tol": 1e-4, "random_state": 0}

# %%
# Fit on the cluster, and in memory
# ---------------------------------
# The ``with`` blocks close the client and the cluster at the end.
with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                  dashboard_address=":0") as cluster, Client(cluster):
    df = dd.from_pandas(table, npartitions=4)  # or dd.read_parquet(...)
    X, y = df[["x1", "x2"]], df["label"]
    start = time.perf_counter()
    on_cluster = MixtureOfExpertsClassifier(**settings).fit(X, y)
    seconds = time.perf_counter() - start
    # lazy: one task per partition, aligned on the DataFrame's index
    scored = df.assign(predicted=on_cluster.predict(X))
    accuracy = float((scored["predicted"] == scored["label"]).mean().compute())

in_memory = MixtureOfExpertsClassifier(**settings).fit(table[["x1", "x2"]], table["label"])
print(f"classes: {on_cluster.classes_}, features: {on_cluster.feature_names_in_}")
print(f"cluster fit: {on_cluster.n_iter_} EM iterations in {seconds:.1f} s, "
      f"training accuracy {accuracy:.3f}")
print(f"log-likelihood per sample: cluster {on_cluster.log_likelihood_:.8f}, "
      f"in memory {in_memory.log_likelihood_:.8f}")

# %%
# The same regions
# ----------------
# The two fits' gates draw the same regions, and their EM runs climbed
# the same path.
fig, axes = plt.subplots(1, 3, figsize=(13, 4))
sample = table[["x1", "x2"]].iloc[:1500]
plot_gate(on_cluster, sample, ax=axes[0])
axes[0].set_title("fitted on the cluster")
plot_gate(in_memory, sample, ax=axes[1])
axes[1].set_title("fitted in memory")
axes[2].plot(on_cluster.objective_history_, label="cluster", linewidth=3)
axes[2].plot(in_memory.objective_history_, "--", label="in memory")
axes[2].set_xlabel("EM iteration")
axes[2].set_ylabel("penalised log-likelihood per sample")
axes[2].legend()
fig.tight_layout()
plt.show()
