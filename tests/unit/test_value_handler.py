"""The value handler over a real SQLite database: unit economics, trend updates, replays and the register."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from services.value.handlers import ValueHandler
from services.value.tables import TABLES, ValueUnitEconomics
from services.value.use_cases import UseCase, UseCaseRegister
from shared.events import ValueMapped
from tests.unit.factories import cost_event, incoming, outcome_event, sqlite_outbox

D = Decimal
REGISTER = UseCaseRegister(
    [
        UseCase(
            name="support-assistant",
            currency="USD",
            owner="support-platform@example.com",
            outcome_kind="tickets_resolved",
            value_per_outcome=D("4.00"),
            investment=D("780"),
        ),
        UseCase(name="model-training", owner="ml-platform@example.com"),
    ]
)


def mapped(publisher: Any) -> list[ValueMapped]:
    return [ValueMapped.model_validate_json(event.value) for event in publisher.sent]


async def rows(handler: ValueHandler) -> dict[tuple[str, str], Any]:
    table = ValueUnitEconomics.__table__  # type: ignore[attr-defined]
    async with handler.database.engine.connect() as connection:
        result = (await connection.execute(select(table))).all()
    return {(row.use_case, row.period): row for row in result}


async def test_two_months_with_trend_and_late_cost(tmp_path: Path) -> None:
    database, outbox, publisher = await sqlite_outbox(tmp_path, "value", TABLES)
    handler = ValueHandler(database, outbox, "USD", REGISTER)
    october = [
        cost_event("u1", day="2026-10-05", amount="6.00", use_case="support-assistant"),
        cost_event("u2", day="2026-10-20", amount="4.00", use_case="support-assistant"),
    ]
    await handler.handle_costs(incoming(*october))
    await handler.handle_outcomes(
        incoming(outcome_event("o1", use_case="support-assistant", when="2026-10-31T12:00", quantity="100"))
    )
    await handler.handle_costs(
        incoming(cost_event("u3", day="2026-11-02", amount="9.00", use_case="support-assistant"))
    )
    await handler.handle_outcomes(
        incoming(outcome_event("o2", use_case="support-assistant", when="2026-11-30T12:00", quantity="120"))
    )

    stored = await rows(handler)
    oct_row, nov_row = stored[("support-assistant", "2026-10")], stored[("support-assistant", "2026-11")]
    assert oct_row.cost_per_outcome == D("0.100000")  # (6.00 + 4.00) / 100
    assert oct_row.value_amount == D("400.00")  # 100 tickets × 4.00 from the register
    assert oct_row.roi_percent == D("3900.00")  # (400 − 10) / 10 × 100
    assert oct_row.payback_months == D("2.00")  # 780 / 390
    assert oct_row.owner == "support-platform@example.com"
    assert nov_row.cost_per_outcome == D("0.075000")  # 9.00 / 120
    assert nov_row.roi_percent == D("5233.33")  # (480 − 9) / 9 × 100 = 5,233.33...
    assert nov_row.previous_cost_per_outcome == D("0.100000")
    assert nov_row.cost_per_outcome_change_percent == D("-25.00")  # (0.075 − 0.10) / 0.10 × 100

    # A late October cost changes October and, through its trend, November.
    publisher.sent.clear()
    await handler.handle_costs(
        incoming(cost_event("u4", day="2026-10-28", amount="2.00", use_case="support-assistant"))
    )
    events = {event.period: event for event in mapped(publisher)}
    assert set(events) == {"2026-10", "2026-11"}
    assert events["2026-10"].cost_per_outcome is not None
    assert events["2026-10"].cost_per_outcome.amount == D("0.120000")  # 12.00 / 100
    assert events["2026-10"].roi_percent == D("3233.33")  # (400 − 12) / 12 × 100
    assert events["2026-11"].cost_per_outcome_change_percent == D("-37.50")  # (0.075 − 0.12) / 0.12 × 100
    # r1 came with the outcomes (the cost-only month was a separate no-outcome record), r2 has the new trend.
    assert events["2026-11"].event_id.endswith(":r2")

    # Replaying every event changes nothing and publishes nothing.
    publisher.sent.clear()
    await handler.handle_costs(incoming(*october))
    await handler.handle_outcomes(
        incoming(outcome_event("o1", use_case="support-assistant", when="2026-10-31T12:00", quantity="100"))
    )
    assert publisher.sent == []
    await database.dispose()


async def test_spend_without_outcomes_is_value_unlinked(tmp_path: Path) -> None:
    database, outbox, publisher = await sqlite_outbox(tmp_path, "value", TABLES)
    handler = ValueHandler(database, outbox, "USD", REGISTER)
    await handler.handle_costs(incoming(cost_event("g1", day="2024-09-27", amount="1.624", use_case="model-training")))
    [event] = mapped(publisher)
    assert event.value_linked is False
    assert event.owner == "ml-platform@example.com"
    assert event.cost.amount == D("1.624")
    assert event.cost_per_outcome is None
    assert event.roi_percent is None
    await database.dispose()


async def test_recompute_all_applies_a_changed_register(tmp_path: Path) -> None:
    database, outbox, publisher = await sqlite_outbox(tmp_path, "value", TABLES)
    first = ValueHandler(database, outbox, "USD", REGISTER)
    await first.handle_costs(incoming(cost_event("u1", day="2026-10-05", amount="10", use_case="support-assistant")))
    await first.handle_outcomes(
        incoming(outcome_event("o1", use_case="support-assistant", when="2026-10-06T00:00", quantity="100"))
    )
    assert await first.recompute_all() == 0  # nothing changed

    publisher.sent.clear()
    dearer = UseCaseRegister(
        [UseCase(name="support-assistant", currency="USD", outcome_kind="tickets_resolved", value_per_outcome=D(5))]
    )
    assert await ValueHandler(database, outbox, "USD", dearer).recompute_all() == 1
    [event] = mapped(publisher)
    assert event.value is not None
    assert event.value.amount == D("500")  # 100 × 5
    assert event.owner is None  # the new register names no owner
    await database.dispose()
