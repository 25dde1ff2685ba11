"""Harness for the fault suite: a private PostgreSQL server the tests may restart, and stacks built on it.

The system PostgreSQL is shared with other work on the machine, so the fault tests never restart it: they run
``initdb`` and ``pg_ctl`` into a temporary folder on a free port (as the ``postgres`` user when running as
root, because PostgreSQL refuses to run as root) and restart that server instead.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.db import create_scratch_database
from shared.embedded_broker import free_port


def _postgres_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    return candidates[0].parent if candidates else None


class PrivatePostgres:
    """A throw-away PostgreSQL server owned by the test run."""

    def __init__(self, base: Path) -> None:
        binaries = _postgres_bin()
        if binaries is None:
            raise FileNotFoundError("pg_ctl and initdb were not found; install PostgreSQL server binaries")
        self.binaries = binaries
        self.base = base
        self.data = base / "data"
        self.port = free_port()
        self.as_postgres_user = os.geteuid() == 0

    def _run(self, *arguments: str) -> None:
        command = [str(self.binaries / arguments[0]), *arguments[1:]]
        if self.as_postgres_user:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)

    def init(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        if self.as_postgres_user:
            shutil.chown(self.base, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.base / "server.log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    @property
    def server_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def new_database(self) -> str:
        url, _name = asyncio.run(create_scratch_database(self.server_url, prefix="aifinops_fault"))
        return url


@pytest.fixture(scope="session")
def private_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivatePostgres]:
    base = Path("/tmp") / f"aifinops-pg-{os.getpid()}"  # short path: the socket name must fit in 107 bytes
    server = PrivatePostgres(base)
    try:
        server.init()
        server.start()
    except (FileNotFoundError, subprocess.CalledProcessError) as error:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"cannot start a private PostgreSQL server for the fault tests: {error}")
    try:
        yield server
    finally:
        try:
            server.stop("immediate")
        finally:
            shutil.rmtree(base, ignore_errors=True)
