"""Third-party history formats: the EDN reader and the etcd-log, porcupine-kv and Knossos parsers.

Owns the parser tests for each format's quirks (tabs or runs of spaces in Jepsen logs, maps
without commas, comments, keys in any order, maps over several lines, bare map sequences,
nemesis records) and their errors: every bad input raises HistoryFormatError naming the source
and the line.
"""

from pathlib import Path

import pytest

from haperf.chaos.corpus import load, parse_edn_history, parse_etcd_log, sniff_format
from haperf.chaos.edn import Keyword, read_edn
from haperf.chaos.lincheck import check
from haperf.errors import HistoryFormatError


def test_edn_reader_forms() -> None:
    text = """
    ; a comment, then a map without commas spanning lines
    {:a 1  :b "x\\"y\\n" :c nil, :d [1 -2 (3)] :e true}  ; trailing comment
    [:k "s,t"] -7 42N
    """
    forms = read_edn(text, "<t>")
    first = forms[0]
    assert first == {
        Keyword("a"): 1,
        Keyword("b"): 'x"y\n',
        Keyword("c"): None,
        Keyword("d"): (1, -2, (3,)),
        Keyword("e"): True,
    }
    assert getattr(first, "line") == 3  # noqa: B009 - EdnMap's line, read like the parser does
    assert forms[1:] == [(Keyword("k"), "s,t"), -7, 42]
    assert Keyword("k") != "k"
    assert repr(Keyword("k")) == ":k"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{:a 1", r"<t>:1: '\{' is never closed"),
        ("[1 2}", r"<t>:1: '\}' closes the '\['"),
        ("]", r"<t>:1: '\]' closes nothing"),
        ('\n\n"abc', "<t>:3: a string that never ends"),
        ("{:a}", "<t>:1: a map needs key/value pairs"),
        ("{:a 1 :a 2}", "<t>:1: map key :a appears twice"),
        ("\n1.5", "<t>:2: unsupported EDN form '1.5'"),
        ("#{1 2}", "unsupported EDN form"),
        ('"\\q"', r"unknown string escape \\q"),
        ("[" * 100, "nesting deeper than"),
    ],
)
def test_edn_reader_errors(text: str, problem: str) -> None:
    with pytest.raises(HistoryFormatError, match=problem):
        read_edn(text, "<t>")


def test_etcd_log_tabs_and_spaces_and_values() -> None:
    text = (
        "INFO  jepsen.util - 2\t:invoke\t:cas\t[3 0]\n"
        "INFO  jepsen.util - 2    :ok    :cas   [3 0]\n"
        "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n"
        "INFO  jepsen.util - 1\t:invoke :write\t4\n"
        "INFO  jepsen.util - 0\t:ok\t:read\tnil\n"
        "\n"
        "INFO  jepsen.util - 1\t:info\t:write\t:timed-out\n"
        "INFO  jepsen.util - 6\t:invoke\t:read\tnil\n"
        "INFO  jepsen.util - 6\t:fail\t:read\t:timed-out\n"
    )
    ops = parse_etcd_log(text, "<etcd>")
    assert [(o.process, o.f, o.value, o.output, o.outcome, o.ret) for o in ops] == [
        (2, "cas", (3, 0), None, "ok", 1),
        (0, "read", None, None, "ok", 4),
        (1, "write", 4, None, "info", None),
        (6, "read", None, None, "fail", 7),
    ]
    assert ops[2].line == 4
    # cas 3 -> 0 succeeded on an absent register: not linearizable under the etcd model.
    assert check(ops, "etcd-cas-register").linearizable is False


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("INFO jepsen.util - 1 :invoke :read nil", "not an 'INFO  jepsen.util"),
        ("INFO  jepsen.util - 1\t:invoke\t:incr\t1", "unknown operation :incr"),
        ("INFO  jepsen.util - 1\t:start\t:read\tnil", "unknown type :start"),
        ("INFO  jepsen.util - 1\t:invoke\t:write\t1.5", "value '1.5' is none of"),
        ("INFO  jepsen.util - 1\t:invoke\t:cas\t3", r"a cas value is \[expected new\]"),
        ("INFO  jepsen.util - 1\t:invoke\t:write\tnil", "a write value is an integer"),
        ("INFO  jepsen.util - 1\t:ok\t:write\t1", "has no invocation"),
    ],
)
def test_etcd_log_errors_name_the_line(line: str, problem: str) -> None:
    text = "INFO  jepsen.util - 9\t:invoke\t:read\tnil\n" + line + "\n"
    with pytest.raises(HistoryFormatError, match=f"<etcd>:2: .*{problem}"):
        parse_etcd_log(text, "<etcd>")


def test_knossos_edn_quirks_and_nemesis_records() -> None:
    text = """; a history as a list, maps in any key order, some without commas
    ({:type :invoke, :f :write, :value 0, :process 0}
     {:process :nemesis, :type :info, :f :start, :value nil}
     {:type :ok  :f :write  :value 0  :process 0 :time 12}
     {:process 1,
      :type :invoke, :f :read, :value nil}
     {:process 2, :type :invoke, :f :cas, :value [0 5]}
     {:process 2, :type :fail, :f :cas, :value [0 5], :error [:temporarily-unavailable nil]}
     {:process 1, :type :ok, :f :read, :value 0}
     {:process 3, :type :invoke, :f :write, :value 1}
     {:process 3, :type :info, :f :write, :value 1, :error "timeout"})
    """
    ops = parse_edn_history(text, "knossos-edn", "<k>")
    assert [(o.process, o.f, o.outcome, o.output, o.line) for o in ops] == [
        (0, "write", "ok", None, 2),
        (1, "read", "ok", 0, 5),
        (2, "cas", "fail", None, 7),
        (3, "write", "info", None, 10),
    ]
    assert check(ops, "knossos-cas-register").linearizable is True
    # A bare sequence of maps (no enclosing vector) reads the same.
    bare = text.replace("(", "", 1).rsplit(")", 1)[0]
    assert parse_edn_history(bare, "knossos-edn", "<k>") == ops


def test_knossos_multi_register_txn() -> None:
    text = """[{:type :invoke, :f :txn, :value [[:write :x 1] [:write :y 1]], :process 0}
    {:type :ok, :f :txn, :value [[:write :x 1] [:write :y 1]], :process 0}
    {:type :invoke, :f :txn, :value [[:read :x nil] [:read :y nil]], :process 1}
    {:type :ok, :f :txn, :value [[:read :x 1] [:read :y nil]], :process 1}]"""
    ops = parse_edn_history(text, "knossos-edn", "<m>")
    assert ops[1].output == (("read", "x", 1), ("read", "y", None))
    assert check(ops, "knossos-multi-register").linearizable is True
    stale = text.replace("[:read :x 1]", "[:read :x 0]")
    assert check(parse_edn_history(stale, "knossos-edn"), "multi-register").linearizable is False


def test_porcupine_kv_lines() -> None:
    text = (
        '{:process 0, :type :invoke, :f :append, :key "9", :value "x 0 5 y"}\n'
        '{:process 1, :type :invoke, :f :get, :key "9", :value nil}\n'
        '{:process 0, :type :ok, :f :append, :key "9", :value "x 0 5 y"}\n'
        '{:process 1, :type :ok, :f :get, :key "9", :value ""}\n'
        '{:process 1, :type :invoke, :f :put, :key "3", :value "a"}\n'
        '{:process 1, :type :ok, :f :put, :key "3", :value "a"}\n'
    )
    ops = parse_edn_history(text, "porcupine-kv-edn", "<kv>")
    assert [(o.f, o.key, o.value, o.output) for o in ops] == [
        ("append", "9", "x 0 5 y", None),
        ("get", "9", None, ""),
        ("put", "3", "a", None),
    ]
    assert check(ops, "kv").linearizable is True
    late = text.replace(':value ""}', ':value "x 0 5 yx 0 5 y"}')
    assert check(parse_edn_history(late, "porcupine-kv-edn"), "kv").key == "9"


@pytest.mark.parametrize(
    ("fmt", "text", "problem"),
    [
        ("knossos-edn", "[{:process 1 :type :invoke :f :incr :value 1}]", ":f :incr is not"),
        ("knossos-edn", "[{:process 1 :type :invoke :f :read}\n 7]", "expected operation maps"),
        ("knossos-edn", "[{:process 1, :f :read}]", "the map has no :type"),
        ("knossos-edn", '[{:process "a" :type :invoke :f :read}]', ":process must be an integer"),
        ("knossos-edn", "[{:process 1 :type :invoke :f :cas :value 3}]", "a cas value is"),
        ("knossos-edn", '[{:process 1 :type "ok" :f :read}]', ":type must be a keyword"),
        ("knossos-edn", "[{:process 1 :type :invoke :f :txn :value [[:incr :x 1]]}]", "micro-op"),
        ("porcupine-kv-edn", "{:process 1 :type :invoke :f :get :key 3 :value nil}", ":key must"),
        ("porcupine-kv-edn", '{:process 1 :type :invoke :f :put :key "3" :value 3}', ":value must"),
    ],
)
def test_edn_history_errors(fmt: str, text: str, problem: str) -> None:
    with pytest.raises(HistoryFormatError, match=problem):
        parse_edn_history(text, fmt, "<e>")


def test_sniffing_and_explicit_formats(tmp_path: Path) -> None:
    jsonl = tmp_path / "h.jsonl"
    jsonl.write_text(
        '{"process": 0, "type": "invoke", "f": "read", "key": "k", "value": null, "time": 0}\n'
    )
    assert load(jsonl)[0] == "haperf-jsonl"
    log = tmp_path / "h.log"
    assert sniff_format(log, "INFO  jepsen.util - 0\t:invoke\t:read\tnil") == "etcd-jepsen-log"
    assert sniff_format(log, "; comment\n[{:process 0}]") == "knossos-edn"
    assert sniff_format(log, '{"process": 1}') == "haperf-jsonl"
    with pytest.raises(HistoryFormatError, match="cannot tell the history format"):
        sniff_format(log, "hello")
    (tmp_path / "none.jsonl").write_text("")  # a run that recorded nothing
    assert load(tmp_path / "none.jsonl") == ("haperf-jsonl", [])
    (tmp_path / "empty").write_text("")
    with pytest.raises(HistoryFormatError, match="cannot tell"):
        load(tmp_path / "empty")
    with pytest.raises(HistoryFormatError, match="not UTF-8"):
        (tmp_path / "bin").write_bytes(b"\xff\xfe")
        load(tmp_path / "bin", "knossos-edn")
