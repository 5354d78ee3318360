"""Parameter containers shared by gates and expert families.

A model's parameters nest as ``{"gate": {...}, "experts": {...}}``: each
part is a dict of host float64 arrays owned by one object (the gate or the
expert family), which alone reads its keys. The helpers here act on every
array of a part along its first (expert) axis, without knowing the keys.

:class:`Coordinates` is what the gradient solvers move: a flat vector of
well-scaled unconstrained coordinates for one part, with bounds and a
projection; a model's coordinates are its parts' side by side.
"""

import numpy as np


def take_experts(part, index):
    """The part with its experts ``index`` (an int array), in that order: new arrays."""
    return {key: value[index].copy() for key, value in part.items()}


def append_expert(part, j):
    """The part with a copy of expert ``j`` appended last."""
    return {key: np.concatenate([value, value[j : j + 1]], axis=0) for key, value in part.items()}


def copy_part(part):
    """Deep copy of a parameter dict (nested dicts included)."""
    return {key: copy_part(value) if isinstance(value, dict) else value.copy()
            for key, value in part.items()}


class Coordinates:
    """Flat coordinates of one parameter part: layout, transforms, bounds, projection.

    Subclasses transform values on the way in and out (``_to_flat``,
    ``_from_flat``, ``_gradient_to_flat``), set bounds with :meth:`bound`,
    and may remove null directions in :meth:`project_part`. The default
    transform is the identity.

    Parameters
    ----------
    part : dict of ndarray
        Fixes the keys, their order and shapes.
    """

    def __init__(self, part):
        self.keys = list(part)
        self.shapes = {key: part[key].shape for key in self.keys}
        self.slices = {}
        offset = 0
        for key in self.keys:
            size = int(np.prod(self.shapes[key]))
            self.slices[key] = slice(offset, offset + size)
            offset += size
        self.size = offset
        self.lower = np.full(self.size, -np.inf)
        self.upper = np.full(self.size, np.inf)

    def bound(self, key, lower=None, upper=None):
        """Set bounds of one key's coordinates (broadcast to its shape)."""
        for vector, value in ((self.lower, lower), (self.upper, upper)):
            if value is not None:
                vector[self.slices[key]] = np.broadcast_to(value, self.shapes[key]).ravel()

    def view(self, flat, key):
        """The coordinates of ``key`` in ``flat``, as a writable view of its shape."""
        return flat[self.slices[key]].reshape(self.shapes[key])

    def _to_flat(self, key, value):
        return value

    def _from_flat(self, key, value):
        return value.copy()

    def _gradient_to_flat(self, key, value):
        return value

    def pack(self, part):
        """Parameter dict -> flat vector (size,)."""
        flat = np.empty(self.size)
        for key in self.keys:
            flat[self.slices[key]] = np.ravel(self._to_flat(key, part[key]))
        return flat

    def unpack(self, flat):
        """Flat vector -> parameter dict (new arrays)."""
        return {key: self._from_flat(key, self.view(flat, key)) for key in self.keys}

    def pack_gradient(self, gradient):
        """Gradient dict in the natural parameters -> gradient in the coordinates."""
        flat = np.empty(self.size)
        for key in self.keys:
            flat[self.slices[key]] = np.ravel(self._gradient_to_flat(key, gradient[key]))
        return flat

    def project(self, flat):
        """Clip ``flat`` to the bounds and remove null directions, in place."""
        np.clip(flat, self.lower, self.upper, out=flat)
        self.project_part(flat)
        return flat

    def project_part(self, flat):
        """Remove directions that change no probability (in place); none by default."""
