"""Outcome input: ids that make posting twice harmless without mixing tenants, and errors that name the field."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.value.outcomes import OutcomeRejected, outcome_event, rows_from_csv

TICKETS = {
    "outcome_id": "sup-2026-11-02",
    "use_case": "support-assistant",
    "outcome_kind": "tickets_resolved",
    "quantity": "180",
    "unit": "tickets",
    "occurred_at": "2026-11-02T23:00:00Z",
    "value": {"amount": "720.00", "currency": "USD"},
}


def event_id(item: dict[str, object], tenant: str) -> str:
    return outcome_event(item, 0, tenant=tenant, correlation_id="c", source="test").event_id


def test_outcome_id_is_scoped_by_tenant() -> None:
    assert event_id(TICKETS, "acme") == event_id(TICKETS, "acme")
    assert event_id(TICKETS, "acme") != event_id(TICKETS, "globex")


def test_content_id_is_scoped_by_tenant() -> None:
    without_id = {key: value for key, value in TICKETS.items() if key != "outcome_id"}
    assert event_id(without_id, "acme") == event_id(without_id, "acme")
    assert event_id(without_id, "acme") != event_id(without_id, "globex")
    assert event_id(without_id, "acme") != event_id(TICKETS, "acme")


def test_outcome_fields() -> None:
    event = outcome_event(TICKETS, 0, tenant="acme", correlation_id="c", source="test")
    assert event.quantity == Decimal(180)
    assert event.value is not None
    assert event.value.amount == Decimal("720.00")


@pytest.mark.parametrize(
    ("change", "field_path"),
    [
        ({"quantity": "0"}, "quantity"),
        ({"occurred_at": "2026-11-02T23:00:00"}, "occurred_at"),
        ({"use_case": ""}, "use_case"),
        ({"value": {"amount": "1", "currency": "usd"}}, "currency"),
        ({"outcome_id": " "}, "outcome_id"),
    ],
)
def test_bad_outcome_names_field(change: dict[str, object], field_path: str) -> None:
    with pytest.raises(OutcomeRejected) as error:
        outcome_event({**TICKETS, **change}, 3, tenant="acme", correlation_id="c", source="test")
    assert error.value.field_path == field_path
    assert error.value.index == 3


def test_csv_without_values() -> None:
    data = (
        b"use_case,outcome_kind,quantity,unit,occurred_at,value_amount,value_currency\n"
        b"support-assistant,tickets_resolved,1040,tickets,2026-10-07T23:00:00Z,,\n"
    )
    [row] = list(rows_from_csv(data))
    assert "value" not in row
    assert "outcome_id" not in row


CSV_HEADER = "use_case,outcome_kind,quantity,unit,occurred_at\n"


def test_csv_row_length_rejected_with_line() -> None:
    data = CSV_HEADER + "support,tickets_resolved,180,tickets,2026-11-02T23:00:00Z\nsupport,tickets_resolved\n"

    items = list(rows_from_csv(data.encode()))

    with pytest.raises(OutcomeRejected) as raised:
        outcome_event(items[1], 1, tenant="acme", correlation_id="c", source="test")
    assert raised.value.field_path == "line 3"
    assert raised.value.reason == "has 2 cells, but the header has 5"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "is empty"),
        (b"\xef\xbb\xbf \n", "is empty"),
        # The bad byte follows the 48-byte header line and "support," (8 bytes): offset 48 + 8 = 56.
        (CSV_HEADER.encode() + b"support,\xff", "is not UTF-8 text: byte 0xff at offset 56 is invalid"),
    ],
)
def test_csv_file_errors(data: bytes, reason: str) -> None:
    with pytest.raises(OutcomeRejected) as raised:
        list(rows_from_csv(data))

    assert raised.value.field_path == "(file)"
    assert raised.value.reason == reason
