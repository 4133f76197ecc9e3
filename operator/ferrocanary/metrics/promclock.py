"""How far Prometheus' clock is behind ours, so a look never takes a block Prometheus has not finished.

A look wants the blocks that ended ``lag`` seconds ago by the operator's clock. If Prometheus' clock
is behind by more than ``lag`` (a node without NTP, a VM resumed from a pause), the newest block's end
is still in Prometheus' future: evaluated there, its counters read the latest samples and the block
is partial, and a partial block can trip the sample-ratio check, whose verdict (Invalid) is final.

Every answer carries the server's clock in its ``Date`` header (HTTP requires it; whole seconds).
``observe`` keeps the latest reading per address; ``behind`` says how far to end a window earlier;
``in_future`` finds an answer to a range that ends in the server's future, which the transport
refuses (the first look of a process knows no reading yet, and a clock can jump): the fetch is then
retried on the next tick, with the window ended that much earlier, so no partial block is ever kept.
"""

from __future__ import annotations

import logging
import threading
from email.utils import parsedate_to_datetime

RESOLUTION_SECONDS = 1.0  # Date has whole seconds: the server's clock is within [Date, Date + 1)

log = logging.getLogger(__name__)
_lock = threading.Lock()
_behind: dict[str, float] = {}  # address -> seconds the server's clock is behind ours (latest answer)


def _server_time(date_header: str | None) -> float | None:
    if not date_header:
        return None
    try:
        return parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def observe(address: str, date_header: str | None, received: float) -> float | None:
    """Record the server's clock from an answer received at ``received`` (our epoch seconds)."""
    server = _server_time(date_header)
    if server is None:
        return None
    # The least the server can be behind given Date's resolution: corrections only for real skew.
    seconds = max(0.0, received - (server + RESOLUTION_SECONDS))
    with _lock:
        before = _behind.get(address, 0.0)
        _behind[address] = seconds
    if seconds > 0 and abs(seconds - before) > RESOLUTION_SECONDS:
        log.warning("Prometheus at %s: its clock is %.0fs behind this operator's", address, seconds)
    return server


def behind(address: str) -> float:
    """Seconds to end a window earlier for Prometheus at ``address`` (0 when its clock is not behind)."""
    with _lock:
        return _behind.get(address, 0.0)


def in_future(server: float | None, range_end: float) -> float:
    """Seconds ``range_end`` lies after the server's clock (0 when it does not, or the clock is unknown)."""
    if server is None or range_end <= server + RESOLUTION_SECONDS:
        return 0.0
    return range_end - server


def forget() -> None:
    """Drop every reading (tests; a restarted process starts without any)."""
    with _lock:
        _behind.clear()
