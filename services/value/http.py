"""The outcomes HTTP API: ``POST /v1/outcomes`` takes one outcome object or a list of them.

Requests are signed like the ingest webhook's (``services/ingest/signing.py``): an
HMAC-SHA256 over ``<timestamp>.<body>`` by a source listed in
``VALUE_WEBHOOK_SECRETS_FILE``. Checks run in this order, each with its own status:

- 413 body above ``VALUE_MAX_BODY_BYTES``;
- 401 missing, unknown, stale or wrong signature; 400 an invalid tenant name;
  403 a source writing to a tenant it is not allowed;
- 400 not valid JSON; 422 invalid outcomes, naming each bad field (unknown fields and
  implausibly large quantities or values included);
- 409 an outcome id recorded before with other content;
- 503 the database is unavailable, so the sender should retry.

The response is 202 once every outcome is stored in the value service's outbox. A
list is all or nothing, and posting the same outcomes again gets 202 with every
outcome counted as a duplicate.
"""

from __future__ import annotations

import json
import uuid

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.ingest.importer import InvalidTenant, validate_tenant
from services.ingest.signing import SignatureRejected, WebhookSource, load_sources, verify_request
from services.value.intake import ConflictingOutcomes, OutcomeIntake
from services.value.settings import ValueSettings
from shared.db import is_transient_error
from shared.http import BodyTooLarge, error_response, read_body
from shared.logging import get_logger

log = get_logger(__name__)

TENANT_HEADER = "x-aifinops-tenant"
MAX_REJECTIONS_SHOWN = 50


def build_outcomes_app(intake: OutcomeIntake, settings: ValueSettings) -> Starlette:
    sources: dict[str, WebhookSource] = {}
    if settings.webhook_secrets_file is not None:
        sources = load_sources(settings.webhook_secrets_file)
        log.info("outcomes_api.sources_loaded", sources=",".join(sorted(sources)))
    else:
        log.warning("outcomes_api.signing_not_configured", hint="set VALUE_WEBHOOK_SECRETS_FILE; every post gets 401")

    async def post_outcomes(request: Request) -> JSONResponse:
        try:
            body = await read_body(request, settings.max_body_bytes)
        except BodyTooLarge:
            return error_response(413, f"body is larger than {settings.max_body_bytes} bytes; split the outcomes")

        if not sources:
            return error_response(401, "request signing is not configured on this server (VALUE_WEBHOOK_SECRETS_FILE)")
        try:
            source = verify_request(sources, request.headers, body)
        except SignatureRejected as error:
            log.warning("outcomes_api.rejected", status=error.status_code, reason=error.reason)
            return error_response(error.status_code, error.reason)
        tenant = request.headers.get(TENANT_HEADER) or settings.tenant
        try:
            validate_tenant(tenant)
        except InvalidTenant as error:
            log.warning("outcomes_api.rejected", status=400, source=source.name, reason="invalid tenant")
            return error_response(400, f"{TENANT_HEADER}: {error}")
        if not source.may_write(tenant, settings.tenant):
            log.warning("outcomes_api.rejected", status=403, source=source.name, tenant=tenant[:64])
            return error_response(403, f"source {source.name!r} may not write to tenant {tenant[:64]!r}")

        try:
            document = json.loads(body, parse_float=str)
        except (ValueError, RecursionError) as error:
            return error_response(400, f"body is not valid JSON: {error}")
        items = document if isinstance(document, list) else [document]
        correlation_id = (request.headers.get("x-correlation-id") or str(uuid.uuid4()))[:512]
        events, errors = intake.validate(items, tenant=tenant, correlation_id=correlation_id, source="value.http")
        if errors:
            return error_response(
                422,
                "invalid outcomes; nothing was recorded",
                rejections=[
                    {"index": e.index, "field": e.field_path, "reason": e.reason} for e in errors[:MAX_REJECTIONS_SHOWN]
                ],
            )
        try:
            new, duplicate = await intake.accept(events)
        except ConflictingOutcomes as error:
            log.warning(
                "outcomes_api.rejected", status=409, source=source.name, event_ids=",".join(error.event_ids[:5])
            )
            return error_response(
                409,
                "outcomes restate recorded outcome ids with other content; nothing was recorded. "
                "Send a correction under a new outcome_id",
                conflicting_event_ids=error.event_ids[:MAX_REJECTIONS_SHOWN],
            )
        except Exception as error:
            if not is_transient_error(error):
                raise
            log.warning("outcomes_api.store_unavailable", source=source.name, error=repr(error)[:300])
            return JSONResponse(
                {"error": "the value database is unavailable; retry later"},
                status_code=503,
                headers={"retry-after": "5"},
            )
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
