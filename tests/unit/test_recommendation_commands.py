"""The recommendation commands against an SQLite database while the broker is down: changes wait in the outbox."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from aifinops.cli import main
from services.optimizer.handlers import OptimizerHandler
from services.optimizer.policy import OptimizerPolicy, load_alternatives
from services.optimizer.tables import TABLES
from shared.catalogue import PriceCatalogue
from shared.db import Database
from shared.outbox import count_unsent
from tests.unit.factories import incoming, sqlite_outbox
from tests.unit.test_optimizer_handler import OCTOBER


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    async def populate() -> None:
        database, outbox, _publisher = await sqlite_outbox(tmp_path, "optimizer", TABLES)
        policy = OptimizerPolicy(non_interactive_use_cases=frozenset({"document-extraction"}))
        handler = OptimizerHandler(database, outbox, PriceCatalogue.load(), policy, load_alternatives())
        await handler.handle(incoming(*OCTOBER))
        await database.dispose()

    asyncio.run(populate())
    monkeypatch.setenv("AIFINOPS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AIFINOPS_TENANT", "acme")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # nothing listens on port 1
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return tmp_path


def unsent(data_dir: Path) -> int:
    async def count() -> int:
        database = Database(f"sqlite+aiosqlite:///{data_dir / 'optimizer.db'}")
        try:
            return await count_unsent(database, "optimizer")
        finally:
            await database.dispose()

    return asyncio.run(count())


def test_lifecycle_commands_without_broker(data_dir: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(main, ["recommendations", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    views = {(item["kind"], item["scope"]): item for item in json.loads(listed.output)}
    assert len(views) == 7
    target = views[("cheaper_model", "team:document-ai model:openai/gpt-4o tier:standard")]["recommendation_id"][:8]
    before = unsent(data_dir)

    dismissed = runner.invoke(
        main, ["recommendations", "dismiss", target, "--reason", "quality too low on the sample", "--by", "bob"]
    )
    assert dismissed.exit_code == 0, dismissed.output
    assert "dismissed (revision 2)" in dismissed.output
    assert unsent(data_dir) == before + 1  # stored for the optimizer service's relay to send

    again = runner.invoke(main, ["recommendations", "accept", target])
    assert again.exit_code == 2
    assert "is dismissed; it can move to open, not to accepted" in again.output

    too_short = runner.invoke(main, ["recommendations", "accept", target[:4]])
    assert too_short.exit_code == 2
    assert "too short" in too_short.output

    shown = runner.invoke(main, ["recommendations", "show", target, "--json"])
    assert shown.exit_code == 0, shown.output
    detail = json.loads(shown.output)
    assert detail["status_reason"] == "quality too low on the sample"
    assert [step["status"] for step in detail["history"]] == ["open", "dismissed"]
    assert detail["history"][1]["changed_by"] == "bob"


def test_economics_command_without_data(data_dir: Path) -> None:
    result = CliRunner().invoke(main, ["economics", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == []
