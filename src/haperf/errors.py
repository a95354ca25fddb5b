"""Typed operating errors shared by every haperf component.

Owns the exception hierarchy. Invariant: every error a user can cause or meet at run time (bad
arguments, bad input bytes, unavailable features) is a HaperfError subclass whose message says
what was wrong and what to do; programmer errors (broken invariants) stay AssertionError.
"""


class HaperfError(Exception):
    """Base class of every operating error raised by haperf."""


class ConfigError(HaperfError, ValueError):
    """A configuration value or command-line argument is invalid."""


class DetectorInputError(HaperfError, ValueError):
    """A failure detector was given input it cannot use (NaN phi, arrays of unequal length)."""


class UnknownNodeError(HaperfError, KeyError):
    """A node id is not (or no longer) watched by this detector bank."""


class NotLeaderError(HaperfError):
    """A Raft request reached a node that is not the leader; `leader_id` is the known leader."""

    def __init__(self, leader_id: int, node_id: int = 0) -> None:
        self.leader_id = leader_id
        self.node_id = node_id
        who = f"node {node_id}" if node_id else "this node"
        if leader_id:
            hint = f"the leader is node {leader_id}: send the request there"
        else:
            hint = "the leader is unknown (election in progress): retry after a few ticks"
        super().__init__(f"{who} is not the Raft leader; {hint}")


class ProposalDroppedError(HaperfError):
    """A Raft proposal or read was dropped (leadership changed or a transfer is under way)."""


class ConfChangeError(HaperfError, ValueError):
    """A Raft membership change is invalid for the current configuration, or badly encoded."""


class WALError(HaperfError):
    """A write-ahead log operation failed (base of every haperf.wal error)."""


class CorruptionError(WALError):
    """A WAL file holds damage that recovery must not skip: names segment, offset and index."""


class WALPoisonedError(WALError):
    """An earlier write or fsync failed; the WAL refuses every later append and sync (reopen)."""


class WALFullError(WALPoisonedError):
    """The disk is full (ENOSPC); nothing half-written stays visible; free space and reopen."""


class WALLockedError(WALError):
    """Another WAL (in this or another process) holds the directory's lock."""


class WALClosedError(WALError):
    """The WAL was closed; open it again to use it."""


class WALIndexError(WALError, IndexError):
    """An index outside the log, or an append whose expected index is not the next one."""


class RecordTooLargeError(WALError, ValueError):
    """A record is longer than the WAL's record_bytes_max."""


class CodecError(HaperfError, ValueError):
    """Bytes are not a valid haperf wire frame, or a message does not fit the codec's bounds.

    The message names the offset and what was expected. On a stream, any CodecError means the
    framing is lost: close the connection (Raft retransmits what was lost).
    """


class FrameTruncatedError(CodecError):
    """A frame, or a field inside it, ends before the bytes it announces."""


class FrameChecksumError(CodecError):
    """A frame's CRC32C does not match its bytes: it was corrupted in transit or storage."""


class UnknownMessageTypeError(CodecError):
    """A frame carries (or a message to encode has) a message or entry type this build lacks."""


class UnsupportedVersionError(CodecError):
    """A frame uses a wire format version this build cannot read."""


class FrameTooLargeError(CodecError):
    """A frame, count or length is above the codec's named bound (checked before allocating)."""


class FrameMalformedError(CodecError):
    """A frame is structurally wrong: bad magic, reserved bits, inconsistent lengths."""


class CallNotPermittedError(HaperfError):
    """A circuit breaker rejected a call (it is OPEN, FORCED_OPEN, or HALF_OPEN with every probe
    permit taken). Raised fresh for every rejection and built cheaply: the message is formatted
    only when the error is printed.

    args are (breaker name, state name, remaining open time in ns, 0 when unknown).
    """

    @property
    def breaker(self) -> str:
        return str(self.args[0])

    @property
    def state(self) -> str:
        return str(self.args[1])

    @property
    def retry_after_ns(self) -> int:
        """How long the breaker stays open from the rejection (0 when not known)."""
        return int(self.args[2])

    def __str__(self) -> str:
        name, state, remaining_ns = self.args
        wait = f" for another {remaining_ns / 1e9:.3f} s" if remaining_ns else ""
        return (
            f"circuit breaker {name!r} is {state}{wait} and does not permit calls; "
            "retry later or give the call a fallback"
        )


class RejectedError(HaperfError):
    """A resilience policy refused a call without running it (limit, full bulkhead, ...).

    `policy` names the policy that refused; `retry_after_ns` is a hint (0 when unknown).
    """

    def __init__(self, message: str, *, policy: str = "", retry_after_ns: int = 0) -> None:
        super().__init__(message)
        self.policy = policy
        self.retry_after_ns = retry_after_ns


class RateLimitedError(RejectedError):
    """A rate limiter had no tokens for the call (or its wait would exceed the allowed wait)."""


class BulkheadFullError(RejectedError):
    """A bulkhead had no free slot and its wait queue was full or the queue wait timed out."""


class ConcurrencyLimitError(RejectedError):
    """An adaptive concurrency limiter was at its current limit."""


class CommitUnknownError(HaperfError):
    """A Raft proposal's outcome is unknown: it may or may not have been applied (a timeout, the
    leader changed or stopped after the entry was appended, a snapshot covered it). Read the state
    to find out; never treat this as a failure (Jepsen: an `info`, not a `fail`)."""


class NodeStoppedError(HaperfError):
    """The Raft node is stopped (or stopping) and takes no more requests."""


class TransportError(HaperfError):
    """A peer connection failed the transport's handshake or sent a frame it may not send."""


class StorageError(HaperfError):
    """Raft's durable state on disk (hard-state or snapshot file) is missing, damaged or foreign;
    the message names the file and what was wrong."""


class ProtocolError(HaperfError, ValueError):
    """A client request on a wire protocol (RESP, HTTP admin) is malformed or too large."""


class HistoryFormatError(HaperfError, ValueError):
    """An operation history (JSON lines, Jepsen log, EDN) cannot be parsed; the message names the
    file, line and what was wrong."""


class KVCommandError(HaperfError, ValueError):
    """Bytes are not a valid haperf.kv command, or a key/value is above the store's size limits.
    A replica that meets one returns it as the command's result and leaves its state unchanged."""


class KVValueError(HaperfError, ValueError):
    """A well-formed kv command cannot act on the stored value (INCRBY on a non-integer, an
    increment that would overflow a signed 64-bit integer); nothing was changed."""


class KVSnapshotError(HaperfError, ValueError):
    """A kv snapshot is truncated, corrupted (checksum mismatch) or of an unknown version; the
    store was left as it was before restore."""


class KVReplyError(HaperfError):
    """A RESP server answered a request with an error reply; `code` is its first word (ERR,
    WRONGTYPE, ...) and the message is the server's text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = message.split(" ", 1)[0]


class RedirectError(NotLeaderError):
    """A RESP server is not the leader and named the leader's RESP `address` (a `-MOVED 0
    host:port` reply); `address` is "" when the leader is not known (a `-TRYAGAIN` reply)."""

    def __init__(self, address: str, leader_id: int = 0, node_id: int = 0) -> None:
        super().__init__(leader_id, node_id)
        self.address = address
        if address:
            self.args = (f"not the leader; the leader's RESP address is {address}: send there",)
class LocalClusterError(HaperfError):
    """A local cluster's child process failed to start, exited, or did not reach the awaited
    state in time; the message names the node and its log file."""
