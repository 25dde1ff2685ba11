"""Findings from other services' events: reconciliation variance, spend not linked to value, requested tickets."""

from __future__ import annotations

from decimal import Decimal

from services.risk.findings import Detection, finding_id
from shared.events import CostVarianceDetected, FindingStatus, SavingsRecommended, Severity, ValueMapped

HIGH_VARIANCE_PERCENT = Decimal(20)
MEDIUM_VARIANCE_PERCENT = Decimal(5)

# Finding status and note for each final status of a recommendation whose ticket a finding carries.
RECOMMENDATION_CLOSURE = {
    "implemented": (FindingStatus.RESOLVED, "the recommendation was implemented"),
    "dismissed": (FindingStatus.ACCEPTED_RISK, "the recommendation was dismissed"),
}


def variance_detection(event: CostVarianceDetected) -> Detection:
    percent = event.variance_percent
    if percent is None or abs(percent) >= HIGH_VARIANCE_PERCENT:
        severity = Severity.HIGH
    elif abs(percent) >= MEDIUM_VARIANCE_PERCENT:
        severity = Severity.MEDIUM
    else:
        severity = Severity.LOW
    model = event.model or "(all models)"
    currency = event.provider_cost.currency
    # A variance is flagged only beyond both tolerances: more than the amount and more than the percent.
    if event.tolerance_amount is not None:
        tolerance = f"{event.tolerance_amount} {currency} and {event.tolerance_percent}%"
    else:
        tolerance = f"{event.tolerance_percent}%"
    facts = {
        "provider": event.provider,
        "day": event.day,
        "model": model,
        "computed_cost": str(event.computed_cost),
        "provider_cost": str(event.provider_cost),
        "variance": str(event.variance),
        "tolerance_amount": f"{event.tolerance_amount} {currency}" if event.tolerance_amount is not None else "-",
        "variance_percent": str(percent) if percent is not None else "(provider cost is zero)",
        "tolerance_percent": str(event.tolerance_percent),
        "likely_cause": event.likely_cause,
        "variance_event_id": event.event_id,
    }
    return Detection(
        finding_id=finding_id(event.tenant, "variance", event.provider, event.day, event.model or ""),
        tenant=event.tenant,
        kind="reconciliation_variance",
        severity=severity,
        subject=f"provider:{event.provider}",
        title=f"{event.provider} {model} on {event.day}: provider charged {event.provider_cost}, "
        f"aifinops computed {event.computed_cost}",
        facts=facts,
        interpretation=f"The provider's cost differs from the computed cost beyond the {tolerance} tolerance; "
        f"likely cause: {event.likely_cause}. Check the price catalogue and the usage export.",
        evidence_event_ids=(event.event_id, *event.evidence_event_ids),
    )


def value_unlinked_id(event: ValueMapped) -> str:
    return finding_id(event.tenant, "value_unlinked", event.use_case, event.period)


def value_unlinked_detection(event: ValueMapped) -> Detection:
    facts = {
        "use_case": event.use_case,
        "period": event.period,
        "cost": str(event.cost),
        "cost_events": str(event.cost_event_count),
        "outcome_kind": event.outcome_kind,
    }
    return Detection(
        finding_id=value_unlinked_id(event),
        tenant=event.tenant,
        kind="value_unlinked_spend",
        severity=Severity.LOW,
        subject=f"use_case:{event.use_case}",
        title=f"use case {event.use_case} spent {event.cost} in {event.period} with no recorded outcome",
        facts=facts,
        interpretation="Nothing shows what this spend produced; record the use case's business outcomes or "
        "question the spend.",
        evidence_event_ids=(event.event_id,),
    )


def savings_id(event: SavingsRecommended) -> str:
    return finding_id(event.tenant, "savings", event.recommendation_id)


def savings_detection(event: SavingsRecommended) -> Detection:
    facts = {
        "recommendation_id": event.recommendation_id,
        "kind": event.kind.value,
        "scope": event.scope,
        "estimated_monthly_savings": str(event.estimated_monthly_savings),
        "confidence": event.confidence,
        "arithmetic": event.arithmetic[:2000],
        "caveat": event.caveat or "",
        "recommendation_status": event.status,
    }
    return Detection(
        finding_id=savings_id(event),
        tenant=event.tenant,
        kind="savings_recommended",
        severity=Severity.LOW,
        subject=event.scope,
        title=f"save about {event.estimated_monthly_savings} a month: {event.kind.value} for {event.scope}",
        facts=facts,
        interpretation="Someone asked for this saving to be tracked as a ticket; the arithmetic shows how it was "
        "estimated.",
        evidence_event_ids=(event.event_id, *event.evidence_event_ids),
        ticket_requested=True,
    )
