"""Exact splitting of a cost between owners: largest-remainder rounding that always adds up to the cost.

Weights are exact fractions. Each cost line is split on its own, at a quantum
that is the currency's minor unit or, when the line is finer (AI costs are often
fractions of a cent), the line's own last decimal place. The shares of every line
add up exactly to the line, so the shares of the cost add up exactly to the cost,
and a share is never more than one quantum away from its exact part.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction
from math import floor

# ISO 4217 minor units of the currencies whose minor unit is not 2; every other code uses 2.
_MINOR_UNITS = {
    "BHD": 3, "BIF": 0, "CLF": 4, "CLP": 0, "DJF": 0, "GNF": 0, "IQD": 3, "ISK": 0, "JOD": 3, "JPY": 0, "KMF": 0,
    "KRW": 0, "KWD": 3, "LYD": 3, "OMR": 3, "PYG": 0, "RWF": 0, "TND": 3, "UGX": 0, "UYI": 0, "UYW": 4, "VND": 0,
    "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
}  # fmt: skip
FRACTION_PLACES = 12


def minor_units(currency: str) -> int:
    return _MINOR_UNITS.get(currency, 2)


def quantum_for(amounts: Sequence[Decimal], currency: str) -> Decimal:
    """Return the rounding step for splitting these amounts: the minor unit, or finer when an amount is finer."""
    places = minor_units(currency)
    for amount in amounts:
        exponent = amount.normalize().as_tuple().exponent
        if isinstance(exponent, int):
            places = max(places, -exponent)
    return Decimal(1).scaleb(-places)


def apportion(total: Decimal, weights: Sequence[Fraction], quantum: Decimal) -> list[Decimal]:
    """Split ``total`` by ``weights`` (which add up to 1) in steps of ``quantum``, largest remainder first.

    Ties go to the earlier weight, so the result is the same on every run. A negative total (a credit)
    is split as its absolute value and negated, so every part keeps the total's sign.
    """
    if sum(weights, Fraction(0)) != 1:
        raise ValueError(f"split weights must add up to 1, got {sum(weights, Fraction(0))}")
    units = total / quantum
    if units != units.to_integral_value():
        raise ValueError(f"{total} is not a whole number of steps of {quantum}")
    sign = -1 if units < 0 else 1
    steps = abs(int(units))
    exact = [Fraction(steps) * weight for weight in weights]
    parts = [floor(value) for value in exact]
    left = steps - sum(parts)
    order = sorted(range(len(weights)), key=lambda index: (-(exact[index] - parts[index]), index))
    for index in order[:left]:
        parts[index] += 1
    return [(Decimal(sign * part) * quantum).normalize() if part else Decimal(0) for part in parts]


def fractions_adding_to_one(weights: Sequence[Fraction]) -> list[Decimal]:
    """Return decimal fractions, at 12 places, that add up to exactly 1 and are within 1e-12 of the weights."""
    return apportion(Decimal(1), weights, Decimal(1).scaleb(-FRACTION_PLACES))


def split_lines(
    line_amounts: Sequence[Decimal], currency: str, weights: Sequence[Fraction]
) -> tuple[list[Decimal], list[list[Decimal]]]:
    """Split every line by the weights; return each share's total and each share's part of every line."""
    per_share_lines: list[list[Decimal]] = [[] for _ in weights]
    for amount in line_amounts:
        parts = apportion(amount, weights, quantum_for([amount], currency))
        for share_index, part in enumerate(parts):
            per_share_lines[share_index].append(part)
    totals = [sum(parts, Decimal(0)) for parts in per_share_lines]
    return totals, per_share_lines
