"""Start, stop, kill and partition local node processes, for `cairn up` and the tests."""
