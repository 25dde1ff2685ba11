"""Imports whose process is gone are marked interrupted on the next start, and the ops API shows it."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import grpc
import pytest

from services.ingest.dead_letters import DEAD_LETTERS, DeadLetterStore
from services.ingest.import_owners import mark_interrupted_imports, owner_is_gone, process_owner
from services.ingest.importer import Recorder
from services.ingest.normalisers import FormatError, ImportContext, RowResult
from services.ingest.ops import registration
from services.ingest.tables import TABLES, IngestImport
from shared.db import Database
from shared.outbox import Outbox
from shared.protos.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from tests.ops_support import local_ops

IMPORTS = IngestImport.__table__  # type: ignore[attr-defined]
STARTED = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def exited_process_owner() -> str:
    """Return the owner token of a child process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    owner = process_owner(child.pid)
    child.kill()
    child.wait()
    return owner


class TestOwnerIsGone:
    def test_this_process_is_alive(self) -> None:
        assert owner_is_gone(process_owner()) is False

    def test_exited_process_is_gone(self) -> None:
        assert owner_is_gone(exited_process_owner()) is True

    def test_reused_process_id_is_gone(self) -> None:
        host, boot_id, pid, start_time = process_owner().split("|")
        assert start_time, "this test needs /proc"

        # The same process id with another start time is another process.
        assert owner_is_gone("|".join([host, boot_id, pid, str(int(start_time) - 1)])) is True

    def test_other_host_or_no_owner_is_unknown(self) -> None:
        _, boot_id, pid, start_time = exited_process_owner().split("|")

        assert owner_is_gone("|".join([socket.gethostname() + "-other", boot_id, pid, start_time])) is False
        assert owner_is_gone(None) is False
        assert owner_is_gone("not an owner token") is False


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'ingest.db'}")
    await database.create_tables([*TABLES, DEAD_LETTERS])
    try:
        yield database
    finally:
        await database.dispose()


async def add_import(database: Database, import_id: str, status: str, owner: str | None) -> None:
    async with database.transaction() as connection:
        await connection.execute(
            IMPORTS.insert().values(
                import_id=import_id,
                tenant="acme",
                channel="file",
                file_name=f"{import_id}.csv",
                input_sha256="0" * 64,
                source_format="focus-csv",
                started_at=STARTED,
                status=status,
                owner=owner,
            )
        )


async def statuses(database: Database) -> dict[str, str]:
    async with database.engine.connect() as connection:
        rows = (await connection.execute(IMPORTS.select())).all()
    return {row.import_id: row.status for row in rows}


async def test_marks_only_running_imports_of_gone_processes(database: Database) -> None:
    gone = exited_process_owner()
    await add_import(database, "killed", "running", gone)
    await add_import(database, "live", "running", process_owner())
    await add_import(database, "finished", "done", gone)
    await add_import(database, "elsewhere", "running", "other-host|boot|1|1")

    marked = await mark_interrupted_imports(database)

    assert marked == 1
    assert await statuses(database) == {
        "killed": "interrupted",
        "live": "running",
        "finished": "done",
        "elsewhere": "running",
    }
    assert await mark_interrupted_imports(database) == 0


async def test_ops_api_shows_interrupted(database: Database, tmp_path: Path) -> None:
    await add_import(database, "killed", "running", exited_process_owner())
    await mark_interrupted_imports(database)

    service = registration(database, DeadLetterStore(database, None))  # type: ignore[arg-type]
    async with local_ops(tmp_path, "ingest", [service]) as ops:
        async with grpc.aio.insecure_channel(ops.target) as channel:
            stub = ingest_pb2_grpc.IngestOpsStub(channel)
            listed = await stub.ListImports(ingest_pb2.ListImportsRequest(tenant="acme"), metadata=ops.bearer("reader"))
            found = await stub.GetImport(ingest_pb2.GetImportRequest(import_id="killed"), metadata=ops.bearer("reader"))

    assert [item.status for item in listed.imports] == ["interrupted"]
    assert found.status == "interrupted"
    assert found.finished_at != ""


class FailingNormaliser:
    """Yields one empty row, then fails as a file cut off mid-way would."""

    format_name = "focus-csv"
    description = "test"
    reads_json = False

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def detect(self, head: bytes, file_name: str | None) -> bool:
        return False

    def rows(self, stream: IO[bytes], context: ImportContext) -> Iterator[RowResult]:
        yield RowResult(1, b"{}", empty=True)
        raise self.error


@pytest.mark.parametrize(
    ("error", "status"),
    [(FormatError("the FOCUS file line 2 is not valid CSV"), "failed"), (KeyboardInterrupt(), "interrupted")],
)
async def test_recorder_stores_how_an_import_stopped(database: Database, error: BaseException, status: str) -> None:
    recorder = Recorder(database, Outbox("ingest", database, None), None, send=False)  # type: ignore[arg-type]
    context = ImportContext(tenant="acme", correlation_id="test", received_at=STARTED, file_name="cut.csv")

    with pytest.raises(type(error)):
        await recorder.record(
            io.BytesIO(b""), normaliser=FailingNormaliser(error), context=context, input_sha256="1" * 64
        )

    async with database.engine.connect() as connection:
        row = (await connection.execute(IMPORTS.select())).one()
    assert row.status == status
    assert row.owner == process_owner()
    assert row.finished_at is not None


def test_owner_names_this_process() -> None:
    host, _, pid, _ = process_owner().split("|")

    assert host == socket.gethostname()
    assert pid == str(os.getpid())


async def run_command(*arguments: str, environment: dict[str, str]) -> tuple[int, str]:
    """Run the aifinops command in a child process, so that this test's event loop keeps serving gRPC."""
    command = Path(sys.executable).parent / "aifinops"
    child = await asyncio.create_subprocess_exec(
        str(command), *arguments, env={**os.environ, **environment}, stdout=asyncio.subprocess.PIPE
    )
    output, _ = await child.communicate()
    return child.returncode or 0, output.decode()


async def test_imports_command_lists_interrupted(database: Database, tmp_path: Path) -> None:
    await add_import(database, "killed", "running", exited_process_owner())
    await mark_interrupted_imports(database)

    service = registration(database, DeadLetterStore(database, None))  # type: ignore[arg-type]
    async with local_ops(tmp_path, "ingest", [service]) as ops:
        environment = {
            "AIFINOPS_CONNECTION_FILE": str(tmp_path / "no-stack.json"),
            "AIFINOPS_TENANT": "acme",
            "AIFINOPS_INGEST_GRPC": ops.target,
            "AIFINOPS_TOKEN": ops.tokens["reader"],
        }
        listed_code, listed = await run_command("imports", "list", "--json", environment=environment)
        shown_code, shown = await run_command("imports", "show", "killed", environment=environment)

    assert listed_code == 0, listed
    assert [(item["import_id"], item["status"]) for item in json.loads(listed)] == [("killed", "interrupted")]
    assert shown_code == 0, shown
    assert json.loads(shown)["status"] == "interrupted"
