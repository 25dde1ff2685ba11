"""Calling the services' ops APIs from the command line: one call, a stream, every page, and the tenant.

A failed call prints the service's status code and message on stderr and exits: 2 when the CLI cannot tell
where a service is or which token to send, 2 for a bad argument, 1 for any other error. Where to connect is
described in ``aifinops/ops_client.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from aifinops.console import SafeConsole
from aifinops.ops_client import Connection, OpsConnectionError

console = SafeConsole()
errors = SafeConsole(stderr=True)
T = TypeVar("T")

UNARY_TIMEOUT_S = 30.0
STREAM_TIMEOUT_S = 600.0


def tenant_of(option: str | None) -> str:
    """Return the tenant a command works on: --tenant, else AIFINOPS_TENANT, else the local stack's, else default."""
    if option:
        return option
    from_environment = os.environ.get("AIFINOPS_TENANT")
    if from_environment:
        return from_environment
    try:
        return Connection.resolve().tenant or "default"
    except OpsConnectionError:
        return "default"


def run(work: Callable[[Connection], Awaitable[T]]) -> T:
    """Run API work with a resolved connection; print a failure and exit non-zero."""
    try:
        return asyncio.run(work(Connection.resolve()))
    except OpsConnectionError as error:
        errors.print(f"error: {error}", highlight=False)
        sys.exit(2)
    except grpc.aio.AioRpcError as error:
        errors.print(
            f"error: the service returned {error.code().name}: {error.details()}", highlight=False, soft_wrap=True
        )
        sys.exit(2 if error.code() == grpc.StatusCode.INVALID_ARGUMENT else 1)


def call(service: str, method: str, request: Message, *, timeout: float = UNARY_TIMEOUT_S) -> Any:
    """Call one unary method of a service's ops API and return the response."""

    async def work(connection: Connection) -> Any:
        async with connection.channel(service) as channel:
            stub = connection.stub(service, channel)
            return await getattr(stub, method)(request, metadata=connection.metadata(), timeout=timeout)

    return run(work)


async def stream_messages(
    connection: Connection, service: str, method: str, request: Message, *, timeout: float = STREAM_TIMEOUT_S
) -> AsyncIterator[Any]:
    """Yield the messages of a server-streaming method as they arrive."""
    async with connection.channel(service) as channel:
        stub = connection.stub(service, channel)
        async for message in getattr(stub, method)(request, metadata=connection.metadata(), timeout=timeout):
            yield message


def collect(service: str, method: str, request: Message, *, timeout: float = STREAM_TIMEOUT_S) -> list[Any]:
    """Call a server-streaming method and return every message."""

    async def work(connection: Connection) -> list[Any]:
        return [item async for item in stream_messages(connection, service, method, request, timeout=timeout)]

    return run(work)


def every_page(service: str, method: str, request: Message, field: str) -> list[Any]:
    """Call a paged method until its last page and return the items of ``field`` from every page."""

    async def work(connection: Connection) -> list[Any]:
        items: list[Any] = []
        async with connection.channel(service) as channel:
            stub = connection.stub(service, channel)
            while True:
                response = await getattr(stub, method)(request, metadata=connection.metadata(), timeout=UNARY_TIMEOUT_S)
                items.extend(getattr(response, field))
                if not response.next_page_token:
                    return items
                request.page_token = response.next_page_token  # type: ignore[attr-defined]

    return run(work)


def as_dict(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def print_json(value: Any) -> None:
    """Print messages (or lists of them) as JSON, with every field present and int64 fields as strings."""
    if isinstance(value, Message):
        value = as_dict(value)
    elif isinstance(value, list):
        value = [as_dict(item) if isinstance(item, Message) else item for item in value]
    console.print_json(json.dumps(value))
