"""The `cairn` command: one program for every role and every operator task."""
