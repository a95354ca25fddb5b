"""Where the third-party lincheck corpus is, for the tests that check it.

Owns the skip-or-fail rule: the lookup order is haperf.chaos.corpus.corpus_candidates()
(env HAPERF_LINCHECK_CORPUS, then `<repo>/../shared/lincheck-corpus`, then
`/work/shared/lincheck-corpus`). Without a corpus the corpus tests skip with the reason, unless
HAPERF_REQUIRE_CORPUS=1 (CI sets it), in which case they fail.
"""

import os
from pathlib import Path

import pytest

from haperf.chaos.corpus import corpus_candidates, find_corpus

__all__ = ["corpus_or_skip", "find_corpus"]


def corpus_or_skip() -> Path:
    """The corpus directory; skips (or fails under HAPERF_REQUIRE_CORPUS=1) when it is absent."""
    found = find_corpus()
    if found is not None:
        return found
    looked = ", ".join(str(c) for c in corpus_candidates())
    reason = (
        f"lincheck corpus not found (looked in: {looked}); set HAPERF_LINCHECK_CORPUS to the "
        "directory holding its manifest.json"
    )
    if os.environ.get("HAPERF_REQUIRE_CORPUS") == "1":
        pytest.fail(reason + " (HAPERF_REQUIRE_CORPUS=1)")
    pytest.skip(reason)
