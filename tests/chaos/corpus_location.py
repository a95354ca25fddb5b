"""Where the third-party lincheck corpus is, for the tests that check it.

Owns the lookup order: env HAPERF_LINCHECK_CORPUS, then `<repo>/../shared/lincheck-corpus`, then
`/work/shared/lincheck-corpus`. Without a corpus the corpus tests skip with the reason, unless
HAPERF_REQUIRE_CORPUS=1 (CI sets it), in which case they fail.
"""

import os
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

CANDIDATES = (
    os.environ.get("HAPERF_LINCHECK_CORPUS", ""),
    str(REPO_ROOT.parent / "shared" / "lincheck-corpus"),
    "/work/shared/lincheck-corpus",
)


def find_corpus() -> Path | None:
    for candidate in CANDIDATES:
        if candidate and (Path(candidate) / "manifest.json").is_file():
            return Path(candidate)
    return None


def corpus_or_skip() -> Path:
    """The corpus directory; skips (or fails under HAPERF_REQUIRE_CORPUS=1) when it is absent."""
    found = find_corpus()
    if found is not None:
        return found
    looked = ", ".join(c for c in CANDIDATES if c)
    reason = (
        f"lincheck corpus not found (looked in: {looked}); set HAPERF_LINCHECK_CORPUS to the "
        "directory holding its manifest.json"
    )
    if os.environ.get("HAPERF_REQUIRE_CORPUS") == "1":
        pytest.fail(reason + " (HAPERF_REQUIRE_CORPUS=1)")
    pytest.skip(reason)
