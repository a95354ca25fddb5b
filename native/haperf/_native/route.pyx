"""haperf._native.route: group messages by destination, and find a misrouted received message.

Owns the two per-message loops of the TCP transport (see route.pxd for the contract). Pure: no
I/O, no clock; the lists and messages are read, never changed.
"""

from libc.stdint cimport uint64_t

from haperf._native.raftmsg cimport Message


cdef Py_ssize_t first_misrouted(list msgs, uint64_t frm, uint64_t to) except -2:
    """Index of the first message whose frm or to differs from the given ones; -1 if none."""
    cdef Py_ssize_t i
    cdef Message m
    for i in range(len(msgs)):
        m = <Message?>msgs[i]
        if m.frm != frm or m.to != to:
            return i
    return -1


def misrouted(list msgs, uint64_t frm, uint64_t to):
    """Index of the first message in msgs not sent by `frm` to `to`, or -1 when all were."""
    return first_misrouted(msgs, frm, to)


def group_by_to(list msgs):
    """[(to, [messages for to, in order]), ...], destinations in order of first appearance."""
    cdef Py_ssize_t i, j, k = 0
    cdef uint64_t tos[ROUTE_SCAN_MAX]
    cdef uint64_t to
    cdef Message m
    cdef list groups = []     # the lists, parallel to tos[] while k <= ROUTE_SCAN_MAX
    cdef list out
    cdef list group
    cdef dict by_to = None    # to -> list, once there are more destinations than the scan
    for i in range(len(msgs)):
        m = <Message?>msgs[i]
        to = m.to
        if by_to is None:
            for j in range(k):
                if tos[j] == to:
                    (<list>groups[j]).append(m)
                    break
            else:
                if k < ROUTE_SCAN_MAX:
                    tos[k] = to
                    k += 1
                    groups.append([m])
                else:
                    by_to = {tos[j]: groups[j] for j in range(k)}
                    by_to[to] = [m]
            continue
        group = by_to.get(to)
        if group is None:
            by_to[to] = [m]
        else:
            group.append(m)
    if by_to is not None:
        return list(by_to.items())  # dicts keep insertion order: first appearance
    out = []
    for j in range(k):
        out.append((tos[j], groups[j]))
    return out
