"""Helpers shared by the HTTP APIs (ingest's webhook and value's outcomes API)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse


class BodyTooLarge(Exception):
    """The request body is larger than the API accepts."""


async def read_body(request: Request, limit: int) -> bytes:
    """Read the request body; raise BodyTooLarge as soon as it passes ``limit`` bytes, declared or sent."""
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


def error_response(status_code: int, message: str, **extra: object) -> JSONResponse:
    """Build a JSON error response: ``{"error": message, ...extra}``."""
    return JSONResponse({"error": message, **extra}, status_code=status_code)
