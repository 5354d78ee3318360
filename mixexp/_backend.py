"""Backend resolution (which kernel bundle a fit uses), host/device moves, CPU threads.

Where arrays live: a fit's per-sample arrays (X, Y, sample weights,
responsibilities) live in the namespace of its kernel bundle
(``kernels.xp``: NumPy, or CuPy on the GPU); parameters, M-step statistics
and scalars are host NumPy. CuPy arrays are recognised by their type's
module, so nothing here imports CuPy: only ``get_kernels("cupy")`` does.
"""

import functools
import threading

import numpy as np

from ._kernels import get_kernels

BACKENDS = ("auto", "numpy", "numba", "cupy")

# How to get each optional backend's package (numba is a core dependency:
# it is missing only from a broken or minimal environment).
_INSTALL = {"numba": "pip install numba", "cupy": 'pip install "mixexp[gpu]"'}


def is_device_array(a):
    """Whether ``a`` is a CuPy array (told from its type, without importing CuPy)."""
    return type(a).__module__.split(".")[0] == "cupy"


def _check_device(kernels):
    """RuntimeError unless the device backend ``kernels`` sees a GPU."""
    try:
        n_devices = kernels.xp.cuda.runtime.getDeviceCount()
        why = ""
    except Exception as exc:  # CUDARuntimeError: no driver, or one too old for CuPy
        n_devices, why = 0, f" ({exc})"
    if n_devices == 0:
        raise RuntimeError(
            f"backend={kernels.name!r} needs a CUDA device, but CuPy sees none{why}. Check the "
            f"NVIDIA driver and that the CuPy build matches it ({_INSTALL[kernels.name]} "
            "installs cupy-cuda12x, for CUDA 12), or use backend='auto' to fit on the CPU."
        )


def _available(name):
    """The kernel bundle ``name``, with its device checked; ImportError/RuntimeError if not."""
    kernels = get_kernels(name)
    if kernels.device:
        _check_device(kernels)
    return kernels


def resolve_backend(backend, X=None):
    """Return the kernel bundle for the ``backend`` parameter and the input ``X``.

    ``"auto"`` never fails: CuPy for a CuPy array, otherwise (or where the
    GPU backend cannot serve) Numba when it imports, else NumPy. An explicit
    name that cannot be served raises ImportError naming what to install,
    or RuntimeError where CuPy imports but sees no GPU.
    """
    if backend == "auto":
        candidates = ("cupy", "numba") if is_device_array(X) else ("numba",)
        for name in candidates:
            try:
                return _available(name)
            except (ImportError, RuntimeError):
                pass
        return get_kernels("numpy")
    try:
        return _available(backend)
    except ImportError as exc:
        raise ImportError(
            f"backend={backend!r} needs the {backend} package, which could not be imported "
            f"({exc}). Install it with `{_INSTALL.get(backend, f'pip install {backend}')}`, "
            "or use backend='numpy'."
        ) from exc


# ---- host/device moves ---------------------------------------------------------


def array_namespace(a):
    """The namespace of ``a``: CuPy for a CuPy array, else NumPy."""
    return get_kernels("cupy").xp if is_device_array(a) else np


def to_host(a):
    """``a`` as a host NumPy array when it is a CuPy array; anything else unchanged."""
    return get_kernels("cupy").to_host(a) if is_device_array(a) else a


def in_namespace(a, kernels):
    """``a`` (an array, or None) moved into the namespace of ``kernels`` if it is not there."""
    if a is None or is_device_array(a) == kernels.device:
        return a
    return kernels.xp.asarray(a) if kernels.device else to_host(a)


def as_caller(result, X):
    """``result`` in the array type of the caller's ``X``: CuPy in, CuPy out; else NumPy."""
    if is_device_array(result) == is_device_array(X):
        return result
    if is_device_array(X):
        return get_kernels("cupy").xp.asarray(result)
    return to_host(result)


_THREADPOOL_CONTROLLER = None

# The BLAS thread limit is process-wide, so concurrent calls share one: the
# first call in sets it, the last one out restores what the first found.
# (Each call saving and restoring its own left the limit at 1 whenever calls
# overlapped: a later call saved the 1 an earlier one had set.)
_BLAS_LOCK = threading.Lock()
_blas_calls = 0
_blas_limiter = None


def _threadpool_controller():
    global _THREADPOOL_CONTROLLER
    if _THREADPOOL_CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _THREADPOOL_CONTROLLER = ThreadpoolController()
    return _THREADPOOL_CONTROLLER


def _release_openblas_control():
    """Let other threads change OpenBLAS's limit again, if this thread held it.

    threadpoolctl >= 3.6 lets only one thread at a time change the limit of
    OpenBLAS's shared (pthreads) pool and silently ignores the others; the
    thread that restores the limit need not be the one that set it.
    """
    import threadpoolctl

    clear = getattr(getattr(threadpoolctl, "OpenBLASController", None),
                    "clear_controlling_thread", None)
    if clear is not None:
        clear()  # a no-op unless the calling thread holds the control


def _enter_single_threaded_blas():
    global _blas_calls, _blas_limiter
    with _BLAS_LOCK:
        if _blas_calls == 0:
            _blas_limiter = _threadpool_controller().limit(limits=1, user_api="blas")
        _blas_calls += 1


def _leave_single_threaded_blas():
    global _blas_calls, _blas_limiter
    with _BLAS_LOCK:
        _blas_calls -= 1
        if _blas_calls == 0:
            _blas_limiter.restore_original_limits()
            _blas_limiter = None
        _release_openblas_control()


def single_threaded_blas(method):
    """Run ``method`` with BLAS limited to one thread.

    Our BLAS calls are skinny products ((n, d) by (d, K)) that gain nothing
    from threads, and with several OpenMP/BLAS runtimes loaded (NumPy's and
    SciPy's OpenBLAS, scikit-learn's libgomp) threaded BLAS was measured
    about 90x slower on a 2-core machine. The cores are left to the kernels.

    Thread-safe: calls running at once in several threads share the limit,
    and the last to finish restores the limit the first one found.
    """

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        _enter_single_threaded_blas()
        try:
            return method(*args, **kwargs)
        finally:
            _leave_single_threaded_blas()

    return wrapper
