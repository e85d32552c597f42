"""``python -m lean.cli``: the same as the ``lean`` command."""

from . import main

main()
