"""Prometheus text exporter for resilience policies: pull-based, read on scrape.

Owns the rendering of any Policy's metrics() as the Prometheus text exposition format 0.0.4.
Policies count in C on their hot paths and never call a metrics library; the exporter reads the
counters when scraped, so a scrape costs O(policies) and a call costs nothing extra.

Format (https://prometheus.io/docs/instrumenting/exposition_formats/): per metric family one
`# HELP name text` line (backslash and newline escaped), one `# TYPE name counter|gauge` line,
then one sample per policy: `name{policy="...",kind="..."} value`, label values escaped
(backslash, double quote, newline). Counter families are named `<namespace>_<key>_total`.

Invariants: a family's HELP and TYPE appear exactly once, before its samples; families and
samples come out in a stable order (first registration order); a (kind, policy name) pair is
registered once; rendering never changes a policy's state.
"""

import math
import re
from collections.abc import Iterable, Mapping

from haperf.errors import ConfigError
from haperf.resilience.policy import COUNTER_KEYS, Policy

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Content-Type header of a scrape response in this format."""

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

HELP: dict[str, str] = {
    "calls": "Calls the policy let through.",
    "successes": "Calls that succeeded.",
    "failures": "Calls that failed (for a retry: failed after its last attempt).",
    "ignored": "Calls that neither succeeded nor failed (ignored exceptions, cancellation).",
    "rejections": "Calls the policy refused without running them.",
    "slow_calls": "Calls that lasted at least the slow-call duration.",
    "transitions": "State transitions.",
    "state": (
        "Current state: 0 closed, 1 open, 2 half-open, 3 disabled, 4 forced open, 5 metrics only."
    ),
    "failure_rate": "Failure rate of the current window in percent (-1 below the minimum).",
    "slow_call_rate": "Slow-call rate of the current window in percent (-1 below the minimum).",
    "buffered_calls": "Calls in the current sliding window.",
    "buffered_failures": "Failed calls in the current sliding window.",
    "retries": "Retry attempts made.",
    "retry_budget_rejections": "Retries refused because the retry budget was spent.",
    "exhausted": "Calls that gave up after their last allowed attempt.",
    "deadline_exceeded": "Calls that gave up because the next retry would pass the deadline.",
    "retry_budget_tokens": "Tokens left in the retry budget.",
}


def escape_label_value(value: str) -> str:
    """Label value escaping of the text format: backslash, double quote, newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """HELP text escaping of the text format: backslash and newline."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _kind_of(policy: Policy) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(policy).__name__).lower()


class PrometheusExporter:
    """Renders the metrics of registered policies; a Pipeline registers each of its policies.

    exporter = PrometheusExporter([breaker, retry, pipeline])
    body = exporter.render()     # serve with Content-Type CONTENT_TYPE
    """

    def __init__(
        self,
        policies: Iterable[Policy] = (),
        *,
        namespace: str = "haperf_resilience",
        const_labels: Mapping[str, str] | None = None,
    ) -> None:
        if not _NAME.match(namespace):
            raise ConfigError(
                f"namespace must match {_NAME.pattern} (a Prometheus metric name), "
                f"got {namespace!r}"
            )
        labels = dict(const_labels or {})
        for key, value in labels.items():
            if not _LABEL_NAME.match(key) or key.startswith("__") or key in ("policy", "kind"):
                raise ConfigError(
                    f"const label name {key!r} is not a valid, free Prometheus label name"
                )
            if not isinstance(value, str):
                raise ConfigError(f"const label {key!r} must have a str value, got {value!r}")
        self.namespace = namespace
        self._const = "".join(f',{k}="{escape_label_value(v)}"' for k, v in labels.items())
        self._policies: list[tuple[str, Policy]] = []
        self._keys: set[tuple[str, str]] = set()
        for policy in policies:
            self.register(policy)

    def register(self, policy: Policy) -> None:
        """Add a policy (or every policy of a pipeline-like object with `.policies`)."""
        inner = getattr(policy, "policies", None)
        if inner is not None:
            for p in inner:
                self.register(p)
            return
        if not isinstance(policy, Policy):
            raise ConfigError(f"{policy!r} does not implement the Policy contract")
        kind = _kind_of(policy)
        if (kind, policy.name) in self._keys:
            raise ConfigError(
                f"a {kind} named {policy.name!r} is already registered; give policies "
                "distinct names so their series do not collide"
            )
        self._keys.add((kind, policy.name))
        self._policies.append((kind, policy))

    def render(self) -> str:
        """The exposition text of every registered policy's current metrics."""
        families: dict[str, tuple[str, str, list[str]]] = {}
        for kind, policy in self._policies:
            counters = COUNTER_KEYS | frozenset(getattr(policy, "counter_keys", ()))
            labels = f'{{policy="{escape_label_value(policy.name)}",kind="{kind}"{self._const}}}'
            for key, value in policy.metrics().items():
                if not _LABEL_NAME.match(key):
                    raise ConfigError(
                        f"{kind} {policy.name!r} reports a metric key {key!r} that is not "
                        "snake_case ([a-zA-Z_][a-zA-Z0-9_]*)"
                    )
                is_counter = key in counters
                name = f"{self.namespace}_{key}_total" if is_counter else f"{self.namespace}_{key}"
                family = families.get(name)
                if family is None:
                    help_text = HELP.get(key, f"Resilience policy metric {key}.")
                    family = (help_text, "counter" if is_counter else "gauge", [])
                    families[name] = family
                elif family[1] != ("counter" if is_counter else "gauge"):
                    raise ConfigError(
                        f"metric {name} is a {family[1]} for one policy and not for {policy.name!r}"
                    )
                family[2].append(f"{name}{labels} {format_value(value)}")
        lines: list[str] = []
        for name, (help_text, kind_, samples) in families.items():
            lines.append(f"# HELP {name} {escape_help(help_text)}")
            lines.append(f"# TYPE {name} {kind_}")
            lines.extend(samples)
        return "\n".join(lines) + "\n" if lines else ""
