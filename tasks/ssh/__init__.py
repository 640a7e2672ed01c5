"""SSH: the connection runner, its result models and streaming."""
