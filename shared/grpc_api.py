"""Helpers for the ops API servicers: status codes that mean what they say, page tokens, field validation.

A servicer method raises ``InvalidArgument`` (names the field), ``LookupError`` (not found) or ``Conflict`` (the
request does not fit the current state); ``handle_errors`` turns them into INVALID_ARGUMENT, NOT_FOUND and
FAILED_PRECONDITION. Page tokens are opaque to clients: base64 of the keyset of the last row returned.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import grpc

from shared.logging import get_logger
from shared.ops import current_client

log = get_logger(__name__)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500

ResponseT = TypeVar("ResponseT")
ItemT = TypeVar("ItemT")


class InvalidArgument(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


class TenantDenied(PermissionError):
    """The caller's token does not cover the tenant it asked for."""


def authorised_tenant(requested: str) -> str:
    """Return the tenant a call may read or change: the one requested, if the caller's token covers it.

    A token limited to one tenant may leave the tenant out; any other caller must name it.
    """
    client = current_client.get()
    allowed = client.tenants if client is not None else None
    if not requested:
        if allowed is not None and len(allowed) == 1:
            return next(iter(allowed))
        raise InvalidArgument("tenant", "is required")
    if allowed is not None and requested not in allowed:
        raise TenantDenied(f"this token does not cover tenant {requested!r}")
    return requested


class Conflict(RuntimeError):
    """The request is valid but does not fit the current state, such as resolving a resolved finding."""


def _status_for(error: Exception) -> tuple[grpc.StatusCode, str] | None:
    if isinstance(error, InvalidArgument):
        return grpc.StatusCode.INVALID_ARGUMENT, str(error)
    if isinstance(error, LookupError):
        return grpc.StatusCode.NOT_FOUND, str(error.args[0] if error.args else error)
    if isinstance(error, TenantDenied):
        return grpc.StatusCode.PERMISSION_DENIED, str(error)
    if isinstance(error, Conflict):
        return grpc.StatusCode.FAILED_PRECONDITION, str(error)
    return None


def handle_errors(method: Callable[..., Awaitable[ResponseT]]) -> Callable[..., Awaitable[ResponseT]]:
    """Map domain errors of a unary method to gRPC status codes."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> ResponseT:
        try:
            return await method(self, request, context)
        except Exception as error:
            status = _status_for(error)
            if status is None:
                log.exception("ops.call_failed", method=method.__name__)
                raise
            await context.abort(*status)
            raise  # context.abort raises; this line is not reached

    return wrapper


def handle_stream_errors(
    method: Callable[..., AsyncIterator[ResponseT]],
) -> Callable[..., AsyncIterator[ResponseT]]:
    """Map domain errors of a server-streaming method to gRPC status codes."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[ResponseT]:
        try:
            async for item in method(self, request, context):
                yield item
        except Exception as error:
            status = _status_for(error)
            if status is None:
                log.exception("ops.call_failed", method=method.__name__)
                raise
            await context.abort(*status)

    return wrapper


def page_size(value: int) -> int:
    if value < 0:
        raise InvalidArgument("page_size", f"must not be negative, got {value}")
    if value > MAX_PAGE_SIZE:
        raise InvalidArgument("page_size", f"must be at most {MAX_PAGE_SIZE}, got {value}")
    return value or DEFAULT_PAGE_SIZE


def encode_page_token(keyset: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(keyset, default=str).encode()).decode()


def decode_page_token(token: str, length: int) -> list[Any] | None:
    """Return the keyset a page token carries, None for an empty token; raise InvalidArgument when it is not ours."""
    if not token:
        return None
    try:
        keyset = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidArgument("page_token", "is not a token this server issued") from None
    if not isinstance(keyset, list) or len(keyset) != length:
        raise InvalidArgument("page_token", "is not a token this server issued")
    return keyset


def required(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument(field, "is required")
    return value


def decimal_field(value: str, field: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise InvalidArgument(field, f"must be a decimal number written as a string, got {value!r}") from None
    if not number.is_finite():
        raise InvalidArgument(field, f"must be finite, got {value!r}")
    return number


def client_name() -> str:
    """Return the name of the client making the current call, from its token; empty outside a call."""
    client = current_client.get()
    return client.name if client is not None else ""


def keyset_page(
    items: Sequence[ItemT], sort_key: Callable[[ItemT], tuple[Any, ...]], size: int, after: tuple[Any, ...] | None
) -> tuple[list[ItemT], tuple[Any, ...] | None]:
    """Return the page of ``items`` (sorted by ``sort_key``) after the keyset ``after``, and the next page's keyset.

    For results a domain function already returns whole and sorted. A keyset, unlike an offset, skips or repeats
    nothing when items are added or removed between two pages. The next keyset is None on the last page.
    """
    remaining = [item for item in items if after is None or sort_key(item) > after]
    page = remaining[:size]
    return page, sort_key(page[-1]) if len(remaining) > size else None


def require_every_tenant(action: str) -> None:
    """Raise TenantDenied unless the caller's token covers every tenant, as changes shared by all tenants need."""
    client = current_client.get()
    if client is not None and client.tenants is not None:
        raise TenantDenied(f"{action} affects every tenant; this token covers only {', '.join(sorted(client.tenants))}")
