"""Which process runs an import, and marking the imports of processes that are gone as interrupted.

An import row has the status "running" from its first batch to its last. A process killed in
between (SIGKILL, a crash, a lost container) never updates it, so each import stores
its owner: host name, kernel boot id, process id and the process's start time. On
start, the CLI and the ingest service look at every running import of their own host
and mark it interrupted when its owner no longer exists. The start time distinguishes a
reused process id from the process that ran the import.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from sqlalchemy import select, update

from services.ingest.tables import IngestImport
from shared.db import Database
from shared.events import utc_now
from shared.logging import get_logger

log = get_logger(__name__)

_IMPORTS = IngestImport.__table__  # type: ignore[attr-defined]
SEPARATOR = "|"


def process_owner(pid: int | None = None) -> str:
    """Return the owner token of a process (by default this one): host, boot id, process id and start time."""
    pid = os.getpid() if pid is None else pid
    return SEPARATOR.join([socket.gethostname(), _boot_id(), str(pid), _start_time(pid) or ""])


def owner_is_gone(owner: str | None) -> bool:
    """Tell whether the process an owner token names has exited.

    Returns False when that cannot be known from here: a token from another host, or
    none at all (imports started before owners were stored).
    """
    if not owner:
        return False
    parts = owner.split(SEPARATOR)
    if len(parts) != 4 or not parts[2].isascii() or not parts[2].isdigit():
        return False
    host, boot_id, pid_text, start_time = parts
    if host != socket.gethostname():
        return False
    if boot_id and boot_id != _boot_id():
        return True  # the machine restarted since
    pid = int(pid_text)
    if start_time:
        return _start_time(pid) != start_time
    return not _process_exists(pid)


async def mark_interrupted_imports(database: Database) -> int:
    """Mark the running imports whose owner process is gone as interrupted, and return how many."""
    async with database.engine.connect() as connection:
        running = (
            await connection.execute(
                select(_IMPORTS.c.import_id, _IMPORTS.c.owner, _IMPORTS.c.file_name, _IMPORTS.c.started_at).where(
                    _IMPORTS.c.status == "running"
                )
            )
        ).all()
    stale = [row for row in running if owner_is_gone(row.owner)]
    for row in stale:
        async with database.transaction() as connection:
            await connection.execute(
                update(_IMPORTS)
                .where(_IMPORTS.c.import_id == row.import_id, _IMPORTS.c.status == "running")
                .values(status="interrupted", finished_at=utc_now())
            )
        log.warning(
            "import.interrupted",
            import_id=row.import_id,
            file=row.file_name,
            started_at=row.started_at.isoformat(),
            reason="the process that ran it is gone; import the file again to finish it",
        )
    return len(stale)


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str | None:
    """Return a process's start time in clock ticks since boot (Linux), or None when it does not exist here."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # Field 2 (the command name) may contain spaces, so count from the ')' that closes it.
    # The start time is field 22 of proc_pid_stat(5), the 20th after that ')'.
    fields = stat[stat.rindex(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else None


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True
