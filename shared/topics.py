"""Kafka topic names, in one place so producers and consumers cannot drift apart.

Every topic is keyed by ``<tenant>|<stable key>`` (see ``partition_key``), so one
tenant's events for one key stay in order on one partition while a consumer group
spreads tenants and keys over its members.
"""

from __future__ import annotations

from enum import StrEnum


class Topic(StrEnum):
    USAGE_RECORDED = "aifinops.usage.recorded.v1"
    PROVIDER_COST_REPORTED = "aifinops.cost.provider-reported.v1"
    SEAT_ACTIVITY_REPORTED = "aifinops.seats.activity-reported.v1"
    SEAT_ENTITLEMENT_REPORTED = "aifinops.seats.entitlement-reported.v1"
    GPU_UTILISATION_REPORTED = "aifinops.gpu.utilisation-reported.v1"
    COST_ALLOCATED = "aifinops.cost.allocated.v1"
    COST_VARIANCE_DETECTED = "aifinops.cost.variance-detected.v1"
    RISK_FLAGGED = "aifinops.risk.flagged.v1"
    OUTCOME_RECORDED = "aifinops.value.outcome-recorded.v1"
    VALUE_MAPPED = "aifinops.value.mapped.v1"
    SAVINGS_RECOMMENDED = "aifinops.optimizer.savings-recommended.v1"
    DEAD_LETTER = "aifinops.dead-letter.v1"


#: The topic that carries each event type.
EVENT_TOPICS: dict[str, Topic] = {
    "usage.recorded": Topic.USAGE_RECORDED,
    "provider_cost.reported": Topic.PROVIDER_COST_REPORTED,
    "seat.activity_reported": Topic.SEAT_ACTIVITY_REPORTED,
    "seat.entitlement_reported": Topic.SEAT_ENTITLEMENT_REPORTED,
    "gpu.utilisation_reported": Topic.GPU_UTILISATION_REPORTED,
    "cost.allocated": Topic.COST_ALLOCATED,
    "cost.variance_detected": Topic.COST_VARIANCE_DETECTED,
    "risk.flagged": Topic.RISK_FLAGGED,
    "outcome.recorded": Topic.OUTCOME_RECORDED,
    "value.mapped": Topic.VALUE_MAPPED,
    "savings.recommended": Topic.SAVINGS_RECOMMENDED,
    "dead_letter.recorded": Topic.DEAD_LETTER,
}

#: Partitions created for every topic by `aifinops` itself (demo, tests, bench).
#: A deployed cluster may use more; keys keep per-key order whatever the count.
DEFAULT_PARTITIONS = 4


def partition_key(tenant: str, key: str) -> bytes:
    """Build the record key that decides the partition: tenant first, then a stable key."""
    return f"{tenant}|{key}".encode()


#: Which topics each consuming service reads; each (service, topic) pair is one consumer group.
SUBSCRIPTIONS: dict[str, tuple[Topic, ...]] = {
    "ingest": (Topic.DEAD_LETTER,),
    "allocation": (Topic.USAGE_RECORDED, Topic.PROVIDER_COST_REPORTED),
    "risk": (
        Topic.COST_ALLOCATED,
        Topic.COST_VARIANCE_DETECTED,
        Topic.SEAT_ACTIVITY_REPORTED,
        Topic.SEAT_ENTITLEMENT_REPORTED,
        Topic.VALUE_MAPPED,
        Topic.SAVINGS_RECOMMENDED,
    ),
    "value": (Topic.COST_ALLOCATED, Topic.OUTCOME_RECORDED),
    "optimizer": (
        Topic.COST_ALLOCATED,
        Topic.SEAT_ACTIVITY_REPORTED,
        Topic.SEAT_ENTITLEMENT_REPORTED,
        Topic.GPU_UTILISATION_REPORTED,
    ),
}


def group_id(service: str, topic: str) -> str:
    """Name the consumer group of one service on one topic, such as 'aifinops-risk-cost-allocated'."""
    return f"aifinops-{service}-{'-'.join(topic.split('.')[1:-1])}"
