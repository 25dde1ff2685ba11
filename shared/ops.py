"""The ops gRPC server every service runs: health checking, server reflection, bearer tokens with scopes, TLS.

Clients send ``authorization: Bearer <token>``. The tokens file (``AIFINOPS_GRPC_TOKENS_FILE``, YAML) lists the
SHA-256 of each token, never the token itself, with the client's name and scopes::

    clients:
      - name: finops-cli
        token_sha256: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
        scopes: [read, write]
        tenants: [acme]          # optional: the tenants this client may see; all tenants when absent

Every method of a service's ops API needs the ``read`` or ``write`` scope (``ServiceRegistration.scopes``).
A missing or unknown token gets UNAUTHENTICATED, a token without the scope PERMISSION_DENIED, and a method missing
from the scope table is refused. Health checking and reflection need no token, so load balancers and grpcurl can
find the services. Without a tokens file every ops call is refused. With ``AIFINOPS_GRPC_TLS_CERT_FILE`` and
``AIFINOPS_GRPC_TLS_KEY_FILE`` set the server speaks TLS only.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import grpc
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from shared.logging import get_logger

log = get_logger(__name__)

Scope = Literal["read", "write"]
PUBLIC_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


class TokensFileError(ValueError):
    """The tokens file is invalid; the message names the entry and field."""


@dataclass(frozen=True)
class ServiceRegistration:
    """One gRPC service to serve: how to add it, its full name and the scope each method needs."""

    add_to_server: Callable[[grpc.aio.Server], None]
    full_name: str
    scopes: Mapping[str, Scope] = field(default_factory=dict)  # method name -> scope


@dataclass(frozen=True, slots=True)
class Client:
    name: str
    scopes: frozenset[str]
    tenants: frozenset[str] | None = None  # None: every tenant


# The client of the call being served; set around each ops method by the interceptor.
current_client: ContextVar[Client | None] = ContextVar("current_client", default=None)


def load_clients(path: Path | None) -> dict[str, Client]:
    """Read the tokens file into a map from token hash to client; an absent path gives no clients."""
    if path is None:
        return {}
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise TokensFileError(f"{path}: cannot read the tokens file: {error}") from None
    entries = document.get("clients") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise TokensFileError(f"{path}: must be a mapping with a 'clients' list")
    clients: dict[str, Client] = {}
    for index, entry in enumerate(entries):
        where = f"{path}: clients[{index}]"
        if not isinstance(entry, dict):
            raise TokensFileError(f"{where}: must be a mapping")
        digest = entry.get("token_sha256")
        if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise TokensFileError(f"{where}.token_sha256: must be 64 lower-case hex digits")
        scopes = entry.get("scopes")
        if not isinstance(scopes, list) or not scopes or not set(scopes) <= {"read", "write"}:
            raise TokensFileError(f"{where}.scopes: must list 'read', 'write' or both")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise TokensFileError(f"{where}.name: must be a non-empty string")
        tenants = entry.get("tenants")
        if tenants is not None and (
            not isinstance(tenants, list) or not tenants or not all(isinstance(t, str) and t for t in tenants)
        ):
            raise TokensFileError(f"{where}.tenants: must be a non-empty list of tenant names when given")
        clients[digest] = Client(name, frozenset(scopes), frozenset(tenants) if tenants else None)
    return clients


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    """Checks the bearer token and scope of every call before the method runs."""

    def __init__(self, clients: Mapping[str, Client], scopes: Mapping[str, Scope]) -> None:
        self.clients = dict(clients)
        self.scopes = dict(scopes)  # full method path -> scope

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        handler = await continuation(handler_call_details)
        if handler is None or method.startswith(PUBLIC_SERVICES):
            return handler
        metadata = dict(handler_call_details.invocation_metadata or ())
        refusal = self._refusal(method, metadata)
        if refusal is None:
            return _handler_with_client(handler, self._client(metadata))
        code, message = refusal
        log.warning("ops.call_refused", method=method, code=code.name, reason=message)
        return _refusing_handler(handler, code, message)

    def _client(self, metadata: dict[str, Any]) -> Client | None:
        """Return the client whose token the call's bearer header carries, or None."""
        header = metadata.get("authorization")
        if not isinstance(header, str) or not header.startswith("Bearer "):
            return None
        digest = token_sha256(header[len("Bearer ") :])
        return next((client for known, client in self.clients.items() if hmac.compare_digest(known, digest)), None)

    def _refusal(self, method: str, metadata: dict[str, Any]) -> tuple[grpc.StatusCode, str] | None:
        if not self.clients:
            return grpc.StatusCode.UNAUTHENTICATED, "no client tokens are configured (set AIFINOPS_GRPC_TOKENS_FILE)"
        header = metadata.get("authorization")
        if not isinstance(header, str) or not header.startswith("Bearer ") or len(header) <= len("Bearer "):
            return grpc.StatusCode.UNAUTHENTICATED, "missing bearer token in the authorization metadata"
        client = self._client(metadata)
        if client is None:
            return grpc.StatusCode.UNAUTHENTICATED, "unknown bearer token"
        needed = self.scopes.get(method)
        if needed is None:
            return grpc.StatusCode.PERMISSION_DENIED, f"method {method} has no scope assigned, so it is refused"
        if needed not in client.scopes:
            return grpc.StatusCode.PERMISSION_DENIED, f"client {client.name} lacks the {needed!r} scope for {method}"
        return None


def _handler_with_client(handler: grpc.RpcMethodHandler, client: Client | None) -> grpc.RpcMethodHandler:
    """Wrap a method handler so the method runs with ``current_client`` set to the caller.

    grpc.aio serves each call in a task of its own, so the value set there is seen by that call only.
    """
    options = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
    if handler.unary_unary:
        unary = handler.unary_unary

        async def call_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            current_client.set(client)
            return await unary(request, context)

        return grpc.unary_unary_rpc_method_handler(call_unary, **options)
    if handler.unary_stream:
        stream = handler.unary_stream

        async def call_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            current_client.set(client)
            async for item in stream(request, context):
                yield item

        return grpc.unary_stream_rpc_method_handler(call_stream, **options)
    return handler  # NOTE: no ops API has client-streaming methods, so those run without current_client


def _refusing_handler(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    async def refuse(_request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    async def refuse_stream(_request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)
        yield  # pragma: no cover - abort raises, this only makes the function an async generator

    options = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(refuse, **options)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(refuse_stream, **options)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(refuse, **options)
    return grpc.stream_stream_rpc_method_handler(refuse_stream, **options)


@dataclass(frozen=True)
class OpsSecurity:
    tokens_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None


class OpsServer:
    def __init__(
        self,
        service: str,
        port: int,
        registrations: Sequence[ServiceRegistration] = (),
        *,
        host: str = "127.0.0.1",
        security: OpsSecurity | None = None,
    ) -> None:
        security = security or OpsSecurity()
        self.service = service
        scopes = {
            f"/{registration.full_name}/{method}": scope
            for registration in registrations
            for method, scope in registration.scopes.items()
        }
        clients = load_clients(security.tokens_file)
        if not clients and registrations:
            log.warning("ops.no_tokens", hint="every ops call is refused until AIFINOPS_GRPC_TOKENS_FILE is set")
        self.server = grpc.aio.server(interceptors=[TokenAuthInterceptor(clients, scopes)])
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        for registration in registrations:
            registration.add_to_server(self.server)
        names = [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]
        names.extend(registration.full_name for registration in registrations)
        reflection.enable_server_reflection(names, self.server)
        address = f"{host}:{port}"
        if security.tls_cert_file and security.tls_key_file:
            credentials = grpc.ssl_server_credentials(
                [(security.tls_key_file.read_bytes(), security.tls_cert_file.read_bytes())]
            )
            self.port = self.server.add_secure_port(address, credentials)
            self.tls = True
        else:
            self.port = self.server.add_insecure_port(address)
            self.tls = False

    async def start(self) -> None:
        await self.server.start()
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self.health.set(f"aifinops.{self.service}", health_pb2.HealthCheckResponse.SERVING)
        log.info("ops.started", grpc_port=self.port, tls=self.tls)

    async def stop(self, grace_s: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)
