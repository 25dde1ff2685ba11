"""Committed spend: how much of each contract's commitment the tenant's usage has drawn down.

Drawdown sums the cost of the contract provider's usage (priced or billed, charge
category usage) whose attribution instant falls in the contract term. It is in the
commitment's currency: costs in another currency are converted at the day's rate,
or listed apart when no rate exists. The projection assumes spend goes on at the average daily rate
of the term so far, and is an estimate.

Drawdown and projection are taken as of one instant, normally the data clock (``data_clock``): the end
of the tenant's newest usage, the same cut-off risk's forecasts and commitment findings use. Usage after
that instant is not drawn down.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import select

from services.allocation.fx import FxTable
from services.allocation.ledger import LEDGER
from services.allocation.terms import TenantTerms
from shared.db import Database
from shared.events import Money


@dataclass(frozen=True)
class Drawdown:
    contract_id: str
    provider: str
    committed: Money
    drawn: Money
    unconverted: dict[str, Decimal]
    term_elapsed_percent: Decimal | None
    projected_at_term_end: Money | None

    @property
    def remaining(self) -> Money:
        return Money(amount=self.committed.amount - self.drawn.amount, currency=self.committed.currency)

    @property
    def drawn_percent(self) -> Decimal:
        return (self.drawn.amount * 100 / self.committed.amount).quantize(Decimal("0.01"), ROUND_HALF_EVEN)


DAY_OR_LESS = timedelta(days=1)
CLOCK_ROWS = 500


async def data_clock(database: Database, tenant: str) -> datetime | None:
    """Return the end of the tenant's newest usage line of a day or less, or None without usage.

    Longer lines (a monthly seat or reservation fee) end at their month's end the day they are billed, so they
    would move the clock past the data. The rule is the one of risk's ``_data_clock`` in services/risk/handlers.py.
    """
    async with database.engine.connect() as connection:
        rows = (
            await connection.execute(
                select(LEDGER.c.period_start, LEDGER.c.period_end)
                .where(LEDGER.c.tenant == tenant, LEDGER.c.charge_category == "usage")
                .order_by(LEDGER.c.period_end.desc())
                .limit(CLOCK_ROWS)
            )
        ).all()
    for start, end in rows:
        if end - start <= DAY_OR_LESS:
            return end
    return rows[0].period_end if rows else None


async def drawdowns(database: Database, terms: TenantTerms, now: datetime, fx: FxTable | None = None) -> list[Drawdown]:
    """Compute the drawdown of every contract of a tenant that commits to a spend."""
    results: list[Drawdown] = []
    async with database.engine.connect() as connection:
        for contract in terms.contracts:
            if contract.committed_spend is None:
                continue
            currency = contract.committed_spend.currency
            query = select(
                LEDGER.c.cost_amount, LEDGER.c.cost_currency, LEDGER.c.period_start, LEDGER.c.period_end
            ).where(
                LEDGER.c.tenant == terms.tenant,
                LEDGER.c.provider == contract.provider,
                LEDGER.c.charge_category == "usage",
                LEDGER.c.cost_amount.is_not(None),
            )
            drawn = Decimal(0)
            unconverted: dict[str, Decimal] = {}
            for row in (await connection.execute(query)).all():
                middle = row.period_start + (row.period_end - row.period_start) / 2
                if not contract.covers(middle) or middle >= now:
                    continue
                money = Money(amount=row.cost_amount, currency=row.cost_currency)
                converted = fx.convert(money, currency, middle.date()) if fx else None
                if money.currency == currency:
                    drawn += money.amount
                elif converted is not None:
                    drawn += converted.amount
                else:
                    unconverted[money.currency] = unconverted.get(money.currency, Decimal(0)) + money.amount
            elapsed, projected = _projection(contract.starts, contract.ends, now, drawn)
            results.append(
                Drawdown(
                    contract_id=contract.contract_id,
                    provider=contract.provider,
                    committed=contract.committed_spend,
                    drawn=Money(amount=drawn, currency=currency),
                    unconverted=unconverted,
                    term_elapsed_percent=elapsed,
                    projected_at_term_end=Money(amount=projected, currency=currency) if projected is not None else None,
                )
            )
    return results


def _projection(
    starts: datetime, ends: datetime | None, now: datetime, drawn: Decimal
) -> tuple[Decimal | None, Decimal | None]:
    if ends is None:
        return None, None
    term = Decimal((ends - starts).total_seconds())
    passed = min(max(Decimal((now - starts).total_seconds()), Decimal(0)), term)
    elapsed = (passed * 100 / term).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
    if passed == 0:
        return elapsed, None
    projected = (drawn * term / passed).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
    return elapsed, projected
