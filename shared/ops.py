"""The ops gRPC server every service runs: health checking and server reflection, plus its own services."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from shared.logging import get_logger

log = get_logger(__name__)

# Adds one gRPC service to a server and returns its full name for reflection.
ServiceRegistrar = Callable[[grpc.aio.Server], str]


class OpsServer:
    def __init__(self, service: str, port: int, registrars: Sequence[ServiceRegistrar] = ()) -> None:
        self.service = service
        self.server = grpc.aio.server()
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]
        names.extend(registrar(self.server) for registrar in registrars)
        reflection.enable_server_reflection(names, self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")

    async def start(self) -> None:
        await self.server.start()
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self.health.set(f"aifinops.{self.service}", health_pb2.HealthCheckResponse.SERVING)
        log.info("ops.started", grpc_port=self.port)

    async def stop(self, grace_s: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)
