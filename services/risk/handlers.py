"""Risk's handler: record cost events, then raise budget and unpriced-usage findings from the stored totals.

Findings are computed from risk's own table of cost entries, never from running
counters, so a replayed or doubled cost event changes no total. A budget finding
has an id derived from (tenant, budget, month, threshold) and is raised once; an
unpriced-usage finding has one id per (tenant, provider, model) and is updated
with a new revision when more unpriced usage arrives.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.risk.budgets import BUDGET_CATEGORIES, Budget
from services.risk.tables import RiskCostEntry, RiskFinding
from shared.consumer import Incoming
from shared.db import Database, insert_new_rows, replace_older_revisions
from shared.events import TOKEN_BUCKETS, CostAllocated, CostStatus, FindingStatus, RiskFlagged, Severity, utc_now
from shared.kafka import OutgoingEvent
from shared.logging import get_logger
from shared.outbox import Outbox
from shared.topics import Topic

log = get_logger(__name__)

FINDING_NAMESPACE = uuid.UUID("0b7e4a52-93c1-5f0e-8d2a-4c6b1e9f3a70")
MAX_EVIDENCE_IDS = 200
NOT_REPORTED = "(not reported)"


def finding_id(*parts: str) -> str:
    return str(uuid.uuid5(FINDING_NAMESPACE, "|".join(parts)))


def entry_rows(cost: CostAllocated) -> list[dict[str, Any]]:
    """One row per share: the owner and the amount that owner carries."""
    tokens = sum(int(quantity) for bucket, quantity in cost.quantities.items() if bucket in TOKEN_BUCKETS)
    return [
        {
            "usage_event_id": cost.usage_event_id,
            "share_index": index,
            "cost_event_id": cost.event_id,
            "revision": cost.revision,
            "tenant": cost.tenant,
            "month": cost.period_start.strftime("%Y-%m"),
            "team": share.allocation.team,
            "cost_centre": share.allocation.cost_centre,
            "use_case": share.allocation.use_case,
            "provider": cost.provider,
            "model": cost.model,
            "status": cost.status.value,
            "charge_category": cost.charge_category.value,
            "unpriced_reason": cost.unpriced_reason,
            "cost_amount": share.amount.amount if share.amount else None,
            "cost_currency": share.amount.currency if share.amount else None,
            "token_count": tokens if index == 0 else 0,
        }
        for index, share in enumerate(cost.shares)
    ]


def _percent(spend: Decimal, amount: Decimal) -> Decimal:
    return (spend * 100 / amount).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


class RiskHandler:
    def __init__(self, database: Database, outbox: Outbox, budgets: Sequence[Budget]) -> None:
        self.database = database
        self.outbox = outbox
        self.budgets = list(budgets)

    async def handle(self, batch: Sequence[Incoming[CostAllocated]]) -> None:
        rows = [row for item in batch for row in entry_rows(item.event)]
        async with self.database.transaction() as connection:
            fresh, replaced = await replace_older_revisions(
                connection, RiskCostEntry.__table__, rows, key="usage_event_id"
            )  # type: ignore[attr-defined]
            touched = fresh + [dict(row._mapping) for row in replaced]
            findings = await self._check_budgets(connection, touched)
            findings += await self._update_unpriced(connection, touched)
            outgoing = [OutgoingEvent.of(Topic.RISK_FLAGGED, finding, key=finding.subject) for finding in findings]
            await self.outbox.add(connection, outgoing)
        for finding in findings:
            log.info(
                "finding.raised",
                kind=finding.kind,
                subject=finding.subject,
                severity=finding.severity.value,
                finding_id=finding.finding_id,
                title=finding.title,
            )
        await self.outbox.send_now(outgoing)

    async def _check_budgets(self, connection: AsyncConnection, fresh: list[dict[str, Any]]) -> list[RiskFlagged]:
        touched = {
            (row["tenant"], row["month"], key, row[key]) for row in fresh for key in ("team", "cost_centre", "use_case")
        }
        findings: list[RiskFlagged] = []
        for budget in self.budgets:
            for tenant, month in sorted(
                {(t, m) for t, m, k, v in touched if (k, v) == (budget.scope_key, budget.scope_value)}
            ):
                findings += await self._check_budget(connection, budget, tenant, month)
        return findings

    async def _check_budget(
        self, connection: AsyncConnection, budget: Budget, tenant: str, month: str
    ) -> list[RiskFlagged]:
        table = RiskCostEntry.__table__  # type: ignore[attr-defined]
        result = await connection.execute(
            select(table.c.cost_event_id, table.c.share_index, table.c.cost_amount, table.c.cost_currency)
            .where(
                table.c.tenant == tenant,
                table.c.month == month,
                table.c[budget.scope_key] == budget.scope_value,
                table.c.status != CostStatus.UNPRICED.value,
                table.c.charge_category.in_(BUDGET_CATEGORIES),
            )
            .order_by(table.c.cost_event_id, table.c.share_index)
        )
        spend = Decimal(0)
        evidence: list[str] = []
        other_currency = 0
        for row in result:
            if row.cost_currency != budget.currency:
                other_currency += 1
                continue
            spend += row.cost_amount
            evidence.append(row.cost_event_id)
        percent = _percent(spend, budget.amount)
        findings: list[RiskFlagged] = []
        for threshold in budget.thresholds:
            if percent < threshold:
                continue
            identifier = finding_id(tenant, "budget", budget.budget_id, month, str(threshold))
            facts = {
                "budget_id": budget.budget_id,
                "period": month,
                "budget": f"{budget.amount} {budget.currency}",
                "spend": f"{spend} {budget.currency}",
                "percent_of_budget": str(percent),
                "threshold_percent": str(threshold),
                "cost_events": str(len(evidence)),
                "cost_events_in_other_currencies": str(other_currency),
            }
            over = threshold >= 100
            finding = RiskFlagged(
                event_id=f"finding:{identifier}:r1",
                occurred_at=utc_now(),
                source="risk",
                tenant=tenant,
                correlation_id=identifier,
                finding_id=identifier,
                kind="budget_threshold",
                severity=Severity.HIGH if over else Severity.MEDIUM,
                status=FindingStatus.OPEN,
                subject=budget.subject,
                owner=budget.owner,
                title=f"{budget.subject} reached {percent}% of budget {budget.budget_id} for {month}",
                facts=facts,
                interpretation=(
                    f"Spend is over the {budget.amount} {budget.currency} budget; "
                    "further usage this month is unbudgeted."
                    if over
                    else f"Spend passed {threshold}% of the budget; "
                    "at this rate the budget may run out before the month ends."
                ),
                evidence_event_ids=tuple(evidence[:MAX_EVIDENCE_IDS]),
            )
            if await self._insert_finding(connection, finding):
                findings.append(finding)
        return findings

    async def _update_unpriced(self, connection: AsyncConnection, fresh: list[dict[str, Any]]) -> list[RiskFlagged]:
        keys = sorted(
            {
                (row["tenant"], row["provider"], row["model"] or NOT_REPORTED)
                for row in fresh
                if row["status"] == CostStatus.UNPRICED.value
            }
        )
        findings = []
        for tenant, provider, model in keys:
            findings.append(await self._unpriced_finding(connection, tenant, provider, model))
        return findings

    async def _unpriced_finding(
        self, connection: AsyncConnection, tenant: str, provider: str, model: str
    ) -> RiskFlagged:
        table = RiskCostEntry.__table__  # type: ignore[attr-defined]
        model_condition = table.c.model.is_(None) if model == NOT_REPORTED else table.c.model == model
        result = await connection.execute(
            select(table.c.usage_event_id, table.c.token_count, table.c.month, table.c.unpriced_reason)
            .where(
                table.c.tenant == tenant,
                table.c.provider == provider,
                model_condition,
                table.c.status == CostStatus.UNPRICED.value,
                table.c.share_index == 0,
            )
            .order_by(table.c.usage_event_id)
        )
        rows = result.all()
        identifier = finding_id(tenant, "unpriced", provider, model)
        months = sorted({row.month for row in rows})
        reasons = sorted({row.unpriced_reason or "" for row in rows})
        facts = {
            "provider": provider,
            "model": model,
            "usage_events": str(len(rows)),
            "tokens": str(sum(row.token_count for row in rows)),
            "months": ",".join(months),
            "reasons": " | ".join(reasons)[:1000],
        }
        existing = (
            await connection.execute(
                select(RiskFinding.__table__.c.revision).where(RiskFinding.__table__.c.finding_id == identifier)  # type: ignore[attr-defined]
            )
        ).scalar_one_or_none()
        revision = (existing or 0) + 1
        finding = RiskFlagged(
            event_id=f"finding:{identifier}:r{revision}",
            occurred_at=utc_now(),
            source="risk",
            tenant=tenant,
            correlation_id=identifier,
            finding_id=identifier,
            kind="unpriced_usage",
            severity=Severity.MEDIUM,
            status=FindingStatus.OPEN,
            subject=f"model:{provider}/{model}",
            title=f"{len(rows)} usage events of {provider}/{model} have no price",
            facts=facts,
            interpretation="This usage is kept out of cost totals until a price applies, so reported spend is "
            "understated; add the model or an alias to the price catalogue, or export usage by model.",
            evidence_event_ids=tuple(row.usage_event_id for row in rows[:MAX_EVIDENCE_IDS]),
        )
        if existing is None:
            await self._insert_finding(connection, finding)
        else:
            await connection.execute(
                update(RiskFinding.__table__)
                .where(RiskFinding.__table__.c.finding_id == identifier)
                .values(  # type: ignore[attr-defined]
                    title=finding.title,
                    facts_json=json.dumps(facts),
                    evidence_json=json.dumps(finding.evidence_event_ids),
                    revision=revision,
                    updated_at=utc_now(),
                )
            )
        return finding

    async def _insert_finding(self, connection: AsyncConnection, finding: RiskFlagged) -> bool:
        now = utc_now()
        inserted = await insert_new_rows(
            connection,
            RiskFinding.__table__,
            [
                {  # type: ignore[attr-defined]
                    "finding_id": finding.finding_id,
                    "tenant": finding.tenant,
                    "kind": finding.kind,
                    "severity": finding.severity.value,
                    "status": finding.status.value,
                    "subject": finding.subject,
                    "owner": finding.owner,
                    "title": finding.title,
                    "facts_json": json.dumps(finding.facts),
                    "interpretation": finding.interpretation,
                    "evidence_json": json.dumps(finding.evidence_event_ids),
                    "revision": 1,
                    "opened_at": now,
                    "updated_at": now,
                }
            ],
            ["finding_id"],
        )
        return bool(inserted)
