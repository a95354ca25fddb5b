

def test_every_group_named_in_a_family_has_benchmarks() -> None:
    """A family (e.g. --filter resilience) names only groups that exist."""
    from haperf.bench.registry import GROUP_FAMILIES, all_benchmarks
    from haperf.bench.suites import load

    load()
    groups = {b.group for b in all_benchmarks()}
    for family, members in GROUP_FAMILIES.items():
        assert set(members) <= groups, (family, sorted(set(members) - groups))
