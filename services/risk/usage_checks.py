"""Checks of every usage line, whichever path it came through: policy, shadow AI and unpriced usage.

When a cost share is stored, ``classify`` decides whether it is AI usage, which vendor sold it, whether a
sandbox covers it, which policy rule it breaks and whether anyone owns it. It writes those decisions into the
row as finding ids. The detections below rebuild each finding from every stored row with that id, so totals
come from the table, never from counters, and a replayed event changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.risk.budgets import BUDGET_CATEGORIES, Budget, sandbox_for
from services.risk.findings import Detection, finding_id
from services.risk.periods import local_day
from services.risk.policy import Policy, UsageFacts
from services.risk.tables import RiskCostEntry
from services.risk.vendors import AiVendors
from shared.events import CostStatus, Severity

UNALLOCATED = "unallocated"
NOT_REPORTED = "(not reported)"
NO_OWNER_KEY = "(no project, key or workspace reported)"
OWNER_DIMENSIONS = ("api_key_id", "project_id", "workspace_id", "account_id", "user_id", "resource_id")
SENSITIVE_CLASSIFICATIONS = frozenset({"confidential", "restricted", "secret"})

ENTRIES = RiskCostEntry.__table__  # type: ignore[attr-defined]


def classify(
    row: dict[str, Any],
    dimensions: Mapping[str, Any],
    *,
    vendors: AiVendors,
    policy: Policy | None,
    budgets: Sequence[Budget],
    zone: ZoneInfo,
) -> None:
    """Write the AI vendor, sandbox, policy and ownership decisions of one cost-share row into it."""
    tenant = row["tenant"]
    row["ai_vendor"] = vendors.vendor_of(row["provider"], row["service"], row["model"])
    row["sandbox_id"] = sandbox_for(budgets, row)
    owner = next((f"{name}={dimensions[name]}" for name in OWNER_DIMENSIONS if dimensions.get(name)), NO_OWNER_KEY)
    row["owner_key"] = owner
    if row["ai_vendor"] is None:
        return

    unowned = row["team"] == UNALLOCATED
    if unowned:
        row["unowned_key"] = finding_id(tenant, "unowned", row["provider"], owner)
    if policy is None:
        return
    if not policy.lists_vendor(row["provider"], row["service"]):
        row["unlisted_key"] = finding_id(tenant, "unlisted", row["ai_vendor"])
        return
    if unowned or row["sandbox_id"] is not None:
        return  # unowned usage is shadow AI; sandboxes are governed by their cap alone
    usage = UsageFacts(
        team=row["team"],
        use_case=row["use_case"],
        provider=row["provider"],
        service=row["service"],
        model=row["model"],
        priced_model=row["priced_model"],
        region=row["region"],
        day=local_day(row["usage_start"], zone),
    )
    violation = policy.check(usage)
    if violation is None:
        return
    row["policy_rule"] = violation.rule
    row["policy_classification"] = violation.classification
    row["policy_reason"] = violation.reason
    row["policy_key"] = finding_id(
        tenant, "policy", row["team"], row["provider"], row["model_key"], row["region"] or "", violation.rule
    )


def model_key(model: str | None, priced_model: str | None, service: str | None) -> str:
    """Name the model of a series: the catalogue model, else the reported one, else the billed service."""
    return priced_model or model or (f"service:{service}" if service else NOT_REPORTED)


def _spend(rows: Sequence[Any], *, credits: bool = False) -> str:
    """Sum spend (or, with ``credits``, credits and refunds) per currency, as budgets count them."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        if row.cost_amount is not None and (row.charge_category in BUDGET_CATEGORIES) != credits:
            totals[row.cost_currency] += row.cost_amount
    return ", ".join(f"{amount} {currency}" for currency, amount in sorted(totals.items())) or "none"


def _days(rows: Sequence[Any]) -> tuple[str, str]:
    starts: list[datetime] = [row.usage_start for row in rows]
    return min(starts).date().isoformat(), max(starts).date().isoformat()


async def _rows_with(connection: AsyncConnection, column: str, key: str) -> list[Any]:
    result = await connection.execute(
        select(ENTRIES).where(ENTRIES.c[column] == key).order_by(ENTRIES.c.usage_start, ENTRIES.c.cost_event_id)
    )
    return list(result)


async def policy_detection(connection: AsyncConnection, key: str, owners: Mapping[str, str]) -> Detection | None:
    rows = await _rows_with(connection, "policy_key", key)
    if not rows:
        return None
    first = rows[0]
    earliest, latest = _days(rows)
    classification = first.policy_classification
    facts = {
        "team": first.team,
        "provider": first.provider,
        "model": first.model or NOT_REPORTED,
        "region": first.region or NOT_REPORTED,
        "rule": first.policy_rule,
        "classification": classification,
        "reason": first.policy_reason,
        "usage_events": str(len({row.usage_event_id for row in rows})),
        "spend": _spend(rows),
        "credits_and_refunds": _spend(rows, credits=True),
        "unpriced_events": str(sum(1 for row in rows if row.status == CostStatus.UNPRICED.value)),
        "first_day": earliest,
        "last_day": latest,
    }
    model = first.model or first.model_key
    return Detection(
        finding_id=key,
        tenant=first.tenant,
        kind="policy_violation",
        severity=Severity.HIGH if classification in SENSITIVE_CLASSIFICATIONS else Severity.MEDIUM,
        subject=f"team:{first.team}",
        title=f"team {first.team} used {first.provider}/{model} against policy rule {first.policy_rule}",
        facts=facts,
        interpretation=f"This usage is not approved for {classification} data of team {first.team}; move the "
        "workload to an approved model or region, or record an exception with an expiry date.",
        evidence_event_ids=tuple(row.cost_event_id for row in rows),
        owner=owners.get(first.team),
        occurrence=facts["usage_events"],
    )


async def unowned_detection(connection: AsyncConnection, key: str) -> Detection | None:
    rows = await _rows_with(connection, "unowned_key", key)
    if not rows:
        return None
    first = rows[0]
    earliest, latest = _days(rows)
    facts = {
        "provider": first.provider,
        "vendor": first.ai_vendor or first.provider,
        "owner_key": first.owner_key,
        "usage_events": str(len({row.usage_event_id for row in rows})),
        "spend": _spend(rows),
        "credits_and_refunds": _spend(rows, credits=True),
        "unpriced_events": str(sum(1 for row in rows if row.status == CostStatus.UNPRICED.value)),
        "tokens": str(sum(row.token_count for row in rows)),
        "models": ", ".join(sorted({row.model_key for row in rows})),
        "first_day": earliest,
        "last_day": latest,
    }
    return Detection(
        finding_id=key,
        tenant=first.tenant,
        kind="shadow_ai_unowned",
        severity=Severity.MEDIUM,
        subject=f"owner:{first.provider}/{first.owner_key}",
        title=f"{facts['usage_events']} usage events of {first.provider} ({first.owner_key}) have no owner",
        facts=facts,
        interpretation="No allocation rule names an owner for this AI usage, so nobody reviews it or pays for it; "
        "find who holds the key or project and add an allocation rule, or revoke it.",
        evidence_event_ids=tuple(row.cost_event_id for row in rows),
        occurrence=facts["usage_events"],
    )


async def unlisted_detection(connection: AsyncConnection, key: str) -> Detection | None:
    rows = await _rows_with(connection, "unlisted_key", key)
    if not rows:
        return None
    first = rows[0]
    earliest, latest = _days(rows)
    services = sorted({f"{row.provider}/{row.service or NOT_REPORTED}" for row in rows})
    facts = {
        "vendor": first.ai_vendor,
        "seen_as": ", ".join(services),
        "teams": ", ".join(sorted({row.team for row in rows})),
        "usage_events": str(len({row.usage_event_id for row in rows})),
        "spend": _spend(rows),
        "credits_and_refunds": _spend(rows, credits=True),
        "first_day": earliest,
        "last_day": latest,
    }
    return Detection(
        finding_id=key,
        tenant=first.tenant,
        kind="shadow_ai_vendor",
        severity=Severity.HIGH,
        subject=f"vendor:{first.ai_vendor}",
        title=f"AI vendor {first.ai_vendor} appears in bills but no policy lists it",
        facts=facts,
        interpretation="This AI service is paid for but no policy rule or exception names it, so nobody approved "
        "it for any data; review it and add it to the policy or stop it.",
        evidence_event_ids=tuple(row.cost_event_id for row in rows),
        occurrence=facts["usage_events"],
    )


async def unpriced_detection(connection: AsyncConnection, tenant: str, provider: str, model: str) -> Detection:
    model_condition = ENTRIES.c.model.is_(None) if model == NOT_REPORTED else ENTRIES.c.model == model
    result = await connection.execute(
        select(ENTRIES.c.usage_event_id, ENTRIES.c.token_count, ENTRIES.c.month, ENTRIES.c.unpriced_reason)
        .where(
            ENTRIES.c.tenant == tenant,
            ENTRIES.c.provider == provider,
            model_condition,
            ENTRIES.c.status == CostStatus.UNPRICED.value,
            ENTRIES.c.share_index == 0,
        )
        .order_by(ENTRIES.c.usage_event_id)
    )
    rows = result.all()
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
    return Detection(
        finding_id=finding_id(tenant, "unpriced", provider, model),
        tenant=tenant,
        kind="unpriced_usage",
        severity=Severity.MEDIUM,
        subject=f"model:{provider}/{model}",
        title=f"{len(rows)} usage events of {provider}/{model} have no price",
        facts=facts,
        interpretation="This usage is kept out of cost totals until a price applies, so reported spend is "
        "understated; add the model or an alias to the price catalogue, or export usage by model.",
        evidence_event_ids=tuple(row.usage_event_id for row in rows),
        occurrence=facts["usage_events"],
    )
