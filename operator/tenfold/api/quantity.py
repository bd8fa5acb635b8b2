"""Kubernetes resource quantities ("500m", "4Gi", "1.5") as numbers."""

from decimal import Decimal, InvalidOperation

_SUFFIXES = {
    "Ki": Decimal(1024),
    "Mi": Decimal(1024**2),
    "Gi": Decimal(1024**3),
    "Ti": Decimal(1024**4),
    "Pi": Decimal(1024**5),
    "Ei": Decimal(1024**6),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}
# Longest suffix first so "Mi" is not read as "M".
_ORDERED = sorted(_SUFFIXES, key=len, reverse=True)


def parse_quantity(text: str) -> float:
    """The value of a quantity string; ValueError with the text when it is not one."""
    value = text.strip()
    for suffix in _ORDERED:
        if value.endswith(suffix):
            return float(_decimal(value[: -len(suffix)], text) * _SUFFIXES[suffix])
    return float(_decimal(value, text))


def _decimal(number: str, original: str) -> Decimal:
    try:
        parsed = Decimal(number)
    except InvalidOperation:
        raise ValueError(f"{original!r} is not a Kubernetes quantity") from None
    if not parsed.is_finite() or parsed < 0:
        raise ValueError(f"{original!r} is not a non-negative Kubernetes quantity")
    return parsed
