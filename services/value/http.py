"""The outcomes HTTP API: ``POST /v1/outcomes`` takes one outcome object or a list of them.

The answer is 202 once every outcome is stored in the value service's outbox; a
list is all or nothing, so one invalid outcome means 422 naming each bad field.
"""

from __future__ import annotations

import json
import uuid

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.value.intake import OutcomeIntake
from services.value.settings import ValueSettings

TENANT_HEADER = "x-aifinops-tenant"


def build_outcomes_app(intake: OutcomeIntake, settings: ValueSettings) -> Starlette:
    async def post_outcomes(request: Request) -> JSONResponse:
        body = await request.body()
        if len(body) > settings.max_body_bytes:
            return JSONResponse({"error": f"body is larger than {settings.max_body_bytes} bytes"}, status_code=413)
        try:
            document = json.loads(body, parse_float=str)
        except (ValueError, RecursionError) as error:
            return JSONResponse({"error": f"body is not valid JSON: {error}"}, status_code=400)
        items = document if isinstance(document, list) else [document]
        tenant = request.headers.get(TENANT_HEADER) or settings.tenant
        correlation_id = request.headers.get("x-correlation-id") or str(uuid.uuid4())
        events, errors = intake.validate(items, tenant=tenant, correlation_id=correlation_id, source="value.http")
        if errors:
            return JSONResponse(
                {
                    "error": "invalid outcomes; nothing was recorded",
                    "rejections": [{"index": e.index, "field": e.field_path, "reason": e.reason} for e in errors[:50]],
                },
                status_code=422,
            )
        new, duplicate = await intake.accept(events)
        return JSONResponse(
            {"accepted": new, "duplicate": duplicate, "event_ids": [e.event_id for e in events]}, status_code=202
        )

    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/outcomes", post_outcomes, methods=["POST"]),
            Route("/healthz", health, methods=["GET"]),
        ]
    )
