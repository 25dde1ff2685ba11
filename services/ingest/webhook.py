"""The webhook HTTP API: providers and in-house meters push usage payloads here.

``POST /v1/usage/{format}`` takes one payload in a known format, signed by a
known source (``services/ingest/signing.py``). ``POST /api/v1/events`` takes
CloudEvents the way OpenMeter's ingest endpoint does (one event, or a JSON array
of them). Checks run in this order, each with its own status:

- 404 unknown format; 413 body above ``INGEST_MAX_BODY_BYTES``;
- 401 missing, unknown, stale (more than five minutes off) or wrong signature;
  403 a source writing to a tenant it is not allowed;
- 400 not parseable (JSON, UTF-8, CSV); 422 invalid rows, naming each field path;
- 409 a restatement of events recorded before with other content;
- 503 the database is unavailable, so the sender should retry.

The response is 202 only after every event is stored in the ingest database
(claimed id, evidence and outbox row in one transaction), so a 202 never loses data
even if the broker is down at that moment. The outbox relay sends it later. A
payload is all or nothing, and re-delivering it gets 202 with every event a duplicate.
Valid payloads that arrive together share one transaction (``group_commit.py``), and
each still gets the status it would get alone; a rejected payload is recorded alone.

Query parameters: ``observed_at`` (RFC 3339) dates snapshots whose rows carry no
time. ``currency`` (ISO 4217) is the currency of exports without a currency column.
"""

from __future__ import annotations

import hashlib
import io
import time
import uuid
from datetime import datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.ingest.group_commit import GroupCommitter
from services.ingest.importer import ConflictingEvents, InvalidTenant, Recorder, validate_tenant
from services.ingest.normalisers import (
    NORMALISERS,
    FormatError,
    ImportContext,
    InvalidSyntax,
    Normaliser,
    RowResult,
)
from services.ingest.normalisers.base import RowRejected, currency_code, rfc3339
from services.ingest.settings import IngestSettings
from services.ingest.signing import SignatureRejected, WebhookSource, load_sources, verify_request
from shared.db import is_transient_error
from shared.events import utc_now
from shared.http import BodyTooLarge, error_response, read_body
from shared.logging import get_logger

log = get_logger(__name__)

TENANT_HEADER = "x-aifinops-tenant"
CLOUDEVENTS_FORMAT = "cloudevents"


class RejectionLog:
    """Logs rejected requests at most once per interval per reason, with how many were not logged."""

    def __init__(self, interval_s: float = 10.0) -> None:
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, event: str, reason_key: str, **fields: object) -> None:
        now = time.monotonic()
        key = f"{event}:{reason_key}"
        if now - self._last.get(key, -self.interval_s) < self.interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        log.warning(event, suppressed_since_last=self._suppressed.pop(key, 0), **fields)


def _context_options(request: Request) -> tuple[datetime | None, str | None]:
    observed_text = request.query_params.get("observed_at")
    currency_text = request.query_params.get("currency")
    observed_at = rfc3339(observed_text, "observed_at") if observed_text else None
    currency = currency_code(currency_text, "currency") if currency_text else None
    return observed_at, currency


def build_webhook_app(recorder: Recorder, settings: IngestSettings) -> Starlette:
    sources: dict[str, WebhookSource] = {}
    if settings.webhook_secrets_file is not None:
        sources = load_sources(settings.webhook_secrets_file)
        log.info("webhook.sources_loaded", sources=",".join(sorted(sources)))
    else:
        log.warning("webhook.signing_not_configured", hint="set INGEST_WEBHOOK_SECRETS_FILE; every post gets 401")
    rejections = RejectionLog()
    group_committer = GroupCommitter(recorder)

    async def receive(request: Request, normaliser: Normaliser) -> JSONResponse:
        try:
            body = await read_body(request, settings.max_body_bytes)
        except BodyTooLarge:
            rejections.warning("webhook.rejected", "too_large", status=413, format=normaliser.format_name)
            return error_response(
                413, f"body is larger than {settings.max_body_bytes} bytes; split it into smaller payloads"
            )

        if not sources:
            return error_response(401, "webhook signing is not configured on this server (INGEST_WEBHOOK_SECRETS_FILE)")
        try:
            source = verify_request(sources, request.headers, body)
        except SignatureRejected as error:
            rejections.warning("webhook.rejected", error.reason[:40], status=401, reason=error.reason)
            return error_response(error.status_code, error.reason)
        tenant = request.headers.get(TENANT_HEADER) or settings.tenant
        try:
            validate_tenant(tenant)
        except InvalidTenant as error:
            return error_response(400, f"{TENANT_HEADER}: {error}")
        if not source.may_write(tenant, settings.tenant):
            rejections.warning("webhook.rejected", "tenant", status=403, source=source.name, tenant=tenant[:64])
            return error_response(403, f"source {source.name!r} may not write to tenant {tenant[:64]!r}")

        try:
            observed_at, currency = _context_options(request)
        except RowRejected as error:
            return error_response(
                422, "invalid query parameter", rejections=[{"field": error.field_path, "reason": error.reason}]
            )
        correlation_id = request.headers.get("x-correlation-id") or str(uuid.uuid4())
        context = ImportContext(
            tenant=tenant,
            correlation_id=correlation_id[:512],
            received_at=utc_now(),
            file_name=None,
            channel="webhook",
            observed_at=observed_at,
            currency=currency,
        )
        input_sha256 = hashlib.sha256(body).hexdigest()
        try:
            rows: list[RowResult] | None = list(normaliser.rows(io.BytesIO(body), context))
        except FormatError:
            rows = None
        try:
            if rows is not None and all(row.error is None for row in rows):
                summary = await group_committer.record(
                    body, rows, normaliser=normaliser, context=context, input_sha256=input_sha256
                )
            else:
                # The recorder records a rejected payload alone. It stores the import row and
                # raises or reports the same error again.
                summary = await recorder.record(
                    io.BytesIO(body),
                    normaliser=normaliser,
                    context=context,
                    input_sha256=input_sha256,
                    all_or_nothing=True,
                    collect_event_ids=True,
                )
        except InvalidSyntax as error:
            return error_response(400, str(error))
        except FormatError as error:
            return error_response(422, str(error))
        except ConflictingEvents as error:
            return error_response(
                409, "the payload restates events recorded before; nothing was recorded", **error.summary.as_dict()
            )
        except Exception as error:
            if not is_transient_error(error):
                raise
            log.warning("webhook.store_unavailable", source=source.name, error=repr(error)[:300])
            return JSONResponse(
                {"error": "the ingest database is unavailable; retry later"},
                status_code=503,
                headers={"retry-after": "5"},
            )
        if summary.rejected:
            return error_response(422, "the payload has invalid rows; nothing was recorded", **summary.as_dict())
        return JSONResponse(
            {**summary.as_dict(), "event_ids": summary.accepted_event_ids, "correlation_id": correlation_id},
            status_code=202,
        )

    async def receive_usage(request: Request) -> JSONResponse:
        format_name = request.path_params["format_name"]
        normaliser = NORMALISERS.get(format_name)
        if normaliser is None:
            return error_response(404, f"unknown format {format_name[:64]!r}", known_formats=sorted(NORMALISERS))
        return await receive(request, normaliser)

    async def receive_cloudevents(request: Request) -> JSONResponse:
        return await receive(request, NORMALISERS[CLOUDEVENTS_FORMAT])

    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def formats(_request: Request) -> JSONResponse:
        return JSONResponse({name: normaliser.description for name, normaliser in NORMALISERS.items()})

    return Starlette(
        routes=[
            Route("/v1/usage/{format_name}", receive_usage, methods=["POST"]),
            Route("/api/v1/events", receive_cloudevents, methods=["POST"]),
            Route("/v1/formats", formats, methods=["GET"]),
            Route("/healthz", health, methods=["GET"]),
        ]
    )
