"""The bridge's limits in one place (docs/bridge-protocol.md "Limits" says why each exists)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from plugin_bridge import protocol as P

DEFAULT_MAX_PIXELS = 64 * 1024 * 1024
#: meta is echoed in the result header, which must stay under the 64 KiB header limit
MAX_META_BYTES = 16 * 1024
#: error messages are cut to this many characters so an error frame always fits a header
MAX_ERROR_CHARS = 1000
#: a ping's nonce is echoed in the pong: at most this many bytes of JSON
MAX_NONCE_BYTES = 256


@dataclass(frozen=True)
class ServerLimits:
    max_header: int = P.MAX_HEADER_BYTES
    max_payload: int = P.DEFAULT_MAX_PAYLOAD
    #: per-job pixel budget: the image (and its mask, which must be the same size) times the
    #: number of targets (one output image each) may have at most this many pixels; checked
    #: from the PNG header, decoded only when the job starts
    max_pixels: int = DEFAULT_MAX_PIXELS
    #: compressed bytes of all uploads waiting in the queue (all clients together)
    max_queued_bytes: int = 1024 * 1024 * 1024
    #: close a connection with no request and no job in flight for this long
    idle_timeout: float = 300.0
    #: total time allowed for the handshake and the hello together
    handshake_timeout: float = 10.0
    #: a frame that has started must keep flowing; also the send timeout
    io_timeout: float = 60.0
    max_clients: int = 16
    #: connections accepted but not yet authenticated (each costs a thread and a descriptor)
    max_pending: int = 32
    max_jobs_per_client: int = 8
    #: at most one preview PNG per job per this many seconds
    preview_interval: float = 0.5
    #: messages waiting for a slow reader; beyond this, progress messages are dropped and the
    #: connection stops reading requests until the client catches up
    max_outbox: int = 64
    max_prompt_chars: int = 4000
    #: target prompts in one edit (one shared run, one output image each); the pixel budget
    #: counts every output: width x height x targets <= max_pixels
    max_targets: int = 8

    @property
    def frame_limits(self) -> P.Limits:
        return P.Limits(max_header=self.max_header, max_payload=self.max_payload)


class ByteBudget:
    """A thread-safe byte count with a capacity (the compressed uploads waiting in the queue)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        return self._used

    def reserve(self, n: int) -> bool:
        """Take ``n`` bytes if they fit; False (and nothing taken) if not."""
        with self._lock:
            if self._used + n > self.capacity:
                return False
            self._used += n
            return True

    def release(self, n: int) -> None:
        with self._lock:
            self._used = max(0, self._used - n)
