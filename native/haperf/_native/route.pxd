"""Contract of haperf._native.route: the transport's per-message loops over Raft messages, in C.

The TCP transport (haperf.runtime.transport) groups every send() by destination and checks every
received message against its connection's sender and receiver. Done in Python, those two loops
cost about as much as encoding or decoding the messages themselves; here they are plain C loops
over the list reading the Message's C fields.

Invariants: the functions never mutate the messages or the list they are given; a non-Message
in the list raises TypeError; grouping keeps the order of the messages within each destination
and lists destinations in the order they first appear. Destinations are found by a linear scan
of at most ROUTE_SCAN_MAX entries on the stack (a Raft cluster is small), then through a dict.
"""

from libc.stdint cimport uint64_t

cdef enum:
    # Distinct destinations matched by a linear scan before grouping switches to a dict.
    ROUTE_SCAN_MAX = 16

cdef Py_ssize_t first_misrouted(list msgs, uint64_t frm, uint64_t to) except -2
