"""The checker against the third-party corpus: every verdict in its manifest must be reproduced.

Owns the corpus-level tests: one test per manifest entry (through check_corpus, so the sha256
check and the manifest's model parameters are exercised), the etcd set under both readings of a
failed cas, the per-set summary, and the CLI entry points' exit codes on a matching and on a
tampered manifest. The corpus is found by tests/chaos/corpus_location.py.
"""

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from haperf.chaos.corpus import check_corpus, cli_check, cli_check_corpus, load, read_manifest
from haperf.errors import HistoryFormatError
from tests.chaos.corpus_location import corpus_or_skip, find_corpus

CORPUS = find_corpus()
ENTRIES: list[dict[str, Any]] = read_manifest(CORPUS) if CORPUS is not None else []


def test_corpus_is_available() -> None:
    corpus = corpus_or_skip()
    assert len(read_manifest(corpus)) == 142


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["path"] for e in ENTRIES])
def test_verdict_matches_manifest(entry: dict[str, Any]) -> None:
    corpus = corpus_or_skip()
    report = check_corpus(corpus, select=lambda rel: rel == entry["path"])
    assert len(report.files) == 1
    verdict = report.files[0]
    assert verdict.got == entry["expected"], verdict.explanation
    if verdict.got == "not-linearizable":
        assert "not linearizable" in verdict.explanation


def test_etcd_verdicts_are_the_same_under_the_knossos_reading_of_a_failed_cas() -> None:
    corpus = corpus_or_skip()
    report = check_corpus(corpus, select=lambda rel: "jepsen" in rel, failed_cas="absent")
    assert len(report.files) == 102
    assert not report.mismatches, [m.path for m in report.mismatches]


def test_summary_table_counts_every_set() -> None:
    corpus = corpus_or_skip()
    report = check_corpus(corpus, select=lambda rel: "knossos/cas-register/bad" in rel)
    sets = report.by_set()
    assert sets["knossos/cas-register/bad"]["not-linearizable"] == 7
    assert "| `knossos/cas-register/bad/` | 7 | 7 | 0 | 7 | 0 |" in report.table()


def test_cli_check_corpus_exit_codes(tmp_path: Path) -> None:
    corpus = corpus_or_skip()
    out = io.StringIO()
    assert cli_check_corpus(corpus, out, select="etcd_00") == 0
    assert "10 of 10 verdicts match" in out.getvalue()
    # A copy whose manifest claims the opposite verdict for one file must fail, naming it.
    manifest = json.loads((corpus / "manifest.json").read_text())
    entry = next(e for e in manifest["files"] if e["path"].endswith("etcd_000.log"))
    entry["expected"] = "linearizable"
    manifest["files"] = [entry]
    (tmp_path / "porcupine" / "jepsen").mkdir(parents=True)
    shutil.copy(corpus / entry["path"], tmp_path / entry["path"])
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    out = io.StringIO()
    assert cli_check_corpus(tmp_path, out) == 1
    assert "MISMATCH porcupine/jepsen/etcd_000.log" in out.getvalue()
    # And a file that is not the one the verdict is for is refused.
    (tmp_path / entry["path"]).write_text("INFO  jepsen.util - 0\t:invoke\t:read\tnil\n")
    with pytest.raises(HistoryFormatError, match="sha256"):
        check_corpus(tmp_path)


def test_cli_check_one_file() -> None:
    corpus = corpus_or_skip()
    out = io.StringIO()
    bad = corpus / "knossos/cas-register/bad/rethink-fail-minimal.edn"
    assert cli_check(bad, None, None, out) == 1
    text = out.getvalue()
    assert "not-linearizable" in text
    assert "read -> 3" in text  # the operation that could not be linearized
    out = io.StringIO()
    assert cli_check(corpus / "porcupine/kv/c10-ok.txt", None, 30.0, out) == 0
    assert "linearizable (kv-get-put-append" in out.getvalue()


def test_formats_are_sniffed() -> None:
    corpus = corpus_or_skip()
    assert load(corpus / "porcupine/jepsen/etcd_001.log")[0] == "etcd-jepsen-log"
    assert load(corpus / "porcupine/kv/c01-ok.txt")[0] == "porcupine-kv-edn"
    assert load(corpus / "knossos/multi-register/good/multi-register.edn")[0] == "knossos-edn"


def test_missing_corpus_skips_or_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.chaos import corpus_location

    monkeypatch.setattr(corpus_location, "find_corpus", lambda: None)
    monkeypatch.delenv("HAPERF_REQUIRE_CORPUS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="HAPERF_LINCHECK_CORPUS"):
        corpus_location.corpus_or_skip()
    monkeypatch.setenv("HAPERF_REQUIRE_CORPUS", "1")
    with pytest.raises(pytest.fail.Exception, match="HAPERF_REQUIRE_CORPUS=1"):
        corpus_location.corpus_or_skip()


def test_environment_variable_points_at_the_corpus(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from haperf.chaos.corpus import find_corpus as lookup

    (tmp_path / "manifest.json").write_text('{"files": []}')
    monkeypatch.setenv("HAPERF_LINCHECK_CORPUS", str(tmp_path))
    assert lookup() == tmp_path
