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
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from services.ingest.signing import signed_headers
from shared.db import Database
from shared.embedded_broker import EmbeddedBroker
from shared.kafka import consumer_lag, ensure_topics
from shared.logging import get_logger
from shared.ops import token_sha256
from shared.outbox import count_unsent
from shared.settings import ServiceSettings
from shared.topics import SUBSCRIPTIONS, group_id

log = get_logger(__name__)

SERVICES = ("ingest", "allocation", "risk", "value", "optimizer")
# The webhook source that the local tools (demo, tests, bench) sign their requests as. It may write to any tenant.
LOCAL_WEBHOOK_SOURCE = "aifinops-local"


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
    # Ops API clients to create tokens for: name -> (scopes, tenants or None for all tenants).
    clients: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]] = field(
        default_factory=lambda: {"admin": (("read", "write"), None), "reader": (("read",), None)}
    )
    risk_policy: Path | None = None
    contracts: Path | None = None
    itsm_standin: bool = False  # start the local ITSM stand-in and point risk's connectors at it
    allocation_terms: Path | None = None
    # Signing secret of LOCAL_WEBHOOK_SOURCE, new for every stack unless given.
    webhook_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    use_cases: Path | None = None
    # Copies to run of a service, such as {"allocation": 2}; one when not named. The copies of a service join the
    # same consumer groups, so they share its partitions, and each has its own ports, ready file and log.
    copies: dict[str, int] = field(default_factory=dict)


def copy_name(service: str, copy: int) -> str:
    """Name one copy of a service: the service's own name for the first copy, ``allocation-2`` for the second."""
    return service if copy == 1 else f"{service}-{copy}"


@dataclass
class ServiceProcess:
    name: str
    process: subprocess.Popen[bytes]
    ready_file: Path
    log_file: Path
    ports: dict[str, int] = field(default_factory=dict)
    service: str = ""  # the service this process runs; name differs from it for the second and later copies


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.broker: EmbeddedBroker | None = None
        self.processes: dict[str, ServiceProcess] = {}
        self.bootstrap_servers = config.bootstrap_servers or ""
        self.tokens: dict[str, str] = {}  # client name -> bearer token for the ops APIs
        self.standin: ServiceProcess | None = None
        self.standin_port = 0
        # Credentials of this run's ITSM stand-in; they reach the stand-in and risk by environment only.
        self.itsm_credentials = {
            "user": "aifinops-risk",
            "password": secrets.token_urlsafe(16),
            "email": "risk@aifinops.invalid",
            "token": secrets.token_urlsafe(16),
            "webhook_secret": secrets.token_urlsafe(24),
            "agent": "pat.agent",
            "agent_password": secrets.token_urlsafe(16),
        }

    @property
    def data_dir(self) -> Path:
        return self.config.run_dir / "data"

    @property
    def tokens_file(self) -> Path:
        return self.config.run_dir / "grpc-tokens.yaml"

    def _write_tokens(self) -> None:
        """Create a random token per configured client; the file holds only their SHA-256."""
        clients = []
        for name, (scopes, tenants) in self.config.clients.items():
            token = self.tokens.setdefault(name, secrets.token_urlsafe(32))
            entry: dict[str, object] = {"name": name, "token_sha256": token_sha256(token), "scopes": list(scopes)}
            if tenants is not None:
                entry["tenants"] = list(tenants)
            clients.append(entry)
        self.tokens_file.write_text(yaml.safe_dump({"clients": clients}))
        self.tokens_file.chmod(0o600)

    def grpc_target(self, service: str) -> str:
        return f"127.0.0.1:{self.processes[service].ports['grpc_port']}"

    def ops_client_environment(self, client: str = "admin") -> dict[str, str]:
        """Variables that point the CLI's ops API commands at this stack's services, with a client's token."""
        targets = {
            f"AIFINOPS_{name.upper()}_GRPC": self.grpc_target(name) for name in self.processes if name in SERVICES
        }
        return {**targets, "AIFINOPS_TOKEN": self.tokens[client]}

    @property
    def webhook_secrets_file(self) -> Path:
        return self.config.run_dir / "webhook-sources.yaml"

    def write_webhook_secrets(self) -> None:
        """Write the secrets file of ingest's webhook and value's outcomes API: one local source for any tenant.

        The file is created with mode 0600.
        """
        path = self.webhook_secrets_file
        path.parent.mkdir(parents=True, exist_ok=True)
        text = (
            "# Written by aifinops.stack for this run only.\n"
            f"sources:\n  {LOCAL_WEBHOOK_SOURCE}:\n    secret: {json.dumps(self.config.webhook_secret)}\n"
            '    tenants: ["*"]\n'
        )
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)

    def webhook_headers(self, body: bytes, tenant: str) -> dict[str, str]:
        """Headers that sign a webhook or outcomes API body as the local source and name its tenant."""
        headers = signed_headers(LOCAL_WEBHOOK_SOURCE, self.config.webhook_secret.encode(), body)
        return {**headers, "x-aifinops-tenant": tenant}

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
            "RISK_HTTP_PORT": "0",
            "AIFINOPS_GRPC_PORT": "0",
            "PYTHONUNBUFFERED": "1",
            "AIFINOPS_GRPC_TOKENS_FILE": str(self.tokens_file),
            "INGEST_WEBHOOK_SECRETS_FILE": str(self.webhook_secrets_file.resolve()),
            "VALUE_WEBHOOK_SECRETS_FILE": str(self.webhook_secrets_file.resolve()),
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
            "RISK_POLICY_FILE": self.config.risk_policy,
            "RISK_CONTRACTS_FILE": self.config.contracts,
            "ALLOCATION_TERMS_FILE": self.config.allocation_terms,
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
        self._write_tokens()
        self.write_webhook_secrets()
        if not self.bootstrap_servers:
            self.broker = EmbeddedBroker(log_path=self.config.run_dir / "logs" / "broker.log")
            self.broker.start()
            self.bootstrap_servers = self.broker.bootstrap_servers
        await ensure_topics(self.bootstrap_servers)
        if self.config.itsm_standin:
            await self.start_itsm_standin()
        names: list[str] = []
        for name in services:
            for copy in range(1, max(1, self.config.copies.get(name, 1)) + 1):
                names.append(self.start_service(name, copy=copy).name)
        await self.wait_ready(tuple(names), timeout_s)

    def start_service(self, service: str, *, copy: int = 1) -> ServiceProcess:
        """Start one copy of a service; its process is known as ``copy_name(service, copy)``."""
        name = copy_name(service, copy)
        ready_file = self.config.run_dir / f"{name}.ready.json"
        ready_file.unlink(missing_ok=True)
        log_file = self.config.run_dir / "logs" / f"{name}.log"
        env = self.environment() | {"AIFINOPS_READY_FILE": str(ready_file)}
        if service == "risk":
            env |= self.itsm_environment()
        with log_file.open("ab") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", f"services.{service}"],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = ServiceProcess(name, process, ready_file, log_file, service=service)
        return self.processes[name]

    def service_pids(self) -> dict[str, int]:
        """Return the process id of every running service copy, by its name."""
        return {name: item.process.pid for name, item in self.processes.items() if item.process.poll() is None}

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

    async def pending_events(self, services: Iterable[str] = SERVICES) -> int:
        """Count consumer lag over every group plus unsent outbox rows of every service, or of the named ones."""
        selected = set(services)
        total = 0
        for service, topics in SUBSCRIPTIONS.items():
            if service not in selected:
                continue
            for topic in topics:
                total += await consumer_lag(self.bootstrap_servers, group_id(service, topic), [str(topic)])
        settings = self.settings()
        for service in (name for name in SERVICES if name in selected):
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

    def restart_broker(self) -> None:
        """Replace the embedded broker with a fresh one on the same port: every topic and offset is lost."""
        if self.broker is None:
            raise RuntimeError("only an embedded broker can be restarted by the stack")
        port = self.broker.port
        self.broker.stop()
        self.broker = EmbeddedBroker(port=port, log_path=self.config.run_dir / "logs" / "broker.log")
        self.broker.start()

    def itsm_environment(self) -> dict[str, str]:
        """Point risk's ServiceNow, Jira and webhook connectors at the stand-in, with short retry delays."""
        if not self.config.itsm_standin:
            return {}
        base = f"http://127.0.0.1:{self.standin_port}"
        credentials = self.itsm_credentials
        env = {
            "RISK_SERVICENOW_URL": base,
            "RISK_SERVICENOW_USER": credentials["user"],
            "RISK_SERVICENOW_PASSWORD": credentials["password"],
            "RISK_JIRA_URL": base,
            "RISK_JIRA_EMAIL": credentials["email"],
            "RISK_JIRA_API_TOKEN": credentials["token"],
            "RISK_WEBHOOK_URL": f"{base}/webhook/findings",
            "RISK_WEBHOOK_SECRET": credentials["webhook_secret"],
            "RISK_ITSM_INTERVAL_S": "0.5",
            "RISK_ITSM_POLL_INTERVAL_S": "2",
            "RISK_ITSM_RETRY_BASE_S": "0.5",
            "RISK_ITSM_RETRY_MAX_S": "4",
            "RISK_ITSM_TIMEOUT_S": "5",
        }
        return env | {name: value for name, value in self.config.extra_env.items() if name.startswith("RISK_ITSM_")}

    async def start_itsm_standin(self, timeout_s: float = 30.0) -> int:
        """Start the ITSM stand-in, on the port it had before when restarted; return the port."""
        ready_file = self.config.run_dir / "itsm-standin.ready.json"
        ready_file.unlink(missing_ok=True)
        log_file = self.config.run_dir / "logs" / "itsm-standin.log"
        credentials = self.itsm_credentials

        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "ITSM_STANDIN_SERVICENOW_USER": credentials["user"],
            "ITSM_STANDIN_SERVICENOW_PASSWORD": credentials["password"],
            "ITSM_STANDIN_JIRA_EMAIL": credentials["email"],
            "ITSM_STANDIN_JIRA_TOKEN": credentials["token"],
            "ITSM_STANDIN_WEBHOOK_SECRET": credentials["webhook_secret"],
            "ITSM_STANDIN_AGENTS": f"{credentials['agent']}:{credentials['agent_password']}",
        }
        command = [
            sys.executable,
            "-m",
            "services.risk.itsm_standin",
            "--port",
            str(self.standin_port),
            "--state-file",
            str(self.config.run_dir / "itsm-standin.json"),
            "--ready-file",
            str(ready_file),
        ]

        with log_file.open("ab") as output:
            process = subprocess.Popen(
                command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.standin = ServiceProcess("itsm-standin", process, ready_file, log_file)

        deadline = time.monotonic() + timeout_s
        while not ready_file.exists():
            if process.poll() is not None:
                tail = log_file.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the ITSM stand-in exited with code {process.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the ITSM stand-in was not ready within {timeout_s} s; see {log_file}")
            await asyncio.sleep(0.05)
        self.standin_port = int(json.loads(ready_file.read_text())["port"])
        return self.standin_port

    def stop_itsm_standin(self, timeout_s: float = 10.0) -> None:
        standin, self.standin = self.standin, None
        if standin is None or standin.process.poll() is not None:
            return
        standin.process.send_signal(signal.SIGTERM)
        try:
            standin.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            standin.process.kill()
            standin.process.wait()

    def itsm_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.standin_port}{path}"

    async def ticket_backlog(self) -> dict[str, int]:
        """Count risk findings whose ITSM tickets still wait to be sent, and those rejected."""
        from services.risk.lifecycle import ticket_backlog

        database = Database(self.settings().database_url_for("risk"))
        try:
            return await ticket_backlog(database)
        finally:
            await database.dispose()

    async def wait_until_tickets_sent(self, timeout_s: float = 60.0) -> None:
        """Wait until risk's ticket outbox contains no pending work; rejected work does not count as pending."""
        deadline = time.monotonic() + timeout_s
        while (backlog := await self.ticket_backlog())["pending"]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{backlog['pending']} findings still wait for their tickets after {timeout_s} s")
            await asyncio.sleep(0.3)

    def stop(self) -> None:
        for name in list(self.processes):
            self.stop_service(name)
        self.stop_itsm_standin()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
