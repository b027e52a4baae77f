"""One module per command; each is a thin adapter from options to the core."""
