"""``python -m recstack`` is the ``recstack`` command."""

from recstack.cli import main

main()
