"""Run the risk service: consume cost, variance, seat, value and savings events, raise findings, run the ticket loop."""

from __future__ import annotations

import asyncio
import logging

from services.risk.anomalies import AnomalySettings
from services.risk.budget_overrides import OVERRIDES, merge_budgets, stored_budgets
from services.risk.budgets import load_budgets
from services.risk.contracts import load_contracts
from services.risk.handlers import RiskConfig, RiskHandler
from services.risk.itsm.dispatcher import RetryPolicy, TicketDispatcher
from services.risk.itsm.factory import build_connectors
from services.risk.itsm.inbound import build_inbound_app
from services.risk.ops import registration
from services.risk.policy import Policy
from services.risk.settings import RiskSettings
from services.risk.tables import TABLES
from services.risk.vendors import AiVendors
from shared.events import (
    CostAllocated,
    CostVarianceDetected,
    SavingsRecommended,
    SeatActivityReported,
    SeatEntitlementReported,
    ValueMapped,
)
from shared.logging import get_logger
from shared.service import COST_BATCH_RECORDS, ServiceRuntime, run_service
from shared.topics import Topic

log = get_logger(__name__)


def load_config(settings: RiskSettings) -> RiskConfig:
    """Read the budgets, policy and contracts files named by the settings."""
    return RiskConfig(
        budgets=load_budgets(settings.budgets_file) if settings.budgets_file else [],
        policy=Policy.load(settings.policy_file) if settings.policy_file else None,
        contracts=load_contracts(settings.contracts_file, settings.tenant) if settings.contracts_file else [],
        vendors=AiVendors.load(),
        anomalies=AnomalySettings(
            window_days=settings.anomaly_window_days,
            min_history_days=settings.anomaly_min_history_days,
            threshold=settings.anomaly_threshold,
            min_daily_spend=tuple(settings.anomaly_min_daily_spend),
        ),
        zone_for=settings.zone_for,
        min_ticket_severity=settings.itsm_min_severity,
    )


async def main() -> None:
    settings = RiskSettings()
    runtime = ServiceRuntime("risk", settings)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per ITSM request is noise; failures are logged
    config = load_config(settings)
    file_budgets = list(config.budgets)
    # Budgets set over the ops API are stored beside the budgets file and apply over it from the start.
    await runtime.database.create_tables([OVERRIDES])
    config.budgets = merge_budgets(file_budgets, await stored_budgets(runtime.database))
    connectors = build_connectors(settings)
    log.info(
        "risk.configured",
        budgets=len(config.budgets),
        policy_rules=len(config.policy.rules) if config.policy else 0,
        contracts=len(config.contracts),
        itsm_systems=",".join(connector.system for connector in connectors) or "none",
        time_zone=settings.time_zone,
    )
    handler = RiskHandler(runtime.database, runtime.outbox, config)
    # Each batch recomputes the figures its costs touch once, whatever its size, so larger batches do less work
    # per cost when costs arrive faster than they are recomputed.
    runtime.subscribe(Topic.COST_ALLOCATED, CostAllocated, handler.handle, max_records=COST_BATCH_RECORDS)
    runtime.subscribe(Topic.COST_VARIANCE_DETECTED, CostVarianceDetected, handler.handle_variances)
    runtime.subscribe(Topic.SEAT_ACTIVITY_REPORTED, SeatActivityReported, handler.handle_seat_activity)
    runtime.subscribe(Topic.SEAT_ENTITLEMENT_REPORTED, SeatEntitlementReported, handler.handle_seat_entitlements)
    runtime.subscribe(Topic.VALUE_MAPPED, ValueMapped, handler.handle_value)
    runtime.subscribe(Topic.SAVINGS_RECOMMENDED, SavingsRecommended, handler.handle_savings)

    async def check_renewals(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await handler.check_renewals()
            except Exception as error:  # retried at the next interval; the contracts file is unchanged
                log.warning("risk.renewal_check_failed", error=repr(error)[:300])
            try:
                await asyncio.wait_for(stop.wait(), timeout=settings.renewal_check_interval_s)
            except TimeoutError:
                pass

    async def follow_budgets(stop: asyncio.Event) -> None:
        """Pick up budgets that another risk replica set over its ops API."""
        while not stop.is_set():
            try:
                merged = merge_budgets(file_budgets, await stored_budgets(runtime.database))
            except Exception as error:  # the budgets in force stay as they are until the next read
                log.warning("risk.budget_read_failed", error=repr(error)[:300])
            else:
                if merged != config.budgets:
                    log.info("risk.budgets_changed", budgets=len(merged))
                    config.budgets = merged
            try:
                await asyncio.wait_for(stop.wait(), timeout=settings.budget_refresh_interval_s)
            except TimeoutError:
                pass

    background = [check_renewals, follow_budgets]
    if connectors:
        dispatcher = TicketDispatcher(
            runtime.database,
            runtime.outbox,
            connectors,
            min_ticket_severity=settings.itsm_min_severity,
            retry=RetryPolicy(settings.itsm_retry_base_s, settings.itsm_retry_max_s),
            interval_s=settings.itsm_interval_s,
            poll_interval_s=settings.itsm_poll_interval_s,
        )
        background.append(dispatcher.run)
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    app = build_inbound_app(runtime.database, runtime.outbox, secret, settings.itsm_min_severity)
    await runtime.run(
        [*TABLES, OVERRIDES],
        http_app=app,
        http_port=settings.http_port,
        background=background,
        registrations=[registration(runtime.database, runtime.outbox, config, file_budgets)],
    )


if __name__ == "__main__":
    run_service(main)
