"""Backend resolution: which kernel bundle a fit uses."""

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
