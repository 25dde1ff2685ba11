"""The risk ops API (``aifinops.risk.v1.RiskOps``): findings and their lifecycle, ticket work and budgets.

Status changes go through ``services/risk/lifecycle.py`` with the service's own outbox, so the ``risk.flagged``
revision is stored with the change and sent at once. Budgets set here are stored by
``services/risk/budget_overrides.py`` and applied to the running detectors at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import grpc

from services.risk.budget_overrides import StoredBudget, check_budget, merge_budgets, store_budget, stored_budgets
from services.risk.budgets import Budget, BudgetError
from services.risk.findings import FindingError, FindingNotFound
from services.risk.handlers import RiskConfig
from services.risk.lifecycle import (
    AmbiguousFindingId,
    FindingChange,
    change_status,
    list_findings,
    retry_failed_tickets,
    show_finding,
    ticket_backlog,
)
from shared.db import Database
from shared.events import FindingStatus
from shared.grpc_api import (
    Conflict,
    InvalidArgument,
    TenantDenied,
    authorised_tenant,
    client_name,
    decode_page_token,
    encode_page_token,
    handle_errors,
    keyset_page,
    page_size,
)
from shared.ops import ServiceRegistration, current_client
from shared.outbox import Outbox
from shared.protos.common.v1 import common_pb2
from shared.protos.risk.v1 import risk_pb2, risk_pb2_grpc

ACTIVE_STATUSES = {FindingStatus.OPEN.value, FindingStatus.ACKNOWLEDGED.value, FindingStatus.IN_PROGRESS.value}
MIN_FINDING_ID = 6


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _summary_message(item: dict[str, Any]) -> risk_pb2.FindingSummary:
    return risk_pb2.FindingSummary(
        finding_id=item["finding_id"], kind=item["kind"], severity=item["severity"], status=item["status"],
        subject=item["subject"], owner=_text(item["owner"]), title=item["title"], revision=item["revision"],
        reopen_count=item["reopen_count"], opened_at=item["opened_at"], updated_at=item["updated_at"],
        status_changed_by=_text(item["status_changed_by"]), status_changed_at=_text(item["status_changed_at"]),
        status_note=_text(item["status_note"]),
        tickets=[
            risk_pb2.Ticket(
                system=ticket["system"], key=_text(ticket["key"]), url=_text(ticket["url"]),
                remote_state=_text(ticket["remote_state"]),
            )
            for ticket in item["tickets"]
        ],
    )  # fmt: skip


def _finding_message(item: dict[str, Any]) -> risk_pb2.Finding:
    work = item["ticket_work"]
    return risk_pb2.Finding(
        summary=_summary_message(item),
        facts={name: str(value) for name, value in item["facts"].items()},
        interpretation=item["interpretation"],
        evidence_event_ids=item["evidence_event_ids"],
        ticket_work=risk_pb2.TicketWork(
            state=work["state"], attempts=work["attempts"], next_attempt_at=work["next_attempt_at"],
            last_error=_text(work["last_error"]),
        ) if work is not None else None,
        changes=[
            risk_pb2.StatusChange(
                revision=change["revision"], from_status=_text(change["from_status"]), to_status=change["to_status"],
                actor=change["actor"], note=_text(change["note"]), at=change["at"],
            )
            for change in item["changes"]
        ],
    )  # fmt: skip


def budget_message(budget: Budget, stored: StoredBudget | None) -> risk_pb2.Budget:
    return risk_pb2.Budget(
        budget_id=budget.budget_id, scope_key=budget.scope_key, scope_value=budget.scope_value,
        amount=common_pb2.Money(amount=str(budget.amount), currency=budget.currency), period=budget.period,
        thresholds=list(budget.thresholds), forecast_thresholds=list(budget.forecast_thresholds),
        owner=_text(budget.owner), sandbox=budget.sandbox, tenant=_text(budget.tenant),
        forecast_after_days=str(budget.forecast_after_days), source="api" if stored is not None else "file",
        set_by=stored.set_by if stored is not None else "",
        set_at=stored.set_at.isoformat() if stored is not None else "",
    )  # fmt: skip


def budget_definition(message: risk_pb2.Budget) -> dict[str, Any]:
    """Return the budgets-file mapping a Budget message describes, leaving out what it leaves unset."""
    definition: dict[str, Any] = {
        "id": message.budget_id,
        "scope": {message.scope_key: message.scope_value},
        "amount": message.amount.amount,
        "currency": message.amount.currency,
    }
    optional = {
        "period": message.period,
        "thresholds": list(message.thresholds),
        "forecast_thresholds": list(message.forecast_thresholds),
        "owner": message.owner,
        "sandbox": message.sandbox,
        "tenant": message.tenant,
        "forecast_after_days": message.forecast_after_days,
    }
    definition.update({name: value for name, value in optional.items() if value})
    return definition


def _updated_key(item: dict[str, Any]) -> tuple[int, str]:
    """Sort key of the finding list: most recently changed first, then by id."""
    updated = datetime.fromisoformat(item["updated_at"])
    return (-int(updated.timestamp() * 1_000_000), item["finding_id"])


def _finding_id(value: str) -> str:
    if len(value) < MIN_FINDING_ID:
        raise InvalidArgument("finding_id", f"must be the id or its first {MIN_FINDING_ID} or more characters")
    return value


class RiskOps(risk_pb2_grpc.RiskOpsServicer):
    def __init__(self, database: Database, outbox: Outbox, config: RiskConfig, file_budgets: Sequence[Budget]) -> None:
        self.database = database
        self.outbox = outbox
        self.config = config
        self.file_budgets = list(file_budgets)

    @handle_errors
    async def ListFindings(self, request: risk_pb2.ListFindingsRequest, context: grpc.aio.ServicerContext) -> Any:
        tenant = authorised_tenant(request.tenant)
        known = {status.value for status in FindingStatus}
        unknown = sorted(set(request.statuses) - known)
        if unknown:
            raise InvalidArgument("statuses", f"unknown status {unknown[0]!r}; use {', '.join(sorted(known))}")
        size = page_size(request.page_size)
        keyset = decode_page_token(request.page_token, 2)
        wanted = None if request.all_statuses else set(request.statuses) or ACTIVE_STATUSES
        found = await list_findings(self.database, tenant, statuses=wanted, kind=request.kind or None)
        page, last = keyset_page(
            sorted(found, key=_updated_key), _updated_key, size, tuple(keyset) if keyset is not None else None
        )
        return risk_pb2.ListFindingsResponse(
            findings=[_summary_message(item) for item in page],
            next_page_token=encode_page_token(list(last)) if last is not None else "",
        )

    @handle_errors
    async def GetFinding(self, request: risk_pb2.GetFindingRequest, context: grpc.aio.ServicerContext) -> Any:
        tenant = authorised_tenant(request.tenant)
        finding_id = _finding_id(request.finding_id)
        return _finding_message(await self._lifecycle(show_finding(self.database, tenant, finding_id)))

    @handle_errors
    async def AcknowledgeFinding(self, request: risk_pb2.ChangeFindingRequest, context: Any) -> Any:
        return await self._change(request, FindingStatus.ACKNOWLEDGED)

    @handle_errors
    async def StartFinding(self, request: risk_pb2.ChangeFindingRequest, context: Any) -> Any:
        return await self._change(request, FindingStatus.IN_PROGRESS)

    @handle_errors
    async def ResolveFinding(self, request: risk_pb2.ChangeFindingRequest, context: Any) -> Any:
        return await self._change(request, FindingStatus.RESOLVED)

    @handle_errors
    async def AcceptRisk(self, request: risk_pb2.ChangeFindingRequest, context: Any) -> Any:
        return await self._change(request, FindingStatus.ACCEPTED_RISK)

    @handle_errors
    async def MarkFalsePositive(self, request: risk_pb2.ChangeFindingRequest, context: Any) -> Any:
        return await self._change(request, FindingStatus.FALSE_POSITIVE)

    @handle_errors
    async def ReopenFinding(self, request: risk_pb2.ChangeFindingRequest, context: Any) -> Any:
        return await self._change(request, FindingStatus.OPEN)

    @handle_errors
    async def GetTicketBacklog(self, request: risk_pb2.GetTicketBacklogRequest, context: Any) -> Any:
        counts = await ticket_backlog(self.database)
        return risk_pb2.TicketBacklog(pending=counts["pending"], failed=counts["failed"])

    @handle_errors
    async def RetryFailedTickets(self, request: risk_pb2.RetryFailedTicketsRequest, context: Any) -> Any:
        client = current_client.get()
        limited = client is not None and client.tenants is not None
        tenant = authorised_tenant(request.tenant) if request.tenant or limited else None
        return risk_pb2.RetryFailedTicketsResponse(queued_again=await retry_failed_tickets(self.database, tenant))

    @handle_errors
    async def ListBudgets(self, request: risk_pb2.ListBudgetsRequest, context: Any) -> Any:
        tenant = authorised_tenant(request.tenant)
        size = page_size(request.page_size)
        keyset = decode_page_token(request.page_token, 1)
        overrides = await stored_budgets(self.database)
        by_id = {item.budget.budget_id: item for item in overrides}
        budgets = [
            budget
            for budget in merge_budgets(self.file_budgets, overrides)
            if budget.tenant is None or budget.tenant == tenant
        ]

        def key(budget: Budget) -> tuple[str]:
            return (budget.budget_id,)

        page, last = keyset_page(sorted(budgets, key=key), key, size, tuple(keyset) if keyset is not None else None)
        return risk_pb2.ListBudgetsResponse(
            budgets=[budget_message(budget, by_id.get(budget.budget_id)) for budget in page],
            next_page_token=encode_page_token(list(last)) if last is not None else "",
        )

    @handle_errors
    async def SetBudget(self, request: risk_pb2.SetBudgetRequest, context: Any) -> Any:
        if not request.HasField("budget"):
            raise InvalidArgument("budget", "is required")
        definition = budget_definition(request.budget)
        await self._check_budget_tenant(definition)
        try:
            stored = await store_budget(self.database, definition, request.set_by or client_name())
        except BudgetError as error:
            field, _, reason = str(error).partition(": ")
            raise InvalidArgument(field, reason or str(error)) from None
        self.config.budgets = merge_budgets(self.file_budgets, await stored_budgets(self.database))
        changed = await check_budget(
            self.database, self.outbox, stored.budget, self.config.zone_for, self.config.min_ticket_severity
        )
        return risk_pb2.SetBudgetResponse(budget=budget_message(stored.budget, stored), findings_changed=changed)

    async def _check_budget_tenant(self, definition: dict[str, Any]) -> None:
        """Let a client limited to some tenants set budgets of those tenants only, never one that covers others."""
        client = current_client.get()
        if client is None or client.tenants is None:
            if definition.get("tenant"):
                authorised_tenant(definition["tenant"])
            return
        definition["tenant"] = authorised_tenant(definition.get("tenant", ""))
        current = {budget.budget_id: budget for budget in self.config.budgets}.get(definition["id"])
        if current is not None and current.tenant != definition["tenant"]:
            raise TenantDenied(f"budget {definition['id']!r} applies to other tenants; this token cannot replace it")

    async def _change(self, request: risk_pb2.ChangeFindingRequest, status: FindingStatus) -> Any:
        tenant = authorised_tenant(request.tenant)
        finding_id = _finding_id(request.finding_id)
        if status in (FindingStatus.ACCEPTED_RISK, FindingStatus.FALSE_POSITIVE) and not request.note.strip():
            raise InvalidArgument("note", f"is required to mark a finding {status.value}")
        actor = request.actor or client_name()
        event = await self._lifecycle(
            change_status(
                self.database,
                self.outbox,
                tenant=tenant,
                finding_id=finding_id,
                change=FindingChange(status, actor, request.note or None),
                min_ticket_severity=self.config.min_ticket_severity,
            )
        )
        return risk_pb2.FindingChange(
            finding_id=event.finding_id, status=event.status.value, revision=event.revision, actor=actor
        )

    @staticmethod
    async def _lifecycle(work: Any) -> Any:
        """Await lifecycle work, turning its errors into the status codes they mean."""
        try:
            return await work
        except AmbiguousFindingId as error:
            raise InvalidArgument("finding_id", str(error)) from None
        except FindingNotFound as error:
            raise LookupError(str(error)) from None
        except FindingError as error:
            raise Conflict(str(error)) from None


def registration(
    database: Database, outbox: Outbox, config: RiskConfig, file_budgets: Sequence[Budget]
) -> ServiceRegistration:
    servicer = RiskOps(database, outbox, config, file_budgets)
    reads = ("ListFindings", "GetFinding", "GetTicketBacklog", "ListBudgets")
    writes = (
        "AcknowledgeFinding",
        "StartFinding",
        "ResolveFinding",
        "AcceptRisk",
        "MarkFalsePositive",
        "ReopenFinding",
        "RetryFailedTickets",
        "SetBudget",
    )
    return ServiceRegistration(
        add_to_server=lambda server: risk_pb2_grpc.add_RiskOpsServicer_to_server(servicer, server),
        full_name=risk_pb2.DESCRIPTOR.services_by_name["RiskOps"].full_name,
        scopes={**dict.fromkeys(reads, "read"), **dict.fromkeys(writes, "write")},
    )
