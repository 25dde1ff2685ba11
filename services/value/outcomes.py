"""Business outcome input: JSON objects (HTTP) and CSV files become outcome-recorded events.

An outcome names its use case, what kind of outcome it is (``tickets_resolved``),
how many, the unit, when it happened (RFC 3339 with a zone) and optionally its
business value. Without an ``outcome_id`` the id is derived from the content, so
posting or importing the same outcome twice records it once. Both kinds of id are
scoped by tenant, so two tenants may use the same ``outcome_id``.

Fields other than those in ``OUTCOME_FIELDS`` are rejected, so a misspelt field is
never dropped silently. A quantity above ``MAX_QUANTITY`` or a value above
``MAX_VALUE_AMOUNT`` is rejected as implausible: such a figure is almost always a
unit mistake (cents for dollars, tokens for tickets) and would swamp every ROI.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from shared.consumer import describe_validation_error
from shared.events import Money, OutcomeRecorded

OUTCOME_NAMESPACE = uuid.UUID("2c8f6d1a-5e3b-5a7c-9f04-7d1e2b3c4a58")
CSV_COLUMNS = ("use_case", "outcome_kind", "quantity", "unit", "occurred_at")
OUTCOME_FIELDS = frozenset({*CSV_COLUMNS, "outcome_id", "value"})
# Fields whose values make an outcome what it is; a restated outcome id must repeat them exactly.
CONTENT_FIELDS = ("use_case", "outcome_kind", "quantity", "unit", "occurred_at", "value")
# NOTE: plausibility limits chosen for business outcomes of one record, not taken from any standard.
MAX_QUANTITY = Decimal(10) ** 12
MAX_VALUE_AMOUNT = Decimal(10) ** 12
# Key of the item rows_from_csv yields for a row whose cell count differs from the header's.
CELL_COUNT_ERROR = "\x1fcell count"


class OutcomeRejected(ValueError):
    def __init__(self, index: int, field_path: str, reason: str) -> None:
        super().__init__(f"outcome {index}: {field_path}: {reason}")
        self.index = index
        self.field_path = field_path
        self.reason = reason


def _timestamp(value: Any, index: int) -> datetime:
    if not isinstance(value, str):
        raise OutcomeRejected(index, "occurred_at", f"must be an RFC 3339 timestamp, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise OutcomeRejected(index, "occurred_at", f"must be an RFC 3339 timestamp, got {value!r}") from None
    if parsed.tzinfo is None:
        raise OutcomeRejected(index, "occurred_at", f"has no time zone: {value!r}")
    return parsed


def outcome_event(item: Any, index: int, *, tenant: str, correlation_id: str, source: str) -> OutcomeRecorded:
    """Validate one outcome object and build its event; raise OutcomeRejected naming the field."""
    if not isinstance(item, dict):
        raise OutcomeRejected(index, "(outcome)", "must be an object")
    if CELL_COUNT_ERROR in item:
        field_path, _, reason = str(item[CELL_COUNT_ERROR]).partition("\x1f")
        raise OutcomeRejected(index, field_path, reason)
    unknown = sorted(str(key) for key in item if key not in OUTCOME_FIELDS)
    if unknown:
        raise OutcomeRejected(
            index, unknown[0][:64], f"unknown field; an outcome has only {', '.join(sorted(OUTCOME_FIELDS))}"
        )
    occurred_at = _timestamp(item.get("occurred_at"), index)
    value = _value(item.get("value"), index)
    outcome_id = item.get("outcome_id")
    if outcome_id is not None and (not isinstance(outcome_id, str) or not outcome_id.strip()):
        raise OutcomeRejected(index, "outcome_id", "must be a non-empty string when given")
    content = "|".join(str(item.get(key)) for key in ("use_case", "outcome_kind", "quantity", "unit", "occurred_at"))
    identity = f"id:{outcome_id}" if outcome_id else content
    event_id = f"outcome:{uuid.uuid5(OUTCOME_NAMESPACE, tenant + '|' + identity)}"
    try:
        event = OutcomeRecorded(
            event_id=event_id,
            occurred_at=occurred_at,
            source=source,
            tenant=tenant,
            correlation_id=correlation_id,
            use_case=item.get("use_case"),
            outcome_kind=item.get("outcome_kind"),
            quantity=item.get("quantity"),
            unit=item.get("unit"),
            value=value,
        )
    except ValidationError as error:
        field_path, reason = describe_validation_error(error)
        raise OutcomeRejected(index, field_path, reason) from None
    _check_quantity(event.quantity, index)
    return event


def _value(value: Any, index: int) -> Money | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise OutcomeRejected(index, "value", 'must be an object {"amount": "...", "currency": "USD"}')
    try:
        money = Money.model_validate(value)
    except ValidationError as error:
        field_path, reason = describe_validation_error(error)
        raise OutcomeRejected(index, f"value.{field_path}", reason) from None
    if abs(money.amount) > MAX_VALUE_AMOUNT:
        raise OutcomeRejected(
            index,
            "value.amount",
            f"{money.amount} is implausibly large (the limit is {MAX_VALUE_AMOUNT:,} per outcome record); "
            "check the unit, or split the value over several records",
        )
    return money


def _check_quantity(quantity: Decimal, index: int) -> None:
    if quantity > MAX_QUANTITY:
        raise OutcomeRejected(
            index,
            "quantity",
            f"{quantity} is implausibly large (the limit is {MAX_QUANTITY:,} per outcome record); "
            "check the unit, or split the outcomes over several records",
        )


def same_content(first: OutcomeRecorded, second: OutcomeRecorded) -> bool:
    """Tell whether two outcomes state the same facts; 3 and 3.0, or one instant in two zones, are the same."""
    return all(getattr(first, name) == getattr(second, name) for name in CONTENT_FIELDS)


def rows_from_csv(data: bytes) -> Iterator[dict[str, Any]]:
    """Read outcome rows from CSV; ``value_amount`` and ``value_currency`` form the optional value.

    A row with more or fewer cells than the header yields an item that ``outcome_event``
    rejects with the row's line, instead of one padded with empty values.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise OutcomeRejected(
            0,
            "(encoding)",
            f"the file is not UTF-8: byte 0x{data[error.start]:02x} at offset {error.start} (line {line}) "
            "is invalid; save the file as UTF-8 and import it again",
        ) from None
    if not text.strip():
        raise OutcomeRejected(0, "(file)", "is empty")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [name.strip() for name in next(reader)]
    missing = [column for column in CSV_COLUMNS if column not in header]
    if missing:
        raise OutcomeRejected(0, "(header)", f"missing columns: {', '.join(missing)}")
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise OutcomeRejected(0, f"line {reader.line_num}", f"is not valid CSV: {error}") from None
        if not cells:
            continue
        if len(cells) != len(header):
            yield {CELL_COUNT_ERROR: f"line {line}\x1fhas {len(cells)} cells, but the header has {len(header)}"}
            continue
        row = dict(zip(header, cells, strict=True))
        item: dict[str, Any] = {key: row.get(key) for key in (*CSV_COLUMNS, "outcome_id")}
        if not item.get("outcome_id"):
            item.pop("outcome_id")
        amount, currency = row.get("value_amount"), row.get("value_currency")
        if amount:
            item["value"] = {"amount": amount, "currency": currency}
        yield item
