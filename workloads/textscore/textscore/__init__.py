"""textscore: ferrocanary's reference workload, a text-scoring HTTP service with two builds.

The Python build scores with ``textscore.pyscore`` (pure Python); the Rust build runs the same
service with the hot path in ``textscore_native`` (pyo3). ``textscore.engine`` picks one.
"""

__version__ = "0.1.0"
