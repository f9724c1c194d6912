"""Small helpers shared by the entry scripts: atomic file writes, config resolvers."""
