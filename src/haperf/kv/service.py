"""One KV service process: a RaftNode, its KVStore, the RESP server and the admin endpoint.

Owns the composition and the process lifecycle behind `python -m haperf node`: start the node
(which opens its data directory and binds its raft port), then the admin endpoint, then the RESP
port; on SIGTERM or SIGINT stop in the reverse order (admin turns not-ready first so a balancer
drains the node, RESP stops taking requests, the node fails what is in flight with typed errors
and closes its WAL), and exit 0. When HAPERF_PARENT_PID is set (LocalCluster sets it) the service
also stops by itself once that parent is gone, so a killed `cluster up` leaves no orphans.

Invariants: stop() is idempotent and runs every step even when one fails; a listener that cannot
bind is a ConfigError naming the address (exit 2), never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from haperf.errors import ConfigError, NodeStoppedError
from haperf.kv.admin import AdminServer
from haperf.kv.config import ServiceConfig
from haperf.kv.localcluster import PARENT_PID_ENV
from haperf.runtime.loop import run

PARENT_POLL_INTERVAL_S = 0.25
STEP_STOP_TIMEOUT_S = 10.0

StoreFactory = Callable[[], Any]
NodeFactory = Callable[[ServiceConfig, Any], Any]
RespFactory = Callable[[Any, Any, str], Any]


def _default_store() -> Any:
    from haperf.kv.store import KVStore

    return KVStore()


def _default_node(config: ServiceConfig, store: Any) -> Any:
    from haperf.raft.node import RaftNode

    me = config.me
    return RaftNode(config.node_config(), store, metadata={"resp": me.resp, "admin": me.admin})


def _default_resp(node: Any, store: Any, listen: str) -> Any:
    from haperf.kv.server import RespServer

    return RespServer(node, store, listen)


class KVService:
    """The node process. `await serve()` runs until SIGTERM/SIGINT; or start()/stop() by hand.

    The factories exist for tests (a fake node with the real admin server); production uses
    KVStore, RaftNode and RespServer.
    """

    def __init__(
        self,
        config: ServiceConfig,
        *,
        make_store: StoreFactory | None = None,
        make_node: NodeFactory | None = None,
        make_resp: RespFactory | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self._make_store = make_store or _default_store
        self._make_node = make_node or _default_node
        self._make_resp = make_resp or _default_resp
        self._log = log or _stderr
        self.store: Any = None
        self.node: Any = None
        self.resp: Any = None
        self.admin: AdminServer | None = None
        self._stop_event: asyncio.Event | None = None
        self._started_ns = 0
        self._stopped = False
        self._node_started = False

    def _service_status(self) -> dict[str, Any]:
        me = self.config.me
        return {
            "raft": me.raft,
            "resp": me.resp,
            "admin": me.admin,
            "data_dir": self.config.data_dir,
            "uptime_s": round((time.monotonic_ns() - self._started_ns) / 1e9, 3),
        }

    def _metrics(self) -> dict[str, dict[str, float]]:
        figures: dict[str, dict[str, float]] = {}
        counters = getattr(self.resp, "counters", None)
        if isinstance(counters, dict):
            figures["resp"] = counters
        if hasattr(self.store, "__len__"):
            figures["kv"] = {"keys": len(self.store)}
        return figures

    def _on_role_change(self, role: str, leader_id: int) -> None:
        leader = f"node {leader_id}" if leader_id else "unknown"
        self._log(f"node {self.config.id}: {role}, leader {leader}")

    async def start(self) -> None:
        cfg = self.config
        me = cfg.me
        self._started_ns = time.monotonic_ns()
        self.store = self._make_store()
        self.node = self._make_node(cfg, self.store)
        if hasattr(self.node, "on_role_change"):
            self.node.on_role_change(self._on_role_change)
        await self.node.start()  # raises when it cannot start: nothing to stop then
        self._node_started = True
        try:
            self.admin = AdminServer(
                self.node,
                me.admin,
                extra_status=self._service_status,
                extra_metrics=self._metrics,
            )
            await _bind(self.admin.start(), me.admin, "admin")
            if self._make_resp is not None:
                self.resp = self._make_resp(self.node, self.store, me.resp)
                await _bind(self.resp.start(), me.resp, "resp")
        except BaseException:
            await self.stop()
            raise
        self._log(
            f"node {cfg.id}: raft {me.raft}, resp {me.resp}, admin {me.admin}, "
            f"data {cfg.data_dir or '(memory)'}, pid {os.getpid()}"
        )

    async def stop(self) -> None:
        """Graceful and idempotent: not-ready, close RESP, stop the node, close admin."""
        if self._stopped:
            return
        self._stopped = True
        if self.admin is not None:
            self.admin.set_stopping()
        steps: list[tuple[str, Any]] = []
        if self.resp is not None:
            steps.append(("resp", self.resp.close))
        if self.node is not None and self._node_started:
            steps.append(("node", self.node.stop))
        if self.admin is not None:
            steps.append(("admin", self.admin.close))
        failures: list[Exception] = []
        for name, step in steps:
            try:
                # Bounded: a step that hangs must not keep the process from exiting.
                await asyncio.wait_for(step(), STEP_STOP_TIMEOUT_S)
            except TimeoutError:
                message = f"stopping {name} did not finish within {STEP_STOP_TIMEOUT_S:g} s"
                failures.append(NodeStoppedError(message))
                self._log(f"node {self.config.id}: {message}")
            except Exception as exc:  # noqa: BLE001 - every step runs; the first failure is raised
                failures.append(exc)
                self._log(f"node {self.config.id}: stopping {name} failed: {exc!r}")
        self._log(f"node {self.config.id}: stopped")
        if failures:
            raise failures[0]

    def request_stop(self) -> None:
        """Ask serve() to stop (what SIGTERM does); safe from the loop's thread only."""
        if self._stop_event is not None:
            self._stop_event.set()

    async def serve(self) -> int:
        """Start, run until SIGTERM/SIGINT (or the parent's exit), stop; exit status 0."""
        loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        watch: asyncio.Task[None] | None = None
        try:
            await self.start()
            parent = os.environ.get(PARENT_PID_ENV)
            if parent and parent.isdigit():
                watch = asyncio.create_task(self._watch_parent(int(parent)))
            await self._stop_event.wait()
        finally:
            if watch is not None:
                watch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch
            await self.stop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        return 0

    def _on_signal(self, sig: int) -> None:
        self._log(f"node {self.config.id}: {signal.Signals(sig).name}, stopping")
        self.request_stop()

    async def _watch_parent(self, parent_pid: int) -> None:
        while os.getppid() == parent_pid:
            await asyncio.sleep(PARENT_POLL_INTERVAL_S)
        self._log(f"node {self.config.id}: parent {parent_pid} exited, stopping")
        self.request_stop()


async def _bind(start: Any, address: str, what: str) -> None:
    try:
        await start
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on the {what} address {address}: {exc.strerror or exc}"
        ) from None


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_service(config: ServiceConfig, **kwargs: Any) -> int:
    """Run one KV service on a new event loop (uvloop when installed) until it is stopped."""
    return run(KVService(config, **kwargs).serve())


def main(argv: list[str] | None = None) -> int:
    """`python -m haperf.kv.service --config FILE`: what `python -m haperf node --config FILE`
    does, without loading the other CLI commands (a lighter, faster-starting child for
    LocalCluster). Exit 2 on bad configuration, 1 on another operating error."""
    import argparse

    from haperf.errors import HaperfError
    from haperf.kv.config import load_config

    parser = argparse.ArgumentParser(prog="python -m haperf.kv.service")
    parser.add_argument("--config", required=True, metavar="FILE", help="JSON node file")
    args = parser.parse_args(argv)
    try:
        return run_service(load_config(args.config))
    except ConfigError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except HaperfError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
