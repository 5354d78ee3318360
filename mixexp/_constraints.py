"""Parameter constraints scikit-learn's validation does not provide."""

from numbers import Integral

from sklearn.utils._param_validation import Interval


class IntInterval(Interval):
    """``Interval(Integral, ...)`` that refuses booleans.

    Python counts ``True`` as the integer 1, so scikit-learn's
    ``Interval(Integral, ...)`` accepts it, and ``n_experts=True`` would
    fail later with an error that does not name the parameter. The message
    is Interval's, told that a bool is not one ("must be an int in the
    range [1, inf) (not a bool)").
    """

    def __init__(self, left, right, *, closed):
        super().__init__(Integral, left, right, closed=closed)

    def is_satisfied_by(self, val):
        return not isinstance(val, bool) and super().is_satisfied_by(val)

    def __str__(self):
        return f"{super().__str__()} (not a bool)"
