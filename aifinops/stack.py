"""Running the whole pipeline locally: the broker and the five services, each in its own process.

Used by ``aifinops demo``, the integration tests and the benchmark. The broker is
the one named by ``KAFKA_BOOTSTRAP_SERVERS`` when set, else an embedded Tansu
broker on a free loopback port. The database is ``DATABASE_URL`` when set, else
one SQLite file per service under the run folder.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from shared.db import Database
from shared.embedded_broker import EmbeddedBroker
from shared.kafka import consumer_lag, ensure_topics
from shared.logging import get_logger
from shared.outbox import count_unsent
from shared.settings import ServiceSettings
from shared.topics import SUBSCRIPTIONS, group_id

log = get_logger(__name__)

SERVICES = ("ingest", "allocation", "risk", "value", "optimizer")


@dataclass
class StackConfig:
    run_dir: Path
    tenant: str = "default"
    database_url: str | None = None
    bootstrap_servers: str | None = None
    allocation_rules: Path | None = None
    budgets: Path | None = None
    optimizer_policy: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    use_cases: Path | None = None


@dataclass
class ServiceProcess:
    name: str
    process: subprocess.Popen[bytes]
    ready_file: Path
    log_file: Path
    ports: dict[str, int] = field(default_factory=dict)


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.broker: EmbeddedBroker | None = None
        self.processes: dict[str, ServiceProcess] = {}
        self.bootstrap_servers = config.bootstrap_servers or ""

    @property
    def data_dir(self) -> Path:
        return self.config.run_dir / "data"

    def settings(self) -> ServiceSettings:
        """Settings that point a process of our own (the CLI, a test) at this stack's broker and databases."""
        return ServiceSettings(
            KAFKA_BOOTSTRAP_SERVERS=self.bootstrap_servers,
            DATABASE_URL=self.config.database_url,
            AIFINOPS_DATA_DIR=str(self.data_dir),
            AIFINOPS_TENANT=self.config.tenant,
        )

    def environment(self) -> dict[str, str]:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "AIFINOPS_DATA_DIR": str(self.data_dir),
            "AIFINOPS_TENANT": self.config.tenant,
            "INGEST_HTTP_PORT": "0",
            "VALUE_HTTP_PORT": "0",
            "AIFINOPS_GRPC_PORT": "0",
            "PYTHONUNBUFFERED": "1",
            **self.config.extra_env,
        }
        if self.config.database_url:
            env["DATABASE_URL"] = self.config.database_url
        else:
            env.pop("DATABASE_URL", None)
        optional = {
            "ALLOCATION_RULES_FILE": self.config.allocation_rules,
            "RISK_BUDGETS_FILE": self.config.budgets,
            "OPTIMIZER_CONFIG_FILE": self.config.optimizer_policy,
            "VALUE_USE_CASES_FILE": self.config.use_cases,
        }
        for name, path in optional.items():
            if path is not None:
                env[name] = str(Path(path).resolve())
        return env

    async def start(self, services: tuple[str, ...] = SERVICES, timeout_s: float = 60.0) -> None:
        self.config.run_dir.mkdir(parents=True, exist_ok=True)
        (self.config.run_dir / "logs").mkdir(exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.bootstrap_servers:
            self.broker = EmbeddedBroker(log_path=self.config.run_dir / "logs" / "broker.log")
            self.broker.start()
            self.bootstrap_servers = self.broker.bootstrap_servers
        await ensure_topics(self.bootstrap_servers)
        for name in services:
            self.start_service(name)
        await self.wait_ready(services, timeout_s)

    def start_service(self, name: str) -> ServiceProcess:
        ready_file = self.config.run_dir / f"{name}.ready.json"
        ready_file.unlink(missing_ok=True)
        log_file = self.config.run_dir / "logs" / f"{name}.log"
        env = self.environment() | {"AIFINOPS_READY_FILE": str(ready_file)}
        with log_file.open("ab") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = ServiceProcess(name, process, ready_file, log_file)
        return self.processes[name]

    async def wait_ready(self, services: tuple[str, ...], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for name in services:
            service = self.processes[name]
            while not service.ready_file.exists():
                if service.process.poll() is not None:
                    tail = service.log_file.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"service {name} exited with code {service.process.returncode}:\n{tail}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"service {name} was not ready within {timeout_s} s; see {service.log_file}")
                await asyncio.sleep(0.1)
            service.ports = json.loads(service.ready_file.read_text())
        log.info("stack.ready", services=",".join(services), bootstrap_servers=self.bootstrap_servers)

    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.processes[service].ports['http_port']}{path}"

    async def pending_events(self) -> int:
        """Count consumer lag over every group plus unsent outbox rows of every service."""
        total = 0
        for service, topics in SUBSCRIPTIONS.items():
            for topic in topics:
                total += await consumer_lag(self.bootstrap_servers, group_id(service, topic), [str(topic)])
        settings = self.settings()
        for service in SERVICES:
            database = Database(settings.database_url_for(service))
            try:
                total += await count_unsent(database, service)
            finally:
                await database.dispose()
        return total

    async def wait_until_drained(self, timeout_s: float = 120.0, quiet_checks: int = 3) -> None:
        """Wait until no consumer lags and no outbox holds unsent events, several checks in a row."""
        deadline = time.monotonic() + timeout_s
        quiet = 0
        while quiet < quiet_checks:
            for name, service in self.processes.items():
                if service.process.poll() is not None:
                    raise RuntimeError(
                        f"service {name} exited with code {service.process.returncode}; see {service.log_file}"
                    )
            pending = await self.pending_events()
            quiet = quiet + 1 if pending == 0 else 0
            if time.monotonic() > deadline:
                raise TimeoutError(f"the pipeline still had {pending} pending events after {timeout_s} s")
            await asyncio.sleep(0.3)

    def stop_service(self, name: str, *, kill: bool = False, timeout_s: float = 30.0) -> int | None:
        service = self.processes.pop(name, None)
        if service is None or service.process.poll() is not None:
            return service.process.returncode if service else None
        service.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            return service.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            service.process.kill()
            return service.process.wait()

    def stop(self) -> None:
        for name in list(self.processes):
            self.stop_service(name)
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
