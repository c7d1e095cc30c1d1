"""Converting one SQLite value for one PostgreSQL column: the strict, row-by-row path.

Most rows never come here: the loader formats them inside SQLite (see `fastpath`). Values the
fast path cannot vouch for, and every row of a batch PostgreSQL refused, are converted here,
value by value, and either become COPY text or raise `Reject` with a reason a person can act
on. The validator uses the same functions to compute what PostgreSQL must hold, so "what was
loaded" and "what is checked" cannot drift apart.

Values arrive as SQLite hands them over with ``text_factory=bytes``: None, int, float, or bytes
(text and blobs alike), together with their storage class (``typeof``).
"""
from __future__ import annotations

import datetime as dt
import json
import math
import re
import struct
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Optional

from . import decisions


class Reject(ValueError):
    """A value that cannot be stored in its target column; the message says why."""


def preview(value: Any, limit: int = 40) -> str:
    """A short printable rendering of a raw value for reasons and reports."""
    if isinstance(value, bytes):
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            return "x'" + value[:limit // 2].hex() + ("..." if len(value) > limit // 2 else "") + "'"
        value = text
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _text(typ: str, value: Any) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise Reject(f"invalid UTF-8 in {'blob' if typ == 'blob' else 'text'} {preview(value)}") from None
    return str(value)


# ---- per-kind conversion to a normalised Python value ------------------------------------

_INT_TEXT = re.compile(r"^\s*[+-]?\d+\s*$")
_FLOAT_TEXT = re.compile(r"^\s*[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)\s*$")
_FLOAT_WORDS = {"nan": math.nan, "infinity": math.inf, "+infinity": math.inf, "-infinity": -math.inf,
                "inf": math.inf, "+inf": math.inf, "-inf": -math.inf}
_NUMERIC_TEXT = re.compile(r"^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$")
_TS = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})(?:(?:[Tt]|\s+)(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
                 r"\s*(Z|z|UTC|[+-]\d{1,2}(?::?\d{2})?)?\s*$")
_TIME = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?\s*$")
_UUID = re.compile(r"^[0-9a-fA-F]{4}(?:-?[0-9a-fA-F]{4}){7}$")
_BOOL_TRUE = ("true", "yes")
_BOOL_FALSE = ("false", "no")


def to_int(typ: str, value: Any, params: dict) -> int:
    if typ == "integer":
        out = value
    elif typ == "real":
        if not math.isfinite(value) or value != int(value) or abs(value) >= 2 ** 63:
            raise Reject(f"fractional or out-of-range number {value!r} in an integer column")
        out = int(value)
    elif typ == "text":
        text = _text(typ, value)
        if not _INT_TEXT.match(text):
            raise Reject(f"text {preview(text)} in an integer column")
        out = int(text)
    else:
        raise Reject(f"blob {preview(value)} in an integer column")
    lo, hi = params.get("min", -2 ** 63), params.get("max", 2 ** 63 - 1)
    if not lo <= out <= hi:
        raise Reject(f"{out} is out of range for the column ({lo}..{hi})")
    return out


def to_float(typ: str, value: Any, params: dict) -> float:
    if typ == "real":
        out = value
    elif typ == "integer":
        out = float(value)
    elif typ == "text":
        text = _text(typ, value).strip()
        if _FLOAT_TEXT.match(text):
            out = float(text)
        elif text.lower() in _FLOAT_WORDS:
            out = _FLOAT_WORDS[text.lower()]
        else:
            raise Reject(f"text {preview(text)} in a floating-point column")
        if math.isinf(out) and text.lower() not in _FLOAT_WORDS:
            raise Reject(f"{preview(text)} is out of range for double precision")
    else:
        raise Reject(f"blob {preview(value)} in a floating-point column")
    if params.get("float4"):
        try:
            out = struct.unpack(">f", struct.pack(">f", out))[0]
        except OverflowError:
            raise Reject(f"{out!r} is out of range for real") from None
    return out


def to_numeric(typ: str, value: Any, params: dict) -> Decimal:
    if typ == "integer":
        out = Decimal(value)
    elif typ == "real":
        if not math.isfinite(value):
            out = Decimal("Infinity") if value > 0 else Decimal("-Infinity")
        else:
            out = Decimal(repr(value))  # the shortest spelling: what the application stored
    elif typ == "text":
        text = _text(typ, value).strip()
        if _NUMERIC_TEXT.match(text):
            out = Decimal(text)
        elif text.lower() in ("nan", "infinity", "-infinity", "+infinity", "inf", "-inf", "+inf"):
            out = Decimal(text.replace("inf", "Infinity") if text.lower().endswith("inf") else text)
        else:
            raise Reject(f"text {preview(text)} in a numeric column")
    else:
        raise Reject(f"blob {preview(value)} in a numeric column")
    if "precision" in params:
        p, s = params["precision"], params["scale"]
        if not out.is_finite():
            raise Reject(f"{out} cannot be stored in numeric({p},{s})")
        try:
            out = out.quantize(Decimal(1).scaleb(-s), rounding=ROUND_HALF_UP)
        except InvalidOperation:
            raise Reject(f"{preview(value)} does not fit numeric({p},{s})") from None
        if out.adjusted() >= p - s and out != 0:
            raise Reject(f"{preview(value)} does not fit numeric({p},{s})")
    if out.is_finite() and out == 0:
        out = abs(out)
    return out


def to_text(typ: str, value: Any, params: dict) -> str:
    if typ == "integer":
        text = str(value)
    elif typ == "real":
        # Callers pass SQLite's own rendering, CAST(x AS TEXT), which arrives as bytes where the
        # connection reads text as bytes (the loader); a bare float only without that rendering.
        text = value.decode("ascii") if isinstance(value, (bytes, bytearray)) else repr(value)
    else:
        text = _text(typ, value)
    if "\x00" in text:
        if params.get("nul") != "strip":  # a reviewed decision (see decisions) may remove them
            raise Reject(f"NUL character in {'blob' if typ == 'blob' else 'text'} {preview(text)}")
        text = text.replace("\x00", "")
    length = params.get("length")
    if length is not None and len(text) > length:
        raise Reject(f"text of {len(text)} characters is longer than the column's {length}")
    return text


def parse_bool_text(text: str) -> Optional[bool]:
    """PostgreSQL's boolean input rules (parse_bool): None when the text is not a boolean."""
    t = text.strip().lower()
    if not t:
        return None
    if t in ("1", "0"):
        return t == "1"
    if t[0] in "ty":
        for word in _BOOL_TRUE:
            if word.startswith(t):
                return True
    if t[0] in "fn":
        for word in _BOOL_FALSE:
            if word.startswith(t):
                return False
    if t == "on":
        return True
    if t in ("of", "off"):
        return False
    return None


def to_bool(typ: str, value: Any, params: dict) -> bool:
    if typ in ("integer", "real"):
        if value in (0, 1):
            return bool(value)
        raise Reject(f"number {value!r} in a boolean column (only 0 and 1 are booleans)")
    if typ == "text":
        out = parse_bool_text(_text(typ, value))
        if out is None:
            raise Reject(f"text {preview(value)} in a boolean column")
        return out
    raise Reject(f"blob {preview(value)} in a boolean column")


def _fraction_to_us(digits: Optional[str]) -> int:
    if not digits:
        return 0
    # PostgreSQL reads the fraction as a double and rounds with rint() (half to even).
    return int(round(float("0." + digits) * 1_000_000))


def _offset_minutes(tz: str) -> int:
    if tz in ("Z", "z", "UTC"):
        return 0
    sign = -1 if tz[0] == "-" else 1
    body = tz[1:].replace(":", "")
    hours = int(body[:2]) if len(body) >= 2 else int(body)
    minutes = int(body[2:4]) if len(body) >= 4 else 0
    if hours > 15 or minutes > 59:
        raise ValueError("offset out of range")
    return sign * (hours * 60 + minutes)


def parse_timestamp(text: str) -> tuple[dt.datetime, Optional[int]]:
    """An ISO 8601 date/time as PostgreSQL reads it: (naive datetime, UTC offset in minutes or None).

    Raises ValueError for anything that is not ISO 8601 or not a real date/time.
    """
    m = _TS.match(text)
    if not m:
        raise ValueError("not ISO 8601")
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    hour, minute, sec = int(hh or 0), int(mi or 0), int(ss or 0)
    us = _fraction_to_us(frac)
    base = dt.datetime(int(y), int(mo), int(d))
    if hour > 24 or minute > 59 or sec > 60 or (hour == 24 and (minute or sec or us)):
        raise ValueError("time out of range")
    value = base + dt.timedelta(hours=hour, minutes=minute, seconds=sec, microseconds=us)
    return value, (_offset_minutes(tz) if tz else None)


def format_timestamp(value: dt.datetime, us6: bool = False) -> str:
    """A naive datetime the way PostgreSQL prints a timestamp (DateStyle ISO).

    With `us6`, always six fraction digits (to_char's .US), the form validation compares
    columns in when every source value is spelled that way.
    """
    text = f"{value.year:04d}-{value.month:02d}-{value.day:02d} {value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    if us6:
        return text + f".{value.microsecond:06d}"
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text


_EPOCH = dt.datetime(1970, 1, 1)


def epoch_datetime(value: Any, unit: str) -> dt.datetime:
    """A Unix time number in `unit` as a naive UTC datetime (exact for integers)."""
    factor = decisions.EPOCH_FACTORS[unit]
    if isinstance(value, int):
        us = value * (1_000_000 // factor)
    else:
        if not math.isfinite(value):
            raise Reject(f"{value!r} is not a point in time")
        # PostgreSQL rounds a fraction to the microsecond, half to even; the decimal digits of
        # the stored double are what the application wrote
        us = int((Decimal(repr(value)) * (1_000_000 // factor)).to_integral_value())
    try:
        return _EPOCH + dt.timedelta(microseconds=us)
    except OverflowError:
        raise Reject(f"{value!r} as epoch {decisions.EPOCH_WORDS[unit]} is out of range") from None


def to_temporal(kind: str, typ: str, value: Any, us6: bool = False, epoch: Optional[str] = None) -> str:
    """Canonical text (PostgreSQL's output form) of a date/time value, or `Reject`.

    Numbers are Unix time only under a reviewed ``epoch`` decision (see `decisions`)."""
    if typ in ("integer", "real"):
        unit = decisions.epoch_unit(value, epoch) if epoch and kind in ("timestamp", "timestamptz") else None
        if unit is None:
            if epoch:
                raise Reject(f"number {value!r} in a {kind} column is in no epoch range "
                             f"(seconds, milliseconds or microseconds from 1971 to 2100)")
            raise Reject(f"number {value!r} in a {kind} column (epoch values are not guessed)")
        moment = epoch_datetime(value, unit)
        if moment.year < 1 or moment.year > 9999:
            raise Reject(f"{value!r} as epoch {decisions.EPOCH_WORDS[unit]}: year out of range")
        return format_timestamp(moment, us6) + ("+00" if kind == "timestamptz" else "")
    if typ == "blob":
        raise Reject(f"blob {preview(value)} in a {kind} column")
    text = _text(typ, value)
    if kind == "time":
        m = _TIME.match(text)
        if not m:
            raise Reject(f"{preview(text)} is not an ISO 8601 time")
        hh, mi, ss, frac = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0), m.group(4)
        us = _fraction_to_us(frac)
        if hh > 24 or mi > 59 or ss > 60 or (hh == 24 and (mi or ss or us)):
            raise Reject(f"{preview(text)} is not a valid time")
        if ss == 60:
            ss, mi = 0, mi + 1
            if mi == 60:
                mi, hh = 0, hh + 1
        out = f"{hh:02d}:{mi:02d}:{ss:02d}"
        return out + (f".{us:06d}".rstrip("0") if us else "")
    try:
        value_dt, offset = parse_timestamp(text)
    except ValueError as exc:
        raise Reject(f"{preview(text)} is not a valid ISO 8601 {kind} ({exc})") from None
    if value_dt.year < 1 or value_dt.year > 9999:
        raise Reject(f"{preview(text)}: year out of range")
    if kind == "date":
        if value_dt.time() != dt.time(0) or offset is not None:
            raise Reject(f"{preview(text)} has a time of day or offset; the column is a date")
        return f"{value_dt.year:04d}-{value_dt.month:02d}-{value_dt.day:02d}"
    if kind == "timestamp":
        if offset is not None:
            raise Reject(f"{preview(text)} carries a UTC offset; the column is a timestamp without time zone")
        return format_timestamp(value_dt, us6)
    utc = value_dt - dt.timedelta(minutes=offset or 0)
    return format_timestamp(utc) + "+00"


def to_uuid(typ: str, value: Any) -> str:
    if typ != "text":
        raise Reject(f"{'blob' if typ == 'blob' else 'number'} {preview(value)} in a uuid column")
    text = _text(typ, value).strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    if not _UUID.match(text):
        raise Reject(f"{preview(value)} is not a UUID")
    h = text.replace("-", "").lower()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _reject_constant(name: str):
    raise Reject(f"JSON does not allow {name}")


def parse_json(text: str) -> Any:
    """Parse JSON strictly, as PostgreSQL does (numbers kept exact)."""
    try:
        return json.loads(text, parse_float=Decimal, parse_int=Decimal, parse_constant=_reject_constant,
                          object_pairs_hook=dict)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, Reject):
            raise
        raise Reject(f"invalid JSON {preview(text)} ({exc})") from None


def _json_has_nul(doc: Any) -> bool:
    if isinstance(doc, str):
        return "\x00" in doc
    if isinstance(doc, dict):
        return any("\x00" in k or _json_has_nul(v) for k, v in doc.items())
    if isinstance(doc, list):
        return any(_json_has_nul(v) for v in doc)
    return False


def to_json_text(kind: str, typ: str, value: Any) -> tuple[str, Any]:
    """(original text, parsed document) of a JSON value, or `Reject`."""
    if typ == "blob":
        raise Reject(f"blob {preview(value)} in a {kind} column")
    text = str(value) if typ == "integer" else repr(value) if typ == "real" else _text(typ, value)
    if "\x00" in text:
        raise Reject(f"NUL character in JSON text {preview(text)}")
    doc = parse_json(text)
    if kind == "jsonb" and _json_has_nul(doc):
        raise Reject(f"JSON {preview(text)} holds \\u0000, which jsonb cannot store")
    return text, doc


def _json_string(s: str) -> str:
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif o < 0x20:
            out.append({8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t"}.get(o, f"\\u{o:04x}"))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _numeric_text(d: Decimal) -> str:
    if d.is_nan():
        return "NaN"
    if d.is_infinite():
        return "Infinity" if d > 0 else "-Infinity"
    if d == 0:
        d = abs(d)
    return format(d, "f")


def jsonb_text(doc: Any) -> str:
    """A parsed JSON document printed the way PostgreSQL prints jsonb."""
    if isinstance(doc, dict):
        keys = sorted(doc, key=lambda k: (len(k.encode("utf-8")), k.encode("utf-8")))
        return "{" + ", ".join(f"{_json_string(k)}: {jsonb_text(doc[k])}" for k in keys) + "}"
    if isinstance(doc, list):
        return "[" + ", ".join(jsonb_text(v) for v in doc) + "]"
    if isinstance(doc, str):
        return _json_string(doc)
    if doc is True:
        return "true"
    if doc is False:
        return "false"
    if doc is None:
        return "null"
    return _numeric_text(doc)


def to_bytes(typ: str, value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if typ == "integer":
        return str(value).encode()
    if typ == "real":
        return repr(value).encode()
    return str(value).encode("utf-8")


# ---- the two outputs: COPY text for loading, canonical text for validating ---------------

def copy_escape(text: str) -> str:
    """Escape a field for COPY's text format."""
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def float_text(value: float) -> str:
    """A float as exact decimal text PostgreSQL reads back to the same double."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def float_bits(value: float, float4: bool = False) -> str:
    """The IEEE bits of a float as hex, matching encode(float8send(x), 'hex') in PostgreSQL."""
    if math.isnan(value):
        value = math.nan  # PostgreSQL keeps one NaN
    return struct.pack(">f" if float4 else ">d", value).hex()


def copy_field(kind: str, params: dict, typ: str, value: Any) -> str:
    """COPY text for one value (\\N for NULL); raises `Reject`."""
    if value is None:
        return "\\N"
    if kind == "int":
        return str(to_int(typ, value, params))
    if kind == "float":
        return float_text(to_float(typ, value, params))
    if kind == "numeric":
        return _numeric_text(to_numeric(typ, value, params))
    if kind == "text":
        return copy_escape(to_text(typ, value, params))
    if kind == "bool":
        return "t" if to_bool(typ, value, params) else "f"
    if kind in ("timestamp", "timestamptz", "date", "time"):
        return to_temporal(kind, typ, value, epoch=params.get("epoch"))
    if kind == "uuid":
        return to_uuid(typ, value)
    if kind in ("jsonb", "json"):
        return copy_escape(to_json_text(kind, typ, value)[0])
    if kind == "bytea":
        return "\\\\x" + to_bytes(typ, value).hex()
    raise Reject(f"no conversion for column kind {kind!r}")


TEXT_NULL = "-1:"  # canonical NULL of length-prefixed kinds (text, json): no text spells it


def canonical_field(kind: str, params: dict, typ: str, value: Any) -> str:
    """What PostgreSQL's canonical expression (`fastpath.pg_canonical`) gives for this value."""
    if value is None:
        return TEXT_NULL if kind in ("text", "json") else "\\N"
    if kind == "int":
        return str(to_int(typ, value, params))
    if kind == "float":
        return float_bits(to_float(typ, value, params), bool(params.get("float4")))
    if kind == "numeric":
        return _numeric_text(to_numeric(typ, value, params))
    if kind == "text":
        text = to_text(typ, value, params)
        return f"{len(text)}:{text}"
    if kind == "bool":
        return "true" if to_bool(typ, value, params) else "false"
    if kind in ("timestamp", "timestamptz", "date", "time"):
        return to_temporal(kind, typ, value, bool(params.get("us6")), params.get("epoch"))
    if kind == "uuid":
        return to_uuid(typ, value)
    if kind == "json":
        text = to_json_text(kind, typ, value)[0]
        return f"{len(text)}:{text}"
    if kind == "jsonb":
        return jsonb_text(to_json_text(kind, typ, value)[1])
    if kind == "bytea":
        return to_bytes(typ, value).hex()
    raise Reject(f"no conversion for column kind {kind!r}")


def same_value(kind: str, source_canonical: str, target_canonical: str) -> bool:
    """Whether two canonical texts mean the same value (only jsonb has more than one spelling)."""
    if source_canonical == target_canonical:
        return True
    if kind == "jsonb" and "\\N" not in (source_canonical, target_canonical):
        try:
            return parse_json(source_canonical) == parse_json(target_canonical)
        except Reject:
            return False
    return False


def jsonable(value: Any) -> Any:
    """A raw SQLite value as JSON data for the rejects table (bytes and odd floats tagged)."""
    if isinstance(value, bytes):
        try:
            text = value.decode("utf-8")
            if "\x00" not in text:
                return text
        except UnicodeDecodeError:
            pass
        return {"$hex": value.hex()}
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}
    return value
