"""Event contracts reject what would corrupt money or usage, and export their schemas."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from shared.events import (
    EVENT_MODELS,
    CostAllocated,
    Evidence,
    Money,
    UsageBucket,
    UsageRecorded,
    event_json_schemas,
    parse_event,
)
from shared.topics import EVENT_TOPICS


def usage(**overrides: object) -> UsageRecorded:
    fields: dict[str, object] = {
        "event_id": "e1",
        "occurred_at": "2025-10-05T00:00:00Z",
        "source": "test",
        "tenant": "acme",
        "correlation_id": "c",
        "provider": "openai",
        "period_start": "2025-10-05T00:00:00Z",
        "period_end": "2025-10-06T00:00:00Z",
        "evidence": Evidence(format="test"),
    }
    fields.update(overrides)
    return UsageRecorded.model_validate(fields)


def test_money_refuses_mixed_currencies() -> None:
    with pytest.raises(ValueError, match="cannot add EUR to USD"):
        Money(amount=Decimal("1"), currency="USD") + Money(amount=Decimal("1"), currency="EUR")


def test_money_keeps_every_digit() -> None:
    total = Money(amount=Decimal("0.1"), currency="USD") + Money(amount=Decimal("0.2"), currency="USD")
    assert total.amount == Decimal("0.3")


def test_money_json_is_a_string() -> None:
    assert Money(amount=Decimal("0.00022500000000000002"), currency="USD").model_dump_json() == (
        '{"amount":"0.00022500000000000002","currency":"USD"}'
    )


@pytest.mark.parametrize("value", ["NaN", "Infinity"])
def test_money_must_be_finite(value: str) -> None:
    with pytest.raises(ValidationError):
        Money(amount=Decimal(value), currency="USD")


def test_negative_usage_is_rejected() -> None:
    with pytest.raises(ValidationError, match="must not be negative"):
        usage(quantities={UsageBucket.OUTPUT_TOKENS: Decimal(-1)})


def test_fractional_tokens_are_rejected() -> None:
    with pytest.raises(ValidationError, match="whole number"):
        usage(quantities={UsageBucket.OUTPUT_TOKENS: Decimal("1.5")})


def test_naive_timestamp_is_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        usage(occurred_at=datetime(2025, 10, 5))


def test_instants_become_utc() -> None:
    event = usage(period_start="2025-10-05T02:00:00+02:00")
    assert event.period_start.isoformat() == "2025-10-05T00:00:00+00:00"


def test_events_are_frozen() -> None:
    event = usage()
    with pytest.raises(ValidationError):
        event.provider = "anthropic"  # type: ignore[misc]


def test_round_trip_through_json() -> None:
    event = usage(quantities={UsageBucket.OUTPUT_TOKENS: Decimal(500)})
    assert parse_event(event.model_dump_json()) == event


def test_unpriced_cost_carries_no_amount() -> None:
    with pytest.raises(ValidationError, match="must not carry a cost"):
        CostAllocated.model_validate(
            {
                "event_id": "cost:e1:r1",
                "occurred_at": "2025-10-05T00:00:00Z",
                "source": "test",
                "tenant": "acme",
                "correlation_id": "c",
                "usage_event_id": "e1",
                "provider": "openai",
                "service_tier": "standard",
                "period_start": "2025-10-05T00:00:00Z",
                "period_end": "2025-10-06T00:00:00Z",
                "dimensions": {},
                "quantities": {},
                "charge_category": "usage",
                "status": "unpriced",
                "cost": {"amount": "0", "currency": "USD"},
                "allocation": {"team": "t", "cost_centre": "c", "rule_id": "r"},
            }
        )


def test_shares_must_add_up_to_the_cost() -> None:
    base = {
        "event_id": "cost:e1:r1",
        "occurred_at": "2025-10-05T00:00:00Z",
        "source": "test",
        "tenant": "acme",
        "correlation_id": "c",
        "usage_event_id": "e1",
        "provider": "openai",
        "service_tier": "standard",
        "period_start": "2025-10-05T00:00:00Z",
        "period_end": "2025-10-06T00:00:00Z",
        "dimensions": {},
        "quantities": {},
        "charge_category": "usage",
        "status": "priced",
        "cost": {"amount": "1.00", "currency": "USD"},
        "allocation": {"team": "a", "cost_centre": "c", "rule_id": "r"},
    }
    share = {"allocation": {"team": "a", "cost_centre": "c", "rule_id": "r"}, "fraction": "0.5"}
    even = CostAllocated.model_validate(
        {
            **base,
            "shares": [
                {**share, "amount": {"amount": "0.50", "currency": "USD"}},
                {**share, "amount": {"amount": "0.50", "currency": "USD"}},
            ],
        }
    )
    assert len(even.shares) == 2
    with pytest.raises(ValidationError, match="add up to exactly the cost"):
        CostAllocated.model_validate(
            {
                **base,
                "shares": [
                    {**share, "amount": {"amount": "0.50", "currency": "USD"}},
                    {**share, "amount": {"amount": "0.49", "currency": "USD"}},
                ],
            }
        )
    single = CostAllocated.model_validate(base)
    assert single.shares[0].fraction == 1
    assert single.shares[0].amount == single.cost


def test_every_event_has_a_schema_and_a_topic() -> None:
    schemas = event_json_schemas()
    assert set(schemas) == set(EVENT_MODELS)
    assert set(EVENT_TOPICS) == set(EVENT_MODELS)
    for event_type, schema in schemas.items():
        assert "tenant" in schema["required"], event_type
        assert schema["properties"]["schema_version"]["const"] == 1
