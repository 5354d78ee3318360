"""Backend resolution (which kernel bundle a fit uses) and CPU thread control."""

import functools

from ._kernels import get_kernels

BACKENDS = ("auto", "numpy", "numba")

# How to get each optional backend's package (numba is a core dependency:
# it is missing only from a broken or minimal environment).
_INSTALL = {"numba": "pip install numba"}


def resolve_backend(backend, X=None):
    """Return the kernel bundle for the ``backend`` parameter.

    ``"auto"`` never fails: it picks the fastest backend available for the
    input (Numba when it imports, else NumPy). An explicit name that cannot
    be served raises ImportError naming what to install.
    """
    if backend == "auto":
        try:
            return get_kernels("numba")
        except ImportError:
            return get_kernels("numpy")
    try:
        return get_kernels(backend)
    except ImportError as exc:
        raise ImportError(
            f"backend={backend!r} needs the {backend} package, which could not be imported "
            f"({exc}). Install it with `{_INSTALL.get(backend, f'pip install {backend}')}`, "
            "or use backend='numpy'."
        ) from exc


_THREADPOOL_CONTROLLER = None


def _threadpool_controller():
    global _THREADPOOL_CONTROLLER
    if _THREADPOOL_CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _THREADPOOL_CONTROLLER = ThreadpoolController()
    return _THREADPOOL_CONTROLLER


def single_threaded_blas(method):
    """Run ``method`` with BLAS limited to one thread.

    Our BLAS calls are skinny products ((n, d) by (d, K)) that gain nothing
    from threads, and with several OpenMP/BLAS runtimes loaded (NumPy's and
    SciPy's OpenBLAS, scikit-learn's libgomp) threaded BLAS was measured
    about 90x slower on a 2-core machine. The cores are left to the kernels.
    """

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with _threadpool_controller().limit(limits=1, user_api="blas"):
            return method(*args, **kwargs)

    return wrapper
