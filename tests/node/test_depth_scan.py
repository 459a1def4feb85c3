"""The JSON depth scan that runs before ``json.loads``: it must agree with the true nesting
depth of every document, whatever its strings hold (brackets, escaped quotes, backslashes),
and refuse exactly those deeper than the limit."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from node.rpc import MAX_DEPTH, too_deep

tricky_text = st.text(alphabet='[]{}"\\ab\u00e9\n', max_size=12)
documents = st.recursive(
    st.none() | st.booleans() | st.integers() | tricky_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(tricky_text, children, max_size=3),
    max_leaves=40,
)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300)
@given(documents, st.integers(1, 6))
def test_the_scan_measures_the_true_depth(document: Any, limit: int) -> None:
    body = json.dumps(document, ensure_ascii=False).encode()
    assert too_deep(body, limit) == (_depth(document) > limit)


def test_nesting_at_and_past_the_limit() -> None:
    at_limit = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert not too_deep(at_limit)
    assert too_deep(b"[" + at_limit + b"]")
    hidden = json.dumps(["[" * 100, {"k": "{" * 100 + '\\"'}]).encode()  # brackets inside strings do not count
    assert not too_deep(hidden)
