"""Typed operating errors shared by every haperf component.

Owns the exception hierarchy. Invariant: every error a user can cause or meet at run time (bad
arguments, bad input bytes, unavailable features) is a HaperfError subclass whose message says
what was wrong and what to do; programmer errors (broken invariants) stay AssertionError.
"""


class HaperfError(Exception):
    """Base class of every operating error raised by haperf."""


class ConfigError(HaperfError, ValueError):
    """A configuration value or command-line argument is invalid."""


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
