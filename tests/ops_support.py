"""An ops gRPC server in the test's own process, for servicers over a real channel without the whole stack."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from shared.ops import OpsSecurity, OpsServer, ServiceRegistration, token_sha256

# Client name -> scopes and the tenants it may see (None: every tenant).
CLIENTS: dict[str, tuple[list[str], list[str] | None]] = {
    "admin": (["read", "write"], None),
    "reader": (["read"], None),
    "acme-admin": (["read", "write"], ["acme"]),
}


@dataclass(frozen=True)
class LocalOps:
    target: str
    tokens: dict[str, str]

    def bearer(self, client: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.tokens[client]}"),)


@asynccontextmanager
async def local_ops(
    tmp_path: Path, service: str, registrations: Sequence[ServiceRegistration]
) -> AsyncIterator[LocalOps]:
    """Serve the registrations on a free loopback port with the clients of CLIENTS."""
    tokens = {name: secrets.token_urlsafe(16) for name in CLIENTS}
    path = tmp_path / "grpc-tokens.yaml"
    clients = []
    for name, (scopes, tenants) in CLIENTS.items():
        entry: dict[str, object] = {"name": name, "token_sha256": token_sha256(tokens[name]), "scopes": scopes}
        if tenants is not None:
            entry["tenants"] = tenants
        clients.append(entry)
    path.write_text(yaml.safe_dump({"clients": clients}))
    server = OpsServer(service, 0, registrations, security=OpsSecurity(tokens_file=path))
    await server.start()
    try:
        yield LocalOps(f"127.0.0.1:{server.port}", tokens)
    finally:
        await server.stop(0)
