"""Where data lives: partitions, weighted rendezvous hashing, move plans, range maps. Pure."""
