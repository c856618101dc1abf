"""table_build: folding, duplicates and terminating nulls as postmap's options set them."""

from mailsys.config.table_build import (IGNORE, REPLACE, BuildOptions, add, delete, entries,
                                        get)


def build(records, opts=BuildOptions()):
    raw, warnings = {}, []
    for key, value in records:
        add(raw, key, value, opts, table="/t.lmdb", warn=warnings.append)
    return raw, warnings


RECORDS = [("Alice", "one"), ("bob", "two"), ("ALICE", "three")]


def test_default_folds_and_keeps_the_first_with_a_warning():
    raw, warnings = build(RECORDS)
    assert raw == {b"alice": b"one", b"bob": b"two"}
    assert warnings == ['/t.lmdb: duplicate entry: "alice"']


def test_w_ignores_and_r_replaces_silently():
    assert build(RECORDS, BuildOptions(duplicates=IGNORE)) == (
        {b"alice": b"one", b"bob": b"two"}, [])
    assert build(RECORDS, BuildOptions(duplicates=REPLACE)) == (
        {b"alice": b"three", b"bob": b"two"}, [])


def test_f_keeps_the_case():
    raw, warnings = build(RECORDS, BuildOptions(fold=False))
    assert raw == {b"Alice": b"one", b"bob": b"two", b"ALICE": b"three"} and warnings == []


def test_nulls_are_stored_with_N_and_found_either_way():
    raw, _ = build(RECORDS, BuildOptions(nulls=True))
    assert raw == {b"alice\0": b"one\0", b"bob\0": b"two\0"}
    assert list(entries(raw)) == [("alice", "one"), ("bob", "two")]
    assert get(raw.get, b"alice") == "one"
    # An entry added without -N to a table built with it is still one key.
    add(raw, "ALICE", "four", BuildOptions(duplicates=REPLACE), table="/t.lmdb", warn=print)
    assert raw[b"alice\0"] == b"four\0" and b"alice" not in raw
    assert delete(raw, "Alice", BuildOptions()) and not delete(raw, "alice", BuildOptions())
    assert raw == {b"bob\0": b"two\0"}


def test_non_utf8_bytes_survive():
    raw, _ = build([("k\udcff", "v\udcfe")])
    assert raw == {b"k\xff": b"v\xfe"}
    assert list(entries(raw)) == [("k\udcff", "v\udcfe")]
