"""Connecting the CLI to the services' ops gRPC APIs.

Where each service listens and which token to send, in order of precedence:

1. the environment: ``AIFINOPS_<SERVICE>_GRPC`` (``host:port``, for example ``AIFINOPS_RISK_GRPC``),
   ``AIFINOPS_TOKEN`` and, for TLS, ``AIFINOPS_GRPC_TLS_CA_FILE``;
2. the connection file of a running local stack (``AIFINOPS_CONNECTION_FILE``, default
   ``.aifinops/demo/connection.json``), which ``aifinops demo --keep-running`` writes;
3. ``127.0.0.1`` on the default ports 50051 (ingest) to 50055 (optimizer).
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

DEFAULT_PORTS = {"ingest": 50051, "allocation": 50052, "risk": 50053, "value": 50054, "optimizer": 50055}
DEFAULT_CONNECTION_FILE = Path(".aifinops/demo/connection.json")
# The generated stub module and class of each service's ops API.
STUBS = {
    "ingest": ("shared.protos.ingest.v1.ingest_pb2_grpc", "IngestOpsStub"),
    "allocation": ("shared.protos.allocation.v1.allocation_pb2_grpc", "AllocationOpsStub"),
    "risk": ("shared.protos.risk.v1.risk_pb2_grpc", "RiskOpsStub"),
    "value": ("shared.protos.value.v1.value_pb2_grpc", "ValueOpsStub"),
    "optimizer": ("shared.protos.optimizer.v1.optimizer_pb2_grpc", "OptimizerOpsStub"),
}


class OpsConnectionError(RuntimeError):
    """The CLI cannot tell where a service is or which token to use."""


@dataclass
class Connection:
    targets: dict[str, str] = field(default_factory=dict)
    token: str | None = None
    ca_file: Path | None = None
    tenant: str | None = None  # the tenant of the local stack that wrote the connection file

    @classmethod
    def resolve(cls) -> Connection:
        connection = cls(targets={name: f"127.0.0.1:{port}" for name, port in DEFAULT_PORTS.items()})
        path = Path(os.environ.get("AIFINOPS_CONNECTION_FILE", DEFAULT_CONNECTION_FILE))
        if path.exists():
            try:
                stored = json.loads(path.read_text())
            except (OSError, ValueError) as error:
                raise OpsConnectionError(f"{path}: cannot read the connection file: {error}") from None
            connection.targets.update(stored.get("targets", {}))
            connection.token = stored.get("token") or None
            connection.tenant = stored.get("tenant") or None
        for name in DEFAULT_PORTS:
            value = os.environ.get(f"AIFINOPS_{name.upper()}_GRPC")
            if value:
                connection.targets[name] = value
        connection.token = os.environ.get("AIFINOPS_TOKEN") or connection.token
        ca = os.environ.get("AIFINOPS_GRPC_TLS_CA_FILE")
        connection.ca_file = Path(ca) if ca else None
        return connection

    def metadata(self) -> tuple[tuple[str, str], ...]:
        if not self.token:
            raise OpsConnectionError("no ops API token: set AIFINOPS_TOKEN (or run `aifinops demo --keep-running`)")
        return (("authorization", f"Bearer {self.token}"),)

    def channel(self, service: str) -> grpc.aio.Channel:
        target = self.targets[service]
        if self.ca_file is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=self.ca_file.read_bytes())
            return grpc.aio.secure_channel(target, credentials)
        return grpc.aio.insecure_channel(target)

    def stub(self, service: str, channel: grpc.aio.Channel) -> Any:
        module, name = STUBS[service]
        return getattr(importlib.import_module(module), name)(channel)


def write_connection_file(
    path: Path,
    targets: dict[str, str],
    token: str,
    tenant: str | None = None,
    environment: dict[str, str] | None = None,
) -> None:
    """Store where a local stack's services listen, an admin token, its tenant and its environment, owner-only.

    ``environment`` holds the settings the CLI's other commands need to reach the same data (broker, database or
    data folder, tenant, configuration files); `apply_stack_environment` uses them for unset variables.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    document = {"targets": targets, "token": token, "tenant": tenant, "environment": environment or {}}
    with os.fdopen(descriptor, "w") as handle:
        handle.write(json.dumps(document, indent=2))


def apply_stack_environment() -> Path | None:
    """Fill unset settings from the connection file of a running local stack; return the file used, if any.

    Variables already set in the environment win, so a user can always point a command elsewhere.
    """
    path = Path(os.environ.get("AIFINOPS_CONNECTION_FILE", DEFAULT_CONNECTION_FILE))
    if not path.exists():
        return None
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    for name, value in (stored.get("environment") or {}).items():
        if isinstance(name, str) and isinstance(value, str):
            os.environ.setdefault(name, value)
    return path
