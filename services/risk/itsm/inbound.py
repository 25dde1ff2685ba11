"""Inbound webhook: a ticket system reports a status change of a finding's ticket, signed with the shared secret.

``POST /v1/itsm/webhook`` takes ``{"tenant", "finding_id", "status", "actor", "note"}`` with the same
``X-Aifinops-Signature`` header as outbound deliveries. Responses: 200 with the finding's new revision, 401 for
a missing or wrong signature, 404 for an unknown finding, 409 for a move the lifecycle does not allow, 422 for
an invalid body, 503 when no secret is configured. ``GET /healthz`` answers 200.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.risk.findings import FindingError, FindingNotFound
from services.risk.itsm.signing import SIGNATURE_HEADER, SignatureError, verify
from services.risk.itsm.webhook import SYSTEM
from services.risk.lifecycle import FindingChange, change_status
from shared.consumer import describe_validation_error
from shared.db import Database
from shared.events import FindingStatus, Severity
from shared.logging import get_logger
from shared.outbox import Outbox

log = get_logger(__name__)

MAX_BODY_BYTES = 64 * 1024


class StatusReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str = Field(min_length=1, max_length=512)
    finding_id: str = Field(min_length=6, max_length=64)
    status: FindingStatus
    actor: str = Field(min_length=1, max_length=256)
    note: str | None = Field(default=None, max_length=4000)


def build_inbound_app(
    database: Database, outbox: Outbox, secret: str | None, min_ticket_severity: Severity
) -> Starlette:
    async def status_changed(request: Request) -> JSONResponse:
        if secret is None:
            return JSONResponse({"error": "inbound webhook is off: set RISK_WEBHOOK_SECRET"}, status_code=503)
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return JSONResponse({"error": f"body is larger than {MAX_BODY_BYTES} bytes"}, status_code=413)
        try:
            verify(secret, body, request.headers.get(SIGNATURE_HEADER))
        except SignatureError as error:
            log.warning("itsm.inbound_rejected", reason=str(error))
            return JSONResponse({"error": str(error)}, status_code=401)
        try:
            report = StatusReport.model_validate_json(body)
        except ValidationError as error:
            field_path, reason = describe_validation_error(error)
            return JSONResponse({"error": reason, "field": field_path}, status_code=422)
        change = FindingChange(report.status, f"{SYSTEM}:{report.actor}", report.note)
        try:
            event = await change_status(
                database,
                outbox,
                tenant=report.tenant,
                finding_id=report.finding_id,
                change=change,
                synced_system=SYSTEM,
                min_ticket_severity=min_ticket_severity,
            )
        except FindingNotFound as error:
            return JSONResponse({"error": str(error)}, status_code=404)
        except FindingError as error:
            return JSONResponse({"error": str(error)}, status_code=409)
        log.info("itsm.inbound_status", finding_id=event.finding_id, status=event.status.value, actor=change.actor)
        return JSONResponse({"finding_id": event.finding_id, "status": event.status.value, "revision": event.revision})

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/itsm/webhook", status_changed, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
