"""The webhook HTTP API: providers and in-house meters push usage payloads here.

``POST /v1/usage/{format}`` takes one payload in a known format. The answer is
202 only after every event in it is stored in the ingest database (claimed id,
evidence and outbox row in one transaction), so a 202 never loses data even if
the broker is down at that moment. A payload is all or nothing: if any row is
invalid nothing is stored and the answer is 422 naming each field path.
"""

from __future__ import annotations

import hashlib
import io
import uuid

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.ingest.importer import Recorder
from services.ingest.normalisers import NORMALISERS, FormatError, ImportContext, InvalidSyntax
from services.ingest.settings import IngestSettings
from shared.events import utc_now
from shared.logging import get_logger

log = get_logger(__name__)

TENANT_HEADER = "x-aifinops-tenant"


class BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def build_webhook_app(recorder: Recorder, settings: IngestSettings) -> Starlette:
    async def receive_usage(request: Request) -> JSONResponse:
        format_name = request.path_params["format_name"]
        normaliser = NORMALISERS.get(format_name)
        if normaliser is None:
            return JSONResponse(
                {"error": f"unknown format {format_name!r}", "known_formats": sorted(NORMALISERS)}, status_code=404
            )
        try:
            body = await _read_body(request, settings.max_body_bytes)
        except BodyTooLarge:
            return JSONResponse({"error": f"body is larger than {settings.max_body_bytes} bytes"}, status_code=413)
        tenant = request.headers.get(TENANT_HEADER) or settings.tenant
        correlation_id = request.headers.get("x-correlation-id") or str(uuid.uuid4())
        context = ImportContext(
            tenant=tenant, correlation_id=correlation_id, received_at=utc_now(), file_name=None, channel="webhook"
        )
        try:
            summary = await recorder.record(
                io.BytesIO(body),
                normaliser=normaliser,
                context=context,
                input_sha256=hashlib.sha256(body).hexdigest(),
                all_or_nothing=True,
            )
        except InvalidSyntax as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        except FormatError as error:
            return JSONResponse({"error": str(error)}, status_code=422)
        if summary.rejected:
            return JSONResponse(
                {"error": "the payload has invalid rows; nothing was recorded", **summary.as_dict()}, status_code=422
            )
        return JSONResponse(
            {**summary.as_dict(), "event_ids": summary.accepted_event_ids, "correlation_id": correlation_id},
            status_code=202,
        )

    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def formats(_request: Request) -> JSONResponse:
        return JSONResponse({name: normaliser.description for name, normaliser in NORMALISERS.items()})

    return Starlette(
        routes=[
            Route("/v1/usage/{format_name}", receive_usage, methods=["POST"]),
            Route("/v1/formats", formats, methods=["GET"]),
            Route("/healthz", health, methods=["GET"]),
        ]
    )
