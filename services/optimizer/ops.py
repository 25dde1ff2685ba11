"""The optimizer ops API (``aifinops.optimizer.v1.OptimizerOps``): recommendations and their lifecycle.

The methods call the lifecycle functions in ``services/optimizer/lifecycle.py`` with the service's own outbox,
so a change and its ``savings.recommended`` revision are stored in one transaction and sent at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from decimal import Decimal
from typing import Any

import grpc

from services.optimizer.lifecycle import (
    MIN_ID_PREFIX,
    STATUSES,
    AmbiguousRecommendationId,
    LifecycleError,
    RecommendationNotFound,
    RecommendationView,
    change_status,
    history,
    list_recommendations,
    measure_now,
    request_ticket,
)
from shared.db import Database
from shared.grpc_api import (
    Conflict,
    InvalidArgument,
    authorised_tenant,
    client_name,
    decode_page_token,
    encode_page_token,
    handle_errors,
    keyset_page,
    page_size,
)
from shared.ops import ServiceRegistration
from shared.outbox import Outbox
from shared.protos.common.v1 import common_pb2
from shared.protos.optimizer.v1 import optimizer_pb2, optimizer_pb2_grpc


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def recommendation_message(view: RecommendationView, steps: Sequence[dict[str, Any]] = ()) -> Any:
    return optimizer_pb2.Recommendation(
        recommendation_id=view.recommendation_id, kind=view.kind, scope=view.scope, status=view.status,
        estimated_monthly_savings=common_pb2.Money(
            amount=str(view.estimated_monthly_savings), currency=view.currency
        ),
        confidence=view.confidence, arithmetic=view.arithmetic, caveat=_text(view.caveat), revision=view.revision,
        ticket_requested=view.ticket_requested, status_reason=_text(view.status_reason),
        status_changed_by=_text(view.status_changed_by),
        status_changed_at=view.status_changed_at.isoformat() if view.status_changed_at else "",
        baseline_monthly_cost=_text(view.baseline_amount), baseline_period=_text(view.baseline_period),
        realised_monthly_savings=_text(view.realised_amount), realised_arithmetic=_text(view.realised_arithmetic),
        evidence_event_ids=list(view.evidence), price_row_ids=list(view.price_rows),
        history=[
            optimizer_pb2.HistoryEntry(
                revision=step["revision"], status=step["status"], reason=_text(step["reason"]),
                changed_by=_text(step["changed_by"]), changed_at=step["changed_at"],
            )
            for step in steps
        ],
    )  # fmt: skip


def _sort_key(view: RecommendationView) -> tuple[Any, ...]:
    return (-view.estimated_monthly_savings, view.kind, view.scope, view.recommendation_id)


def _checked_id(recommendation_id: str) -> str:
    if len(recommendation_id) < MIN_ID_PREFIX:
        raise InvalidArgument("recommendation_id", f"must be the id or a prefix of at least {MIN_ID_PREFIX} characters")
    return recommendation_id


async def _domain_errors(work: Awaitable[Any]) -> Any:
    """Await lifecycle work, turning its errors into the status codes they mean."""
    try:
        return await work
    except RecommendationNotFound as error:
        raise LookupError(str(error)) from None
    except AmbiguousRecommendationId as error:
        raise InvalidArgument("recommendation_id", str(error)) from None
    except LifecycleError as error:
        raise Conflict(str(error)) from None


class OptimizerOps(optimizer_pb2_grpc.OptimizerOpsServicer):
    def __init__(self, database: Database, outbox: Outbox) -> None:
        self.database = database
        self.outbox = outbox

    @handle_errors
    async def ListRecommendations(
        self, request: optimizer_pb2.ListRecommendationsRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        tenant = authorised_tenant(request.tenant)
        if request.status and request.status not in STATUSES:
            raise InvalidArgument("status", f"must be one of {', '.join(STATUSES)}, got {request.status!r}")
        size = page_size(request.page_size)
        keyset = decode_page_token(request.page_token, 4)
        after = (Decimal(keyset[0]), *keyset[1:]) if keyset is not None else None
        views = await list_recommendations(
            self.database, tenant, status=request.status or None, kind=request.kind or None
        )
        page, last = keyset_page(sorted(views, key=_sort_key), _sort_key, size, after)
        token = encode_page_token([str(last[0]), *last[1:]]) if last is not None else ""
        return optimizer_pb2.ListRecommendationsResponse(
            recommendations=[recommendation_message(view) for view in page], next_page_token=token
        )

    @handle_errors
    async def GetRecommendation(
        self, request: optimizer_pb2.GetRecommendationRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        tenant = authorised_tenant(request.tenant)
        identifier = _checked_id(request.recommendation_id)
        steps = await _domain_errors(history(self.database, tenant, identifier))
        return await self._message(tenant, identifier, steps)

    @handle_errors
    async def AcceptRecommendation(
        self, request: optimizer_pb2.ChangeRecommendationRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        return await self._change(request, "accepted")

    @handle_errors
    async def DismissRecommendation(
        self, request: optimizer_pb2.ChangeRecommendationRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        if not request.reason.strip():
            raise InvalidArgument("reason", "is required to dismiss a recommendation")
        return await self._change(request, "dismissed")

    @handle_errors
    async def ImplementRecommendation(
        self, request: optimizer_pb2.ChangeRecommendationRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        return await self._change(request, "implemented")

    @handle_errors
    async def ReopenRecommendation(
        self, request: optimizer_pb2.ChangeRecommendationRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        return await self._change(request, "open")

    @handle_errors
    async def RequestTicket(
        self, request: optimizer_pb2.ChangeRecommendationRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        tenant = authorised_tenant(request.tenant)
        identifier = _checked_id(request.recommendation_id)
        event = await _domain_errors(
            request_ticket(self.database, self.outbox, tenant, identifier, by=request.changed_by or client_name())
        )
        return await self._message(tenant, event.recommendation_id)

    @handle_errors
    async def MeasureRecommendation(
        self, request: optimizer_pb2.ChangeRecommendationRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        tenant = authorised_tenant(request.tenant)
        identifier = _checked_id(request.recommendation_id)
        event = await _domain_errors(measure_now(self.database, self.outbox, tenant, identifier))
        return await self._message(tenant, event.recommendation_id)

    async def _change(self, request: optimizer_pb2.ChangeRecommendationRequest, status: str) -> Any:
        tenant = authorised_tenant(request.tenant)
        identifier = _checked_id(request.recommendation_id)
        event = await _domain_errors(
            change_status(
                self.database,
                self.outbox,
                tenant,
                identifier,
                status,
                by=request.changed_by or client_name(),
                reason=request.reason or None,
            )  # fmt: skip
        )
        return await self._message(tenant, event.recommendation_id)

    async def _message(self, tenant: str, identifier: str, steps: Sequence[dict[str, Any]] = ()) -> Any:
        views = await list_recommendations(self.database, tenant)
        matches = [view for view in views if view.recommendation_id.startswith(identifier)]
        if len(matches) != 1:
            raise LookupError(f"no recommendation {identifier!r} for tenant {tenant!r}")
        return recommendation_message(matches[0], steps)


def registration(database: Database, outbox: Outbox) -> ServiceRegistration:
    servicer = OptimizerOps(database, outbox)
    return ServiceRegistration(
        add_to_server=lambda server: optimizer_pb2_grpc.add_OptimizerOpsServicer_to_server(servicer, server),
        full_name=optimizer_pb2.DESCRIPTOR.services_by_name["OptimizerOps"].full_name,
        scopes={
            "ListRecommendations": "read",
            "GetRecommendation": "read",
            "AcceptRecommendation": "write",
            "DismissRecommendation": "write",
            "ImplementRecommendation": "write",
            "ReopenRecommendation": "write",
            "RequestTicket": "write",
            "MeasureRecommendation": "write",
        },
    )
