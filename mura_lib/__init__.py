"""mura_lib: the library behind the thesis.  Importing it fixes the numeric settings that decide
a run's numbers (see :mod:`mura_lib.numerics`) before any framework is imported."""

from . import numerics as _numerics

_numerics.configure()
