"""The Prometheus text exporter: format 0.0.4 (HELP/TYPE once per family, before its samples),
escaping, counter naming, pipelines, any Policy-shaped object, and that a scrape is read-only.
"""

import math
import re

import pytest

from haperf.errors import ConfigError
from haperf.resilience import (
    CONTENT_TYPE,
    CircuitBreaker,
    Pipeline,
    PrometheusExporter,
    Retry,
    RetryBudget,
)
from haperf.resilience.metrics import escape_help, escape_label_value, format_value
from tests.resilience.virtual_time_breaker import FakeClock

# One line of the text format: a comment, or `name{labels} value`.
_LABEL_PAIR = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*",?'
SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\{(?P<labels>(?:" + _LABEL_PAIR + r")*)\} (?P<value>\S+)$"
)
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\\\|\\"|\\n)*)"')


def unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}[m.group(1)], value)


def parse(text: str) -> tuple[dict[str, tuple[str, str]], list[tuple[str, dict[str, str], str]]]:
    """Families (name -> (help, type)) and samples, checking the structural rules as it goes."""
    families: dict[str, tuple[str, str]] = {}
    samples: list[tuple[str, dict[str, str], str]] = []
    helps: dict[str, str] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert name not in helps, f"second HELP for {name}"
            helps[name] = help_text
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name in helps and name not in families, f"TYPE out of place for {name}"
            assert kind in ("counter", "gauge")
            families[name] = (helps[name], kind)
        else:
            match = SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            name = match.group("name")
            assert name in families, f"sample before its TYPE: {line!r}"
            assert samples == [] or samples[-1][0] == name or name not in {s[0] for s in samples}, (
                f"family {name} is not contiguous"
            )
            labels = {k: unescape(v) for k, v in LABEL.findall(match.group("labels"))}
            samples.append((name, labels, match.group("value")))
    return families, samples


def test_renders_every_policy_with_help_type_and_total_suffix() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("db", clock=clock, window_size=2, calls_min=2)
    budget = RetryBudget(clock=clock)
    retry = Retry("db", clock=clock, budget=budget, initial_delay_ns=0, sleep_ns=clock.sleep_ns)

    @breaker
    @retry
    def call() -> int:
        return 1

    for _ in range(3):
        call()
    exporter = PrometheusExporter([breaker, retry, budget])
    families, samples = parse(exporter.render())
    assert families["haperf_resilience_calls_total"][1] == "counter"
    assert families["haperf_resilience_state"][1] == "gauge"
    assert families["haperf_resilience_deposits_total"][1] == "counter"  # counter_keys
    assert families["haperf_resilience_tokens"][1] == "gauge"
    values = {(n, lb["kind"], lb["policy"]): v for n, lb, v in samples}
    assert values[("haperf_resilience_calls_total", "circuit_breaker", "db")] == "3"
    assert values[("haperf_resilience_calls_total", "retry", "db")] == "3"
    assert values[("haperf_resilience_state", "circuit_breaker", "db")] == "0"
    assert values[("haperf_resilience_retry_budget_tokens", "retry", "db")] == "10.0"
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


def test_label_values_and_help_are_escaped() -> None:
    nasty = 'we"ird\\name\nline'
    breaker = CircuitBreaker(nasty, clock=FakeClock())
    text = PrometheusExporter([breaker], const_labels={"zone": 'a"b'}).render()
    assert "\nline" not in text.replace("\\n", "")
    _, samples = parse(text)
    assert {lb["policy"] for _, lb, _ in samples} == {nasty}
    assert {lb["zone"] for _, lb, _ in samples} == {'a"b'}
    assert escape_label_value('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    assert escape_help("x\\y\nz") == "x\\\\y\\nz"


def test_values_format() -> None:
    assert format_value(3) == "3"
    assert format_value(2.5) == "2.5"
    assert format_value(math.nan) == "NaN"
    assert format_value(math.inf) == "+Inf"
    assert format_value(-math.inf) == "-Inf"
    assert format_value(True) == "1"


def test_pipeline_registers_its_policies_and_unknown_policies_work() -> None:
    class Custom:
        name = "custom"

        def __call__(self, fn):  # type: ignore[no-untyped-def]
            return fn

        def metrics(self) -> dict[str, int | float]:
            return {"calls": 7, "queue_depth": 2}

    clock = FakeClock()
    pipeline = Pipeline(breaker=CircuitBreaker("b", clock=clock), bulkhead=Custom())
    families, samples = parse(PrometheusExporter([pipeline]).render())
    kinds = {lb["kind"] for _, lb, _ in samples}
    assert kinds == {"circuit_breaker", "custom"}
    assert families["haperf_resilience_queue_depth"] == (
        "Resilience policy metric queue_depth.",
        "gauge",
    )


def test_scrape_does_not_change_counters() -> None:
    breaker = CircuitBreaker("b", clock=FakeClock())
    exporter = PrometheusExporter([breaker])
    first = exporter.render()
    assert exporter.render() == first
    assert breaker.metrics()["calls"] == 0


def test_exporter_configuration_errors() -> None:
    clock = FakeClock()
    with pytest.raises(ConfigError, match="namespace"):
        PrometheusExporter(namespace="bad-name")
    with pytest.raises(ConfigError, match="label"):
        PrometheusExporter(const_labels={"policy": "x"})
    with pytest.raises(ConfigError, match="already registered"):
        PrometheusExporter([CircuitBreaker("x", clock=clock), CircuitBreaker("x", clock=clock)])
    with pytest.raises(ConfigError, match="Policy contract"):
        PrometheusExporter([object()])  # type: ignore[list-item]

    class BadKey:
        name = "bad"

        def __call__(self, fn):  # type: ignore[no-untyped-def]
            return fn

        def metrics(self) -> dict[str, int | float]:
            return {"not-snake": 1}

    with pytest.raises(ConfigError, match="snake_case"):
        PrometheusExporter([BadKey()]).render()


def test_empty_exporter_renders_nothing() -> None:
    assert PrometheusExporter().render() == ""
