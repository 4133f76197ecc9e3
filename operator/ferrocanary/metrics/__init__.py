"""Where the judge's blocks come from: Prometheus or a replayed recording."""
