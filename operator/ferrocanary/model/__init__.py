"""Plain values shared by every layer: the RustCanary spec and status, recordings, decisions."""
