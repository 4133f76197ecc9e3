"""The statistics that decide whether the Rust build met its targets (numpy and scipy only)."""
