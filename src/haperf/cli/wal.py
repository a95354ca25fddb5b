"""`python -m haperf wal inspect|verify|repair DIR`: look at, check and repair a WAL directory.

Owns the wal command. inspect and verify only read (they take no lock, so they can look at a
live log; a record being written at that moment may show as a torn tail). repair takes the
directory lock, changes nothing unless --yes is given, truncates the log at its first
corruption only, and keeps a copy of every byte it removes in DIR/repair-<time>-<pid>/.

Exit status: 0 the log is sound (a torn tail, which opening truncates, counts as sound); 1
corruption found (or, for repair without --yes, there is something to repair); 2 usage errors
(no such directory, not a WAL).
"""

import argparse
import os
import sys
from typing import Any

from haperf._native import wal as native
from haperf.errors import ConfigError, WALLockedError
from haperf.wal.files import OsFileOps
from haperf.wal.format import META_NAME
from haperf.wal.log import _lock_directory
from haperf.wal.recovery import (
    DirScan,
    apply_open,
    repair,
    save_torn_tail,
    scan_directory,
)

EXIT_OK = 0
EXIT_CORRUPT = 1

_STATUS = {
    native.SCAN_CLEAN: "clean",
    native.SCAN_TORN: "torn tail",
    native.SCAN_CORRUPT: "CORRUPT",
    native.SCAN_LIMIT: "pending truncation",
}


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "wal",
        help="inspect, verify or repair a write-ahead log directory",
        description="Inspect, verify (every CRC) or repair a haperf WAL directory.",
        epilog="Exit status: 0 sound, 1 corruption found, 2 usage error.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (
        ("inspect", "show the meta file, segments, index ranges and any damage"),
        ("verify", "verify every frame; exit 1 on corruption"),
        ("repair", "truncate at the first corruption (only with --yes), keeping a copy"),
    ):
        sub = actions.add_parser(name, help=text, description=text)
        sub.add_argument("directory", metavar="DIR", help="the WAL directory")
        if name == "repair":
            sub.add_argument(
                "--yes", action="store_true", help="really change the files (default: dry run)"
            )
        sub.set_defaults(handler=run_command)


def _scan(directory: str) -> DirScan:
    if not os.path.isdir(directory):
        raise ConfigError(f"{directory} is not a directory")
    if not os.path.exists(os.path.join(directory, META_NAME)) and not any(
        name.endswith(".wal") for name in os.listdir(directory)
    ):
        raise ConfigError(f"{directory} holds no haperf WAL (no {META_NAME}, no segments)")
    return scan_directory(directory, native.RECORD_BYTES_LIMIT)


def _describe(scan: DirScan, verbose: bool) -> list[str]:
    lines = []
    meta = scan.meta
    if meta is not None:
        lines.append(
            f"log id {meta.log_id:016x}: first index {meta.first_index}, last segment "
            f"{meta.last_segment}"
            + ("" if meta.truncate_limit is None else f", truncation after {meta.truncate_limit}")
        )
    if verbose:
        for seg in scan.segments:
            span = f"{seg.first}..{seg.last}" if seg.count else "empty"
            lines.append(
                f"  {os.path.basename(seg.path)}  records {span} ({seg.count}), "
                f"{seg.end} of {seg.file_bytes} bytes used, {_STATUS.get(seg.status, '?')}"
            )
        for path, why in scan.stale:
            lines.append(f"  leftover {os.path.basename(path)}: {why} (removed on open)")
    if scan.corruption is None:
        lines.append(f"records {scan.first_index}..{scan.last_index}")
    if scan.torn is not None:
        lines.append(
            f"torn tail in {scan.torn.path} at offset {scan.torn.offset} (record index "
            f"{scan.torn.index}: {scan.torn.what}); opening the WAL truncates it"
        )
    if scan.corruption is not None:
        lines.append(scan.corruption.message())
    return lines


def run_command(args: argparse.Namespace) -> int:
    directory: str = args.directory
    if args.action == "repair":
        return _repair(directory, args.yes)
    scan = _scan(directory)
    try:
        for line in _describe(scan, verbose=args.action == "inspect"):
            print(line)
        if scan.corruption is not None:
            return EXIT_CORRUPT
        print("ok: every frame verified")
        return EXIT_OK
    finally:
        scan.close()


def _repair(directory: str, yes: bool) -> int:
    _scan(directory).close()  # usage errors first
    try:
        lock_fd = _lock_directory(directory)
    except WALLockedError as exc:
        print(f"cannot repair: {exc}", file=sys.stderr)
        return EXIT_CORRUPT
    try:
        scan = _scan(directory)
        try:
            for line in _describe(scan, verbose=False):
                print(line)
            if scan.corruption is None and scan.torn is None and not scan.stale:
                print("nothing to repair")
                return EXIT_OK
            if not yes:
                print("dry run: nothing changed; run again with --yes to truncate the log here")
                return EXIT_CORRUPT
            backup = repair(scan, OsFileOps())
        finally:
            scan.close()
        # Then what opening does (torn tail, leftovers, pending truncation), keeping a copy
        # of the torn bytes too.
        again = scan_directory(directory, native.RECORD_BYTES_LIMIT)
        try:
            backup = save_torn_tail(again, backup)
            apply_open(again, OsFileOps())
            if backup is not None:
                print(f"truncated; removed bytes are kept in {backup}")
            print(f"repaired: records {again.first_index}..{again.last_index}")
        finally:
            again.close()
        return EXIT_OK
    finally:
        os.close(lock_fd)
