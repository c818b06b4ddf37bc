"""Kubernetes resource quantities ("512Mi", "1.5G", "250m") to integers, and back for humans."""
from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation

_SUFFIX = {
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "m": Decimal("0.001"), "u": Decimal("0.000001"), "n": Decimal("0.000000001"),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")


class QuantityError(ValueError):
    pass


def parse(value: object) -> Decimal:
    """Parse a quantity as the API server prints it; numbers are accepted as they are."""
    if isinstance(value, bool):
        raise QuantityError(f"not a quantity: {value!r}")
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    if not isinstance(value, str):
        raise QuantityError(f"not a quantity: {value!r}")
    match = _QUANTITY.match(value.strip())
    if not match or match.group(2) not in _SUFFIX:
        raise QuantityError(f"not a quantity: {value!r}")
    try:
        number = Decimal(match.group(1))
    except InvalidOperation as exc:
        raise QuantityError(f"not a quantity: {value!r}") from exc
    return number * _SUFFIX[match.group(2)]


def to_bytes(value: object) -> int:
    """Memory in bytes, rounded up as the scheduler does."""
    return int(parse(value).to_integral_value(rounding=ROUND_CEILING))


def to_millicores(value: object) -> int:
    """CPU in millicores, rounded up ("100m" -> 100, "2" -> 2000)."""
    return int((parse(value) * 1000).to_integral_value(rounding=ROUND_CEILING))


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
