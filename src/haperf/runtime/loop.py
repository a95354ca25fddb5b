"""The event loop haperf runs on: uvloop when it is importable, asyncio's own loop otherwise.

Owns the choice of loop implementation, in one place, so a node, a benchmark and a test all run
on the same kind of loop. Invariant: `new_event_loop()` never sets a global policy and never
installs the loop as the current one; `run(coro)` creates a fresh loop, runs `coro` to
completion, then cancels what is left and closes the loop (asyncio.Runner semantics).
"""

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")

LoopKind = Literal["auto", "uvloop", "asyncio"]

LOOP_KINDS: tuple[LoopKind, ...] = ("auto", "uvloop", "asyncio")


def uvloop_available() -> bool:
    """True when `import uvloop` works (it is a runtime dependency except on Windows)."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def loop_factory(kind: LoopKind = "auto") -> Callable[[], asyncio.AbstractEventLoop]:
    """A function creating a new loop of `kind`: "auto" (uvloop if importable), "uvloop" or
    "asyncio". Asking for "uvloop" when it is not installed raises ConfigError."""
    from haperf.errors import ConfigError

    if kind not in LOOP_KINDS:
        raise ConfigError(f"loop kind must be one of {LOOP_KINDS}, got {kind!r}")
    if kind == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError as exc:
        if kind == "uvloop":
            raise ConfigError(
                "loop kind 'uvloop' was asked for but uvloop is not installed: "
                "pip install uvloop, or use kind='auto'"
            ) from exc
        return asyncio.new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def new_event_loop(kind: LoopKind = "auto") -> asyncio.AbstractEventLoop:
    """A new event loop (uvloop when importable and `kind` is "auto"); the caller closes it."""
    return loop_factory(kind)()


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """ "uvloop" or "asyncio": which implementation `loop` is (for logs, status and reports)."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def run(main: Coroutine[Any, Any, T], *, kind: LoopKind = "auto", debug: bool = False) -> T:
    """Run `main` to completion on a new loop of `kind` and close the loop afterwards.

    Like asyncio.run: the loop is current while `main` runs, remaining tasks are cancelled and
    async generators shut down before the loop closes.
    """
    with asyncio.Runner(debug=debug, loop_factory=loop_factory(kind)) as runner:
        return runner.run(main)
