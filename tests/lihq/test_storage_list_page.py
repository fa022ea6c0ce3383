"""`ObjectStore.list_page`: one page of `list(prefix)` after a key, on both stores (the file store skips
whole directories by name; S3 asks with StartAfter), with and without a store prefix."""

from __future__ import annotations

import pytest

KEYS = ["a-", "a.x", "a/b", "a/c/d", "ab", "b/z", "bb", "c/x", "renders/_all/1a247/a8b/1a247a8b9d7af504"]


@pytest.mark.parametrize("prefix", ["", "p/q"])
def test_list_page_matches_the_full_listing_page_by_page(store_factory, prefix):
    store = store_factory(prefix)
    for k in KEYS:
        store.put_bytes(k, b"1")
    full = [i.key for i in store.list("")]
    assert full == sorted(KEYS)
    for after in ["", "a", "a.x", "a/b", "a/c/d", "b/z", "renders/", "zz"]:
        for pre in ["", "a", "a/", "b/", "renders/_all/"]:
            want = [k for k in full if k > after and k.startswith(pre)]
            assert [i.key for i in store.list_page(pre, after, 3)] == want[:3], (after, pre)
    # walking page by page visits everything once
    seen, after = [], ""
    while page := store.list_page("", after, 2):
        seen += [i.key for i in page]
        after = page[-1].key
    assert seen == full and all(i.size == 1 for i in store.list_page("", "", 100))
