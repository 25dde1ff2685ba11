"""A running pipeline for the integration tests: the broker, the database, the five services and the ITSM stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from aifinops.stack import Stack, StackConfig
from tests.conftest import EXAMPLES, ROOT


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap_servers: str, database_url: str | None
) -> Iterator[Stack]:
    run_dir: Path = tmp_path_factory.mktemp("stack")
    config = StackConfig(
        run_dir=run_dir,
        tenant="default",
        database_url=database_url,
        bootstrap_servers=kafka_bootstrap_servers,
        allocation_rules=EXAMPLES / "config" / "allocation_rules.yaml",
        budgets=EXAMPLES / "config" / "budgets.yaml",
        optimizer_policy=EXAMPLES / "config" / "optimizer.yaml",
        extra_env={"INGEST_MAX_BODY_BYTES": str(1024 * 1024)},
        risk_policy=EXAMPLES / "config" / "policy.yaml",
        contracts=EXAMPLES / "config" / "contracts.yaml",
        itsm_standin=True,
        allocation_terms=ROOT / "tests" / "fixtures" / "allocation_terms.yaml",
        use_cases=EXAMPLES / "config" / "use_cases.yaml",
        clients={
            "admin": (("read", "write"), None),
            "reader": (("read",), None),
            "ops-ingest-only": (("read", "write"), ("ops-ingest",)),  # may see tenant ops-ingest and nothing else
        },
    )
    running = Stack(config)
    try:
        asyncio.run(running.start())
        yield running
    finally:
        running.stop()
