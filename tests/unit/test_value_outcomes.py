"""Outcome input: ids that make posting twice harmless without mixing tenants, and errors that name the field."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.value.outcomes import OutcomeRejected, outcome_event, rows_from_csv, same_content

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
        ({"value": {"amount": "1", "currency": "usd"}}, "value.currency"),
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


@pytest.mark.parametrize(
    ("change", "field_path"),
    [
        ({"qty": "5"}, "qty"),
        ({"value": {"amount": "1", "currency": "USD", "note": "x"}}, "value.note"),
        ({"value": "720"}, "value"),
    ],
)
def test_unknown_or_malformed_field_is_named(change: dict[str, object], field_path: str) -> None:
    with pytest.raises(OutcomeRejected) as error:
        outcome_event({**TICKETS, **change}, 0, tenant="acme", correlation_id="c", source="test")
    assert error.value.field_path == field_path


def test_quantity_limit_is_inclusive() -> None:
    # MAX_QUANTITY is 10^12: exactly 1,000,000,000,000 passes, one more is rejected.
    event = outcome_event({**TICKETS, "quantity": "1000000000000"}, 0, tenant="acme", correlation_id="c", source="t")
    assert event.quantity == Decimal(10) ** 12
    with pytest.raises(OutcomeRejected) as error:
        outcome_event({**TICKETS, "quantity": "1000000000001"}, 0, tenant="acme", correlation_id="c", source="t")
    assert error.value.field_path == "quantity"
    assert "implausibly large" in error.value.reason


def test_value_amount_limit() -> None:
    huge = {"amount": "1e13", "currency": "USD"}  # 10^13 is ten times MAX_VALUE_AMOUNT (10^12)
    with pytest.raises(OutcomeRejected) as error:
        outcome_event({**TICKETS, "value": huge}, 0, tenant="acme", correlation_id="c", source="t")
    assert error.value.field_path == "value.amount"


def test_restated_content_differs() -> None:
    first = outcome_event(TICKETS, 0, tenant="acme", correlation_id="c", source="t")
    again = outcome_event({**TICKETS, "quantity": "180.0"}, 0, tenant="acme", correlation_id="d", source="t")
    changed = outcome_event({**TICKETS, "quantity": "181"}, 0, tenant="acme", correlation_id="d", source="t")
    assert first.event_id == again.event_id == changed.event_id
    assert same_content(first, again)
    assert not same_content(first, changed)


def test_csv_not_utf8_is_rejected() -> None:
    data = b"use_case,outcome_kind,quantity,unit,occurred_at\nsupport-caf\xe9,tickets,1,tickets,2026-10-07T23:00:00Z\n"
    with pytest.raises(OutcomeRejected) as error:
        list(rows_from_csv(data))
    assert error.value.field_path == "(encoding)"
    # The header is 47 bytes plus a newline, then "support-caf" is 11 bytes, so 0xe9 is at offset 48 + 11 = 59.
    assert "byte 0xe9 at offset 59 (line 2)" in error.value.reason


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
    ],
)
def test_csv_file_errors(data: bytes, reason: str) -> None:
    with pytest.raises(OutcomeRejected) as raised:
        list(rows_from_csv(data))

    assert raised.value.field_path == "(file)"
    assert raised.value.reason == reason
