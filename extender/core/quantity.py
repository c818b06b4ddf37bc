"""Kubernetes resource quantities ("512Mi", "1.5G", "250m") to integers, and back for humans.

The grammar is Kubernetes' resource.Quantity (k8s.io/apimachinery/pkg/api/resource,
parseQuantityString and the suffixer): an optional sign, digits with an optional fraction,
then one of the SI/binary suffixes or a decimal exponent (e/E, optional sign, digits).

The work is bounded before it is done: the scheduler compares requests and allocatable as
int64 (Quantity.Value()/MilliValue()), so a value whose bytes or millicores do not fit in an
int64 is refused (QuantityRange) from its decimal exponent alone, without ever building the
integer (int(Decimal("1e999999")) alone takes ~30 s). A quantity text over MAX_LENGTH
characters is refused before it is scanned; no int64 quantity needs that many.
"""
from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation

INT64_MAX = 2**63 - 1
MAX_LENGTH = 64
"""Longest quantity text read. An int64 in nano units has at most 28 significant digits."""

_SUFFIX: dict[str, int | Decimal] = {
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "m": Decimal("0.001"), "u": Decimal("0.000001"), "n": Decimal("0.000000001"),
}
_QUANTITY = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
                       r"(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?")
_BIG = Decimal(INT64_MAX)
_LIMIT_EXPONENT = 40  # |value| >= 10**40 can never fit an int64 after any suffix; <= 10**-40 rounds up


class QuantityError(ValueError):
    """Not a quantity, or one outside the int64 range; the message quotes a short prefix."""


class QuantityRange(QuantityError):
    """A well-formed quantity whose value does not fit Kubernetes' int64 view of it."""


def prefix(value: object, limit: int = 40) -> str:
    """A bad value as an error message quotes it: at most `limit` characters, never the whole
    of a 10 MB string."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        return f"{text[:limit]!r}... ({len(text)} characters)"
    return repr(text)


def parse(value: object) -> Decimal:
    """Parse a quantity as the API server prints it; JSON numbers are accepted as they are."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise QuantityError(f"not a quantity: {_json_kind(value)}")
    if isinstance(value, int):
        if abs(value) > INT64_MAX:
            raise QuantityRange(f"out of range: {prefix(value)} exceeds int64")
        return Decimal(value)
    if isinstance(value, float):
        number = Decimal(repr(value)) if value == value and abs(value) != float("inf") else None
        if number is None:
            raise QuantityError(f"not a quantity: {value!r}")
        return _bounded(number, value)
    if len(value) > MAX_LENGTH:
        raise QuantityError(f"not a quantity: {prefix(value)} is longer than {MAX_LENGTH} characters")
    match = _QUANTITY.fullmatch(value.strip())
    if not match:
        raise QuantityError(f"not a quantity: {prefix(value)}")
    number_text, exponent, suffix = match.groups()
    try:
        number = Decimal(number_text + (exponent or ""))
    except InvalidOperation as exc:  # the pattern admits only what Decimal reads; kept as a guard
        raise QuantityError(f"not a quantity: {prefix(value)}") from exc
    return _bounded(number, value) * _SUFFIX[suffix or ""]


def _bounded(number: Decimal, original: object) -> Decimal:
    """Refuse by order of magnitude, before any arithmetic that would build a huge integer."""
    if number and number.adjusted() >= _LIMIT_EXPONENT:
        raise QuantityRange(f"out of range: {prefix(original)} exceeds int64")
    if number and number.adjusted() <= -_LIMIT_EXPONENT:  # below a nano-unit: rounds up, as Kubernetes does
        return Decimal(f"{'-' if number < 0 else ''}1e-{_LIMIT_EXPONENT}")
    return number


def _integral(value: Decimal, original: object, unit: str) -> int:
    rounded = value.to_integral_value(rounding=ROUND_CEILING)
    if abs(rounded) > _BIG:
        raise QuantityRange(f"out of range: {prefix(original)} is over 2^63-1 {unit}")
    return int(rounded)


def to_bytes(value: object) -> int:
    """Memory in bytes, rounded up as the scheduler does; within int64."""
    return _integral(parse(value), value, "bytes")


def to_millicores(value: object) -> int:
    """CPU in millicores, rounded up ("100m" -> 100, "2" -> 2000); within int64."""
    return _integral(parse(value) * 1000, value, "millicores")


def _json_kind(value: object) -> str:
    return {dict: "an object", list: "an array", bool: "a boolean", type(None): "null"}.get(
        type(value), "an unexpected value")


def human_bytes(value: int | None) -> str:
    """Binary units, as people write memory requests ("1.5Gi")."""
    if value is None:
        return "unknown"
    sign = "-" if value < 0 else ""
    value = abs(value)
    for unit, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if value >= size:
            text = f"{value / size:.1f}".rstrip("0").rstrip(".")
            return f"{sign}{text}{unit}"
    return f"{sign}{value}"
