"""Type stub of the compiled module textscore_native._native (workloads/textscore-native/src/lib.rs)."""

MAX_TEXTS: int
MAX_TEXT_CHARS: int

class NativePanicError(RuntimeError):
    """A Rust panic caught at the boundary; the request failed, the process is fine."""

def score_batch(texts: list[str]) -> list[float]:
    """Scores texts (probabilities in (0, 1)) without holding the GIL; NativePanicError on a panic."""

def normalise(text: str) -> str:
    """The normalised form of a text (shared table lookup per code point)."""

def feature_hashes(text: str) -> list[int]:
    """The 64-bit feature hashes of a text, in summation order."""

def set_fault(
    kind: str,
    *,
    after: int = 1,
    rate: float = 0.0,
    leak_bytes: int = 0,
    slow_ns_per_feature: int = 0,
    signal: str = "segv",
) -> None:
    """Sets this process's injected fault: none, slow, crash, leak or panic.

    ``rate`` is the fraction of calls that panic (panic) or are slowed (slow).
    """

def panics() -> int:
    """Panics caught at the boundary since the module was loaded."""

def build_info() -> dict[str, str]:
    """crate_version, profile (release/debug), unicode_table (the table's header line)."""
