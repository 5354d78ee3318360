"""Backend resolution (which kernel bundle a fit uses) and CPU thread control."""

import functools

from ._kernels import get_kernels

BACKENDS = ("auto", "numpy")


def resolve_backend(backend, X=None):
    """Return the kernel bundle for the ``backend`` parameter.

    ``"auto"`` never fails: it picks the fastest backend available for the
    input. An explicit name that cannot be served raises ImportError naming
    the extra to install.
    """
    if backend == "auto":
        return get_kernels("numpy")
    return get_kernels(backend)


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
