"""``python -m stream.cli`` runs the ``rdstream`` command (the tests call it this way)."""

from stream.cli import main

main()
