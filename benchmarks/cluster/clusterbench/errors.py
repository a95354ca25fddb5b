"""The benchmark's own failure types: one base class for a request a server refused or broke.

Owns `RequestError`, the base of RESP error replies, HTTP error statuses and malformed replies,
so that load loops and the failover writer catch exactly request failures (with connection
errors and timeouts) and nothing broader.
"""


class RequestError(Exception):
    """A request failed at the server or in the protocol (not a local programming error).

    `connection_usable`: the server answered with an error reply and the connection is still in
    step (a RESP error, an HTTP error status), so the client keeps it.
    """

    connection_usable = False


REQUEST_FAILURES: tuple[type[BaseException], ...] = (
    RequestError,
    ConnectionError,
    OSError,
    TimeoutError,
)
