"""Collection settings for the whole repository (doctests of mixexp included)."""

import importlib.util

# The CuPy kernel module imports CuPy at import time (get_kernels("cupy")
# relies on that ImportError); without CuPy its doctests cannot be collected.
# tests/test_cupy.py tests it, on the CPU too, through an emulated CuPy.
collect_ignore = []
if importlib.util.find_spec("cupy") is None:
    collect_ignore.append("mixexp/_kernels/_cupy.py")
# mixexp/_dask.py imports Dask (an optional extra, loaded only for Dask input).
if importlib.util.find_spec("dask") is None or importlib.util.find_spec("distributed") is None:
    collect_ignore.append("mixexp/_dask.py")
