"""Optimizer's handler: store priced usage, then re-estimate the recommendations whose usage changed.

A recommendation's id comes from its kind and scope, so an open recommendation is
updated (with a new revision) rather than repeated when more usage arrives.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.optimizer.estimates import Estimate, UsageSample, batch_tier_estimate, cheaper_model_estimate
from services.optimizer.policy import Alternative, OptimizerPolicy
from services.optimizer.tables import OptimizerRecommendation, OptimizerUsage
from shared.catalogue import PriceCatalogue
from shared.consumer import Incoming
from shared.db import Database, replace_older_revisions, upsert
from shared.events import (
    CostAllocated,
    CostStatus,
    Money,
    RecommendationKind,
    SavingsRecommended,
    ServiceTier,
    UsageBucket,
    utc_now,
)
from shared.kafka import OutgoingEvent
from shared.logging import get_logger
from shared.outbox import Outbox
from shared.topics import Topic

log = get_logger(__name__)

RECOMMENDATION_NAMESPACE = uuid.UUID("9d3a7c15-2b6e-5f48-a0c1-6e8d4f2b7a93")


def usage_row(cost: CostAllocated) -> dict[str, Any]:
    return {
        "usage_event_id": cost.usage_event_id,
        "cost_event_id": cost.event_id,
        "revision": cost.revision,
        "status": cost.status.value,
        "tenant": cost.tenant,
        "team": cost.allocation.team,
        "use_case": cost.allocation.use_case,
        "provider": cost.provider,
        "priced_model": cost.priced_model,
        "service_tier": cost.service_tier.value,
        "month": cost.period_start.strftime("%Y-%m"),
        "period_start": cost.period_start,
        "quantities_json": json.dumps({bucket.value: str(value) for bucket, value in cost.quantities.items()}),
        "request_count": cost.request_count,
        "cost_amount": cost.cost.amount if cost.cost else None,
        "cost_currency": cost.cost.currency if cost.cost else None,
    }


class OptimizerHandler:
    def __init__(
        self,
        database: Database,
        outbox: Outbox,
        catalogue: PriceCatalogue,
        policy: OptimizerPolicy,
        alternatives: dict[tuple[str, str], Alternative],
    ) -> None:
        self.database = database
        self.outbox = outbox
        self.catalogue = catalogue
        self.policy = policy
        self.alternatives = alternatives

    async def handle(self, batch: Sequence[Incoming[CostAllocated]]) -> None:
        rows = [usage_row(item.event) for item in batch]
        async with self.database.transaction() as connection:
            fresh, replaced = await replace_older_revisions(
                connection, OptimizerUsage.__table__, rows, key="usage_event_id"
            )  # type: ignore[attr-defined]
            scopes = {(row["tenant"], row["team"], row["provider"], row["priced_model"]) for row in fresh}
            scopes |= {(row.tenant, row.team, row.provider, row.priced_model) for row in replaced}
            scopes = sorted(scope for scope in scopes if scope[3] is not None)
            recommendations: list[SavingsRecommended] = []
            for scope in scopes:
                recommendations += await self._recompute(connection, *scope)
            outgoing = [OutgoingEvent.of(Topic.SAVINGS_RECOMMENDED, item, key=item.scope) for item in recommendations]
            await self.outbox.add(connection, outgoing)
        for item in recommendations:
            log.info(
                "recommendation.estimated",
                kind=item.kind.value,
                scope=item.scope,
                savings=str(item.estimated_monthly_savings),
            )
        await self.outbox.send_now(outgoing)

    async def _recompute(
        self, connection: AsyncConnection, tenant: str, team: str, provider: str, model: str
    ) -> list[SavingsRecommended]:
        table = OptimizerUsage.__table__  # type: ignore[attr-defined]
        rows = (
            await connection.execute(
                select(table)
                .where(
                    table.c.tenant == tenant,
                    table.c.team == team,
                    table.c.provider == provider,
                    table.c.priced_model == model,
                    table.c.status == CostStatus.PRICED.value,
                )
                .order_by(table.c.period_start, table.c.usage_event_id)
            )
        ).all()
        results: list[SavingsRecommended] = []
        if not rows:
            return results

        standard_non_interactive = [
            row
            for row in rows
            if row.service_tier == ServiceTier.STANDARD.value and row.use_case in self.policy.non_interactive_use_cases
        ]
        for use_case in sorted({row.use_case for row in standard_non_interactive}):
            month, samples = _latest_month([row for row in standard_non_interactive if row.use_case == use_case])
            estimate = batch_tier_estimate(provider, model, month, samples, self.catalogue)
            if estimate is not None:
                scope = f"team:{team} use_case:{use_case} model:{provider}/{model}"
                results += await self._save(
                    connection,
                    tenant,
                    RecommendationKind.BATCH_TIER,
                    scope,
                    estimate,
                    confidence="high",
                    caveat=f"Use case {use_case} is declared non-interactive; batch results can take up to 24 hours.",
                )

        alternative = self.alternatives.get((provider, model))
        if alternative is not None:
            for tier in sorted({row.service_tier for row in rows}):
                month, samples = _latest_month([row for row in rows if row.service_tier == tier])
                estimate = cheaper_model_estimate(
                    provider, model, alternative, ServiceTier(tier), month, samples, self.catalogue, self.policy
                )
                if estimate is not None:
                    scope = f"team:{team} model:{provider}/{model} tier:{tier}"
                    results += await self._save(
                        connection,
                        tenant,
                        RecommendationKind.CHEAPER_MODEL,
                        scope,
                        estimate,
                        confidence="low",
                        caveat=alternative.caveat,
                    )
        return results

    async def _save(
        self,
        connection: AsyncConnection,
        tenant: str,
        kind: RecommendationKind,
        scope: str,
        estimate: Estimate,
        *,
        confidence: str,
        caveat: str | None,
    ) -> list[SavingsRecommended]:
        table = OptimizerRecommendation.__table__  # type: ignore[attr-defined]
        identifier = str(uuid.uuid5(RECOMMENDATION_NAMESPACE, f"{tenant}|{kind.value}|{scope}"))
        previous = (await connection.execute(select(table).where(table.c.recommendation_id == identifier))).first()
        if (
            previous is not None
            and previous.savings_amount == estimate.savings
            and previous.arithmetic == estimate.arithmetic
        ):
            return []
        revision = previous.revision + 1 if previous is not None else 1
        await connection.execute(
            upsert(
                connection,
                table,
                ["recommendation_id"],
                ["savings_amount", "currency", "arithmetic", "evidence_json", "revision", "updated_at"],
            ),
            [
                {
                    "recommendation_id": identifier,
                    "tenant": tenant,
                    "kind": kind.value,
                    "scope": scope,
                    "savings_amount": estimate.savings,
                    "currency": estimate.currency,
                    "confidence": confidence,
                    "arithmetic": estimate.arithmetic,
                    "caveat": caveat,
                    "evidence_json": json.dumps(estimate.evidence),
                    "status": "open",
                    "revision": revision,
                    "updated_at": utc_now(),
                }
            ],
        )
        return [
            SavingsRecommended(
                event_id=f"recommendation:{identifier}:r{revision}",
                occurred_at=utc_now(),
                source="optimizer",
                tenant=tenant,
                correlation_id=identifier,
                recommendation_id=identifier,
                kind=kind,
                scope=scope,
                estimated_monthly_savings=Money(amount=estimate.savings, currency=estimate.currency),
                confidence=confidence,  # type: ignore[arg-type]
                arithmetic=estimate.arithmetic,
                caveat=caveat,
                evidence_event_ids=estimate.evidence[:200],
            )
        ]


def _latest_month(rows: Sequence[Any]) -> tuple[str, list[UsageSample]]:
    month = max(row.month for row in rows)
    samples = [
        UsageSample(
            cost_event_id=row.cost_event_id,
            usage_event_id=row.usage_event_id,
            period_start=row.period_start,
            quantities={UsageBucket(name): Decimal(value) for name, value in json.loads(row.quantities_json).items()},
            request_count=row.request_count,
        )
        for row in rows
        if row.month == month
    ]
    return month, samples
