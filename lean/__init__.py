"""lean: train, compress and cost deep networks on a plain CPU with NumPy and Numba.

Importing ``lean`` is light on purpose (no Numba compile, no NumPy import): the command line's ``--help``
must stay fast. Import the rooms you need: ``lean.nn``, ``lean.nets``, ``lean.data``, ``lean.train``.
"""

__version__ = "0.1.0"
