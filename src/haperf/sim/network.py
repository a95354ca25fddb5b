"""The simulated network: encoded frames between nodes, with latency, loss and partitions.

Owns Network and NetworkConfig. A sent Message is encoded to bytes at once (so the codec runs on
every message of every simulation) and delivered later as those bytes, decoded by the reader of
its link (one FrameReader per (src, dst), like one TCP connection each). Per seed the network can
drop, duplicate, reorder and corrupt frames, and cut links one way (asymmetric) or both ways
(symmetric). A corrupted frame has one bit flipped; the codec must reject it with a CodecError
(its CRC32C) or leave bytes pending (a flipped length), after which the link's reader is
replaced, as a real transport closes the connection. Any other exception from the decoder
propagates and fails the run.

Invariants: all randomness comes from the stream given at construction, drawn in send order;
without reordering each link is FIFO (a frame never overtakes an earlier frame of its link);
a cut link drops frames at delivery time (a frame on the wire when the link is cut is lost);
at most `inflight_max` frames are in flight at once, further sends are dropped and counted.
"""

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from haperf.errors import CodecError

MS = 1_000_000
INFLIGHT_MAX = 10_000
MSG_TYPES_MAX = 256  # message type is a uint8_t


class FrameReaderLike(Protocol):
    def feed(self, data: bytes) -> list[Any]: ...


Encode = Callable[[Any], bytes]
ReaderFactory = Callable[[], FrameReaderLike]


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """Latency is latency_min_ns plus an exponential tail of mean latency_tail_mean_ns, capped at
    latency_max_ns. Probabilities are per frame. A reordered frame gets an extra delay uniform
    in [0, reorder_window_ns] and may overtake later frames of its link."""

    latency_min_ns: int = 1 * MS // 2
    latency_tail_mean_ns: int = 1 * MS // 2
    latency_max_ns: int = 20 * MS
    drop_p: float = 0.0
    duplicate_p: float = 0.0
    reorder_p: float = 0.0
    corrupt_p: float = 0.0
    reorder_window_ns: int = 30 * MS
    inflight_max: int = INFLIGHT_MAX

    def __post_init__(self) -> None:
        for name in ("drop_p", "duplicate_p", "reorder_p", "corrupt_p"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        if not 0 <= self.latency_min_ns <= self.latency_max_ns:
            raise ValueError("need 0 <= latency_min_ns <= latency_max_ns")
        if self.latency_tail_mean_ns < 0 or self.reorder_window_ns < 0:
            raise ValueError("latency_tail_mean_ns and reorder_window_ns must be >= 0")
        if self.inflight_max < 1:
            raise ValueError(f"inflight_max must be >= 1, got {self.inflight_max}")


@dataclass(slots=True)
class NetworkStats:
    sent: int = 0
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    cut: int = 0
    corrupted: int = 0
    rejected: int = 0
    overflow: int = 0
    bytes_sent: int = 0
    by_type: list[int] = field(default_factory=lambda: [0] * MSG_TYPES_MAX)


class Network:
    """Moves encoded frames; `send` returns the (deliver_at_ns, src, dst, frame) to schedule."""

    __slots__ = (
        "_blocked",
        "_encode",
        "_last_arrival",
        "_new_reader",
        "_readers",
        "_rng",
        "config",
        "healed",
        "inflight",
        "stats",
    )

    def __init__(
        self,
        config: NetworkConfig,
        rng: random.Random,
        encode: Encode,
        new_reader: ReaderFactory,
    ) -> None:
        self.config = config
        self._rng = rng
        self._encode = encode
        self._new_reader = new_reader
        self._readers: dict[tuple[int, int], FrameReaderLike] = {}
        self._last_arrival: dict[tuple[int, int], int] = {}
        # (src, dst) -> how many active cuts cover the link (cuts may overlap).
        self._blocked: dict[tuple[int, int], int] = {}
        # Healed links (the majority of the liveness phase): never cut, never lossy.
        self.healed: dict[tuple[int, int], bool] = {}
        self.inflight = 0
        self.stats = NetworkStats()

    # -- sending ---------------------------------------------------------------------------
    def _latency_ns(self) -> int:
        c = self.config
        mean = c.latency_tail_mean_ns
        tail = int(self._rng.expovariate(1.0 / mean)) if mean else 0
        return min(c.latency_min_ns + tail, c.latency_max_ns)

    def send(
        self, now_ns: int, src: int, messages: Iterable[Any]
    ) -> list[tuple[int, int, int, bytes]]:
        """Encode each message and decide its fate; returns the deliveries to schedule."""
        c = self.config
        rng = self._rng
        out: list[tuple[int, int, int, bytes]] = []
        stats = self.stats
        for msg in messages:
            dst = msg.to
            frame = self._encode(msg)
            stats.sent += 1
            stats.bytes_sent += len(frame)
            stats.by_type[msg.type] += 1
            link = (src, dst)
            lossy = link not in self.healed
            if lossy and c.drop_p and rng.random() < c.drop_p:
                stats.dropped += 1
                continue
            copies = 1
            if lossy and c.duplicate_p and rng.random() < c.duplicate_p:
                copies = 2
                stats.duplicated += 1
            for _ in range(copies):
                if self.inflight >= c.inflight_max:
                    stats.overflow += 1
                    continue
                at = now_ns + self._latency_ns()
                if c.reorder_p and rng.random() < c.reorder_p:
                    at += rng.randint(0, c.reorder_window_ns)
                    stats.reordered += 1
                else:
                    # FIFO per link: never arrive before the previous frame of this link.
                    last = self._last_arrival.get(link, 0)
                    at = max(at, last)
                    self._last_arrival[link] = at
                self.inflight += 1
                if lossy and c.corrupt_p and rng.random() < c.corrupt_p:
                    stats.corrupted += 1
                    flip = rng.randrange(len(frame))
                    frame_out = bytearray(frame)
                    frame_out[flip] ^= 1 << rng.randrange(8)
                    out.append((at, src, dst, bytes(frame_out)))
                    continue
                out.append((at, src, dst, frame))
        return out

    # -- delivering ------------------------------------------------------------------------
    def receive(self, src: int, dst: int, frame: bytes) -> list[Any] | None:
        """Decode an arriving frame; None when the link is cut (the frame is lost)."""
        self.inflight -= 1
        link = (src, dst)
        if link in self._blocked and link not in self.healed:
            self.stats.cut += 1
            return None
        reader = self._readers.get(link)
        if reader is None:
            reader = self._readers[link] = self._new_reader()
        try:
            messages = reader.feed(frame)
        except CodecError:
            self.stats.rejected += 1
            del self._readers[link]
            return None
        if getattr(reader, "pending_bytes", 0):
            # Every delivery is one whole frame, so bytes left over mean a corrupted length
            # field broke the framing: drop the connection rather than wait on it forever.
            self.stats.rejected += 1
            del self._readers[link]
            return None
        self.stats.delivered += 1
        return messages

    def reset_link(self, src: int, dst: int) -> None:
        """Forget a link's reader (its connection was torn down by a crash)."""
        self._readers.pop((src, dst), None)

    # -- partitions ------------------------------------------------------------------------
    def cut(self, links: Iterable[tuple[int, int]]) -> None:
        for link in links:
            self._blocked[link] = self._blocked.get(link, 0) + 1

    def uncut(self, links: Iterable[tuple[int, int]]) -> None:
        for link in links:
            n = self._blocked.get(link, 0)
            assert n > 0, f"healing link {link} that is not cut"
            if n == 1:
                del self._blocked[link]
            else:
                self._blocked[link] = n - 1

    def is_cut(self, src: int, dst: int) -> bool:
        link = (src, dst)
        return link in self._blocked and link not in self.healed

    def heal(self, links: Iterable[tuple[int, int]]) -> None:
        """Make links whole for good: no cut, drop or duplicate applies to them any more."""
        for link in links:
            self.healed[link] = True


def symmetric_cut(side_a: Iterable[int], side_b: Iterable[int]) -> list[tuple[int, int]]:
    """Links that separate two groups in both directions."""
    a, b = sorted(side_a), sorted(side_b)
    return [(x, y) for x in a for y in b] + [(y, x) for x in a for y in b]


def one_way_cut(senders: Iterable[int], receivers: Iterable[int]) -> list[tuple[int, int]]:
    """Links that stop frames from `senders` reaching `receivers`, but not the other way."""
    return [(x, y) for x in sorted(senders) for y in sorted(receivers)]
