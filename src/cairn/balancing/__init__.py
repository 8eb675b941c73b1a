"""Where requests go: round robin, weighted, least connections, source hash, p2c-ewma. Pure."""
