"""The strict value conversion: what becomes COPY text, what is rejected and why, and the
canonical text validation compares (which must equal PostgreSQL's own output)."""
import pytest

from migration.convert import Reject, canonical_field, copy_field, jsonb_text, parse_json, to_uuid


@pytest.mark.parametrize("value", [b"0b7f2c1e-8a4d-4e5f-9a6b-1c2d3e4f5a6b", b"0B7F2C1E8A4D4E5F9A6B1C2D3E4F5A6B",
                                   b"{0b7f2c1e-8a4d-4e5f-9a6b-1c2d3e4f5a6b}"])
def test_every_uuid_spelling_normalises_to_one(value):
    assert to_uuid("text", value) == "0b7f2c1e-8a4d-4e5f-9a6b-1c2d3e4f5a6b"


@pytest.mark.parametrize("kind,typ,value,word", [
    ("int", "text", b"abc", "integer"),
    ("int", "real", 1.5, "fractional"),
    ("float", "text", b"n/a", "floating"),
    ("timestamp", "text", b"2024-02-30 10:00:00", "day is out of range"),
    ("timestamp", "text", b"now", "ISO 8601"),
    ("timestamp", "integer", 1700000000, "epoch"),
    ("timestamp", "text", b"2024-01-01 10:00:00+02:00", "offset"),
    ("text", "text", b"a\x00b", "NUL"),
    ("text", "text", b"\xff\xfe", "UTF-8"),
    ("bool", "integer", 2, "boolean"),
    ("uuid", "text", b"not-a-uuid", "UUID"),
    ("jsonb", "text", b'{"a": NaN}', "JSON"),
    ("jsonb", "text", b'{"a": "\\u0000"}', "jsonb"),
])
def test_values_that_do_not_fit_are_rejected_with_a_reason(kind, typ, value, word):
    with pytest.raises(Reject) as exc:
        copy_field(kind, {}, typ, value)
    assert word in str(exc.value)


def test_numeric_rounds_half_away_from_zero_like_postgresql_and_checks_precision():
    assert copy_field("numeric", {"precision": 10, "scale": 2}, "real", 2.675) == "2.68"
    assert copy_field("numeric", {"precision": 10, "scale": 2}, "real", -2.675) == "-2.68"
    with pytest.raises(Reject):
        copy_field("numeric", {"precision": 3, "scale": 2}, "real", 12.5)


def test_timestamps_follow_postgresql_for_odd_but_valid_input():
    assert canonical_field("timestamp", {}, "text", b"2024-01-01T10:00:00.500000") == "2024-01-01 10:00:00.5"
    assert canonical_field("timestamp", {}, "text", b"2024-01-01 24:00:00") == "2024-01-02 00:00:00"
    assert canonical_field("timestamptz", {}, "text", b"2024-01-01 10:00:00+02:00") == "2024-01-01 08:00:00+00"
    assert canonical_field("date", {}, "text", b"2024-02-29") == "2024-02-29"


def test_booleans_accept_postgresql_spellings():
    assert [canonical_field("bool", {}, "text", v) for v in (b"yes", b" T ", b"off", b"0")] == \
        ["true", "true", "false", "false"]


def test_floats_are_compared_by_their_bits_and_loaded_exactly():
    assert canonical_field("float", {}, "real", 0.1) == "3fb999999999999a"
    assert float(copy_field("float", {}, "real", 1 / 3)) == 1 / 3


def test_copy_text_escapes_tabs_newlines_backslashes():
    assert copy_field("text", {}, "text", b"a\tb\nc\\d") == "a\\tb\\nc\\\\d"


def test_jsonb_canonical_text_matches_postgresql_rules():
    # keys sorted by length then bytes, duplicates keep the last, numbers keep their scale
    assert jsonb_text(parse_json('{"bb": 1, "a": 2.50, "a": 1e2, "c": [true, null, "x\\ny"]}')) == \
        '{"a": 100, "c": [true, null, "x\\ny"], "bb": 1}'
