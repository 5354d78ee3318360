"""An emulated CuPy for the tests: device arrays on the host, CUDA source run by g++.

:func:`emulated_cupy` returns a module that can stand in for ``cupy`` in
``sys.modules``:

* its arrays are :class:`DeviceArray`, a NumPy subclass that plays the
  part of device memory. Like CuPy's, they refuse to mix with host arrays:
  a ufunc, a NumPy function or an indexing operation that combines a
  device array with a (non-scalar) host NumPy array raises TypeError, and
  so does a host array passed where the module's functions expect device
  arrays. Only ``asarray``/``array`` move data to the device and only
  ``asnumpy``/``DeviceArray.get`` move it back; both record each transfer
  in ``module.transfers``. What cannot be caught: NumPy's own conversions
  of a subclass (``np.asarray(device)``, ``host[...] = device``), which
  silently yield host data where CuPy would raise;
* ``RawModule`` compiles the CUDA source with the host C++ compiler and a
  launch runs every (block, thread) of the grid one after another, after
  checking each argument against the kernel's C signature (device arrays
  of the right dtype, C-contiguous; scalars of the right C type). With
  ``one_thread=True`` a launch is instead a grid of a single thread, whose
  grid-stride loop covers every row in one call: the same results (threads
  share nothing), a hundred times faster, for whole fits;
* ``cuda.runtime.getDeviceCount()`` reports one device.

:func:`find_gpu` finds the real CuPy and a device, for the tests marked
``gpu``.

Threads run one after another, so this checks each thread's arithmetic,
indexing and grid-stride loop, not concurrency: the kernels share
nothing between threads (one row each, no shared memory) by design.
"""

import ctypes
import importlib.util
import re
import subprocess
import sys
import types
from functools import wraps
from pathlib import Path

import numpy as np

_SHIM = r"""
#include <cmath>
#include <cstring>
using std::exp;
using std::log;
struct dim3_t { unsigned int x, y, z; };
extern "C" { dim3_t threadIdx, blockIdx, blockDim, gridDim; }
#define __global__
#define __device__
#define __forceinline__ inline
static inline double __longlong_as_double(long long bits) {
    double value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}
"""

_C_SCALARS = {"long long": np.int64, "int": np.int32, "double": np.float64}

class DeviceArray(np.ndarray):
    """A NumPy array standing for device memory: it refuses to mix with host arrays."""

    # what the estimators look at to tell a CuPy array (no import of cupy)
    __module__ = "cupy"

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        _refuse_host(inputs, f"numpy.{ufunc.__name__}")
        if out is not None:
            _refuse_host(out, f"numpy.{ufunc.__name__}(out=...)")
            kwargs["out"] = tuple(_plain(o) for o in out)
        result = getattr(ufunc, method)(*_plain(inputs), **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _device(result)

    def __array_function__(self, func, types_, args, kwargs):
        _refuse_host((args, kwargs), f"numpy.{func.__name__}")
        return _device(func(*_plain(args), **_plain(kwargs)))

    def __getitem__(self, index):
        _refuse_host(index, "indexing")
        return _device(_plain(self)[_plain(index)])

    def __setitem__(self, index, value):
        _refuse_host((index, value), "item assignment")
        _plain(self)[_plain(index)] = _plain(value)

    def get(self):
        """A host copy (as ``cupy.ndarray.get``)."""
        return _to_host(self)


def _is_host(a):
    return isinstance(a, np.ndarray) and not isinstance(a, DeviceArray)


def _refuse_host(arguments, where):
    """TypeError if a host array (0-d ones included) hides in ``arguments``."""
    if _is_host(arguments):
        raise TypeError(f"emulated CuPy: a host numpy.ndarray {arguments.shape} passed to "
                        f"{where} with device arrays; move it with cupy.asarray first")
    if isinstance(arguments, (tuple, list)):
        for a in arguments:
            _refuse_host(a, where)
    elif isinstance(arguments, dict):
        for a in arguments.values():
            _refuse_host(a, where)


def _plain(a):
    """Device arrays (also inside tuples, lists, dicts) as plain NumPy views."""
    if isinstance(a, DeviceArray):
        return a.view(np.ndarray)
    if isinstance(a, (tuple, list)):
        return type(a)(_plain(b) for b in a)
    if isinstance(a, dict):
        return {key: _plain(value) for key, value in a.items()}
    return a


def _device(result):
    """NumPy results as device arrays; scalars as 0-d arrays, as CuPy returns them."""
    if isinstance(result, np.ndarray):
        return result.view(DeviceArray)
    if isinstance(result, np.generic):
        return np.asarray(result).view(DeviceArray)
    if isinstance(result, tuple):
        return tuple(_device(r) for r in result)
    return result


_TRANSFER_LOG = []


def _to_host(a):
    if not isinstance(a, DeviceArray):
        return np.asarray(a)
    _TRANSFER_LOG.append(("to_host", a.shape))
    return np.array(_plain(a))


def _to_device(a, dtype=None, **kwargs):
    if isinstance(a, DeviceArray):
        return _device(np.asarray(_plain(a), dtype=dtype, **kwargs))
    if isinstance(a, np.ndarray):
        _TRANSFER_LOG.append(("to_device", a.shape))
    return np.array(a, dtype=dtype, **kwargs).view(DeviceArray)


def _device_function(function):
    """A NumPy function as CuPy's: device arrays in (host ones refused), device arrays out."""

    @wraps(function)
    def on_device(*args, **kwargs):
        _refuse_host((args, kwargs), f"cupy.{function.__name__}")
        return _device(function(*_plain(args), **_plain(kwargs)))

    return on_device


def _numpy_attribute(name):
    """The emulated ``cupy.<name>``: NumPy's functions on device arrays; types as they are."""
    value = getattr(np, name)
    if callable(value) and not isinstance(value, type):
        return _device_function(value)
    return value


def _kernel_signature(code, name):
    """Parameter types of kernel ``name`` in ``code``: dtypes of pointers, scalar types."""
    data_type = re.search(r"typedef (\w+) T;", code).group(1)
    pointee = {"T": np.dtype({"float": np.float32, "double": np.float64}[data_type]),
               "double": np.dtype(np.float64), "long long": np.dtype(np.int64)}
    params = re.search(rf'__global__ void {name}\((.*?)\)\s*{{', code, re.S).group(1)
    signature = []
    for param in params.split(","):
        words = param.replace("__restrict__", "").replace("const", "").split()[:-1]
        kind = " ".join(words)
        signature.append(("pointer", pointee[kind[:-1]]) if kind.endswith("*")
                         else ("scalar", _C_SCALARS[kind]))
    return signature


class _EmulatedKernel:
    def __init__(self, library, code, name, one_thread):
        self.one_thread = one_thread
        self.function = getattr(library, name)
        self.function.restype = None
        self.signature = _kernel_signature(code, name)
        self.dims = {key: (ctypes.c_uint * 3).in_dll(library, key)
                     for key in ("gridDim", "blockDim", "blockIdx", "threadIdx")}

    def _argument(self, value, expected):
        kind, dtype = expected
        if kind == "pointer":
            assert isinstance(value, DeviceArray), f"a kernel got host memory: {type(value)}"
            assert value.dtype == dtype, (value.dtype, dtype)
            assert value.flags.c_contiguous, "kernels index rows as C-contiguous"
            return ctypes.c_void_p(value.ctypes.data)
        assert type(value) is dtype, (value, dtype)
        return np.ctypeslib.as_ctypes_type(dtype)(value)

    def __call__(self, grid, block, args, **kwargs):
        assert len(args) == len(self.signature)
        c_args = [self._argument(a, e) for a, e in zip(args, self.signature, strict=True)]
        if self.one_thread:
            grid, block = (1,), (1,)
        self.dims["gridDim"][0], self.dims["blockDim"][0] = grid[0], block[0]
        for b in range(grid[0]):
            self.dims["blockIdx"][0] = b
            for t in range(block[0]):
                self.dims["threadIdx"][0] = t
                self.function(*c_args)


def emulated_cupy(build_dir, *, one_thread=False):
    """A ``cupy`` module whose arrays are :class:`DeviceArray` and whose kernels run on the host.

    ``module.transfers`` lists every host/device transfer as
    ``(direction, shape)``; clear it to start counting.
    """
    libraries = {}

    def compile_source(code):
        if code not in libraries:
            stem = build_dir / f"module{len(libraries)}"
            stem.with_suffix(".cpp").write_text(_SHIM + code)
            built = subprocess.run(
                ["g++", "-std=c++14", "-O1", "-Wall", "-Wextra", "-Werror", "-shared",
                 "-fPIC", str(stem.with_suffix(".cpp")), "-o", str(stem.with_suffix(".so"))],
                capture_output=True, text=True)
            assert built.returncode == 0, built.stderr
            libraries[code] = ctypes.CDLL(str(stem.with_suffix(".so")))
        return libraries[code]

    class RawModule:
        def __init__(self, code, **kwargs):
            self.code = code

        def get_function(self, name):
            return _EmulatedKernel(compile_source(self.code), self.code, name, one_thread)

    fake = types.ModuleType("cupy")
    fake.__getattr__ = _numpy_attribute  # everything else is NumPy's, on device arrays
    fake.ndarray = DeviceArray
    fake.asarray = fake.array = _to_device
    fake.asnumpy = _to_host
    fake.transfers = _TRANSFER_LOG
    fake.RawModule = RawModule
    fake.cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))
    return fake


def load_cupy_kernels(fake):
    """``mixexp._kernels._cupy`` imported with ``fake`` as its ``cupy`` (sys.modules restored)."""
    from mixexp import _kernels

    path = Path(_kernels.__file__).with_name("_cupy.py")
    spec = importlib.util.spec_from_file_location("mixexp._kernels._cupy_emulated", path)
    module = importlib.util.module_from_spec(spec)
    saved = sys.modules.get("cupy")
    sys.modules["cupy"] = fake
    try:
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del sys.modules["cupy"]
        else:
            sys.modules["cupy"] = saved
    return module


def find_gpu():
    """(cupy, None) when the real CuPy sees a CUDA device, else (None, why not)."""
    try:
        import cupy
    except ImportError as exc:
        return None, f"CuPy is not installed ({exc})"
    try:
        n_devices = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError: no driver, or too old for the runtime
        return None, f"CuPy sees no CUDA device ({exc})"
    if n_devices == 0:
        return None, "CuPy sees no CUDA device"
    return cupy, None
