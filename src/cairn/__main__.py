"""`python -m cairn` is the `cairn` command (used to start nodes with this interpreter)."""

from cairn.cli.main import main

main()
