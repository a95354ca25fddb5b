"""Builders for hand-written and generated histories used by the lincheck tests.

Owns `h(...)` (a compact way to write a history: one tuple per event, times are the event
indexes) and `executed_history`, a hypothesis strategy that produces histories by actually
running random concurrent operations against real registers: every operation takes effect at
one instant inside its window (or, for fail/info, possibly never), so the result is
linearizable by construction.
"""

from typing import Any

from hypothesis import strategies as st

from haperf.chaos.history import Op


def h(*events: tuple[Any, ...], key: str = "k") -> list[Op]:
    """Events as (process, type, f, value) or (process, type, f, value, key)."""
    ops = []
    for t, event in enumerate(events):
        process, typ, f, value = event[:4]
        k = event[4] if len(event) > 4 else key
        ops.append(Op(process, typ, f, k, tuple(value) if isinstance(value, list) else value, t))
    return ops


@st.composite
def executed_history(
    draw: st.DrawFn, *, keys: int = 2, clients_max: int = 4, ops_max: int = 14
) -> tuple[list[Op], list[int]]:
    """(events, quiescent positions): positions where no client had an operation in flight."""
    clients = draw(st.integers(1, clients_max))
    total = draw(st.integers(1, ops_max))
    registers: dict[str, Any] = {}
    process = list(range(clients))
    next_process = clients
    # client -> [f, key, value, stage ("invoked" | "applied"), result]
    flight: dict[int, list[Any]] = {}
    events: list[Op] = []
    quiescent: list[int] = [0]
    started = 0
    while started < total or flight:
        eligible = [c for c in range(clients) if c in flight or started < total]
        c = draw(st.sampled_from(eligible))
        t = len(events)
        if c not in flight:
            f = draw(st.sampled_from(["read", "write", "cas"]))
            key = f"k{draw(st.integers(0, keys - 1))}"
            value: Any = None
            if f == "write":
                value = draw(st.integers(0, 3))
            elif f == "cas":
                value = (draw(st.one_of(st.none(), st.integers(0, 3))), draw(st.integers(0, 3)))
            events.append(Op(process[c], "invoke", f, key, value, t))
            flight[c] = [f, key, value, "invoked", None]
            started += 1
            continue
        f, key, value, stage, result = flight[c]
        if stage == "invoked":
            action = draw(st.sampled_from(["apply", "apply", "fail", "info"]))
            if action == "apply":
                current = registers.get(key)
                if f == "read":
                    result = current
                elif f == "write":
                    registers[key] = value
                elif current == value[0]:
                    registers[key] = value[1]
                    result = "swapped"
                else:
                    result = "mismatch"
                flight[c] = [f, key, value, "applied", result]
                continue
            # Completed without taking effect: a definite failure, or an unknown outcome.
            typ = action
        elif draw(st.integers(0, 5)) == 0:
            typ = "info"  # it took effect, but the client never learns so
        elif f == "cas" and result == "mismatch":
            typ = "fail"
        else:
            typ = "ok"
        out = result if f == "read" and typ == "ok" else (None if f == "read" else value)
        events.append(Op(process[c], typ, f, key, out, t))
        if typ == "info":
            # Jepsen's rule: a process whose outcome is unknown is retired.
            process[c] = next_process
            next_process += 1
        del flight[c]
        if not flight:
            quiescent.append(len(events))
    return events, quiescent
