"""``python -m introspect`` runs the command line."""

from introspect.cli import main

main()
