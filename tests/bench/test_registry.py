"""The benchmark registry's static tables agree with what the suites register."""

from haperf.bench.registry import GROUP_FAMILIES, all_benchmarks
from haperf.bench.suites import load


def test_every_group_named_in_a_family_has_benchmarks() -> None:
    """A family (e.g. --filter resilience) names only groups that exist."""
    load()
    groups = {b.group for b in all_benchmarks()}
    for family, members in GROUP_FAMILIES.items():
        assert set(members) <= groups, (family, sorted(set(members) - groups))
