"""Import rate and memory of a large FOCUS file: ``aifinops import`` on N generated rows, timed, with its RSS sampled.

Run with ``python -m bench.import_rate --rows 1000000``. The file is generated
first from the 200 rows of ``examples/data/focus_1.0_sample_trimmed.csv``,
repeated with a new ``Id`` and charge period per row so that every row is a new
event. The import runs as its own process, exactly as a user runs it, against the
embedded broker and ``DATABASE_URL`` when set (a scratch database is created on
that server and dropped afterwards) or a fresh SQLite file otherwise.

The parent samples the import's resident memory from ``/proc/<pid>/status`` every
second and reports the peak (``VmHWM``) and the RSS after 10 %, 50 % and 100 % of
the rows, which shows whether memory stays flat as the file grows. It also reports
the size of the ingest database afterwards (events, evidence and outbox). Prints
one JSON line on stdout and a table on stderr, and removes its working folder.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.embedded_broker import EmbeddedBroker
from shared.kafka import ensure_topics
from shared.settings import ServiceSettings

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "data" / "focus_1.0_sample_trimmed.csv"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def generate_focus_file(path: Path, rows: int) -> int:
    """Write ``rows`` FOCUS rows to ``path`` and return its size in bytes."""
    with SAMPLE.open(newline="") as source:
        reader = csv.DictReader(source)
        columns = list(reader.fieldnames or [])
        templates = list(reader)
    with path.open("w", newline="") as target:
        writer = csv.DictWriter(target, fieldnames=columns)
        writer.writeheader()
        for index in range(rows):
            row = dict(templates[index % len(templates)])
            start = datetime(2024, 1, 1) + timedelta(hours=index // len(templates))
            row["Id"] = str(index)
            row["ChargePeriodStart"] = start.strftime(TIME_FORMAT)
            row["ChargePeriodEnd"] = (start + timedelta(hours=1)).strftime(TIME_FORMAT)
            writer.writerow(row)
    return path.stat().st_size


def memory_kib(pid: int) -> dict[str, int]:
    """Return VmRSS and VmHWM of a process in KiB, or {} when it has exited."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    values = {}
    for line in lines:
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values


async def scratch_database(server_url: str) -> tuple[str, str]:
    url = ServiceSettings(DATABASE_URL=server_url).database_url
    assert url is not None
    name = f"aifinops_bench_{uuid.uuid4().hex[:10]}"
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()
    return url.rpartition("/")[0] + f"/{name}", name


async def database_mib(database_url: str, name: str) -> float:
    url = ServiceSettings(DATABASE_URL=database_url).database_url
    assert url is not None
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        size = await connection.scalar(text("SELECT pg_database_size(:name)"), {"name": name})
    await engine.dispose()
    return round(int(size) / 1024 / 1024, 1)


async def drop_database(server_url: str, name: str) -> None:
    url = ServiceSettings(DATABASE_URL=server_url).database_url
    assert url is not None
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


def run_import(path: Path, env: dict[str, str], rows: int, sample_interval_s: float = 1.0) -> dict[str, object]:
    """Run ``aifinops import`` on the file and sample its memory until it exits."""
    command = [sys.executable, "-m", "aifinops.cli", "import", str(path), "--json", "--tenant", "bench"]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples: list[tuple[float, int]] = []
    peak = 0
    while process.poll() is None:
        memory = memory_kib(process.pid)
        if memory:
            samples.append((time.perf_counter() - started, memory["VmRSS"]))
            peak = max(peak, memory.get("VmHWM", 0))
        time.sleep(sample_interval_s)
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"import failed with code {process.returncode}:\n{stderr[-3000:]}")
    summary = json.loads(stdout)
    if summary["accepted"] != rows:
        raise RuntimeError(f"expected {rows} accepted rows, got {summary}")

    def rss_at(fraction: float) -> int:
        # Rows arrive at a steady rate, so a fraction of the run time is about that fraction of the rows.
        moment = seconds * fraction
        earlier = [rss for at, rss in samples if at <= moment]
        return earlier[-1] if earlier else 0

    return {
        "seconds": round(seconds, 1),
        "rows_per_s": round(rows / seconds),
        "peak_rss_mib": round(max(peak, max((rss for _, rss in samples), default=0)) / 1024, 1),
        "rss_mib_at_10_50_100_percent": [round(rss_at(fraction) / 1024, 1) for fraction in (0.1, 0.5, 1.0)],
    }


async def run(rows: int, keep_file: Path | None, sample_interval_s: float = 1.0) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="aifinops-import-bench-"))
    path = keep_file or work / f"focus_{rows}.csv"
    if not path.exists():
        size = generate_focus_file(path, rows)
    else:
        size = path.stat().st_size
    broker = EmbeddedBroker(log_path=work / "broker.log")
    broker.start()
    server_url = os.environ.get("DATABASE_URL")
    database_name = None
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "AIFINOPS_DATA_DIR": str(work / "data")}
    try:
        await ensure_topics(broker.bootstrap_servers)
        if server_url:
            env["DATABASE_URL"], database_name = await scratch_database(server_url)
        else:
            env.pop("DATABASE_URL", None)
        measured = await asyncio.to_thread(run_import, path, env, rows, sample_interval_s)
        if database_name:
            measured["database_mib"] = await database_mib(env["DATABASE_URL"], database_name)
        else:
            sqlite_files = (work / "data").glob("ingest.db*")
            measured["database_mib"] = round(sum(file.stat().st_size for file in sqlite_files) / 1024 / 1024, 1)
    finally:
        broker.stop()
        if server_url and database_name:
            await drop_database(server_url, database_name)
        shutil.rmtree(work, ignore_errors=True)  # a file kept with --file lives outside this folder
    return {
        "rows": rows,
        "file_mib": round(size / 1024 / 1024, 1),
        "database": "postgresql" if server_url else "sqlite",
        **measured,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="Rows in the generated FOCUS file (default 1000000)."
    )
    parser.add_argument("--file", type=Path, help="Reuse or keep the generated file at this path.")
    args = parser.parse_args()
    result = asyncio.run(run(args.rows, args.file))
    print(json.dumps(result))
    print(f"{'measure':32} {'value':>24}", file=sys.stderr)
    for key, value in result.items():
        print(f"{key:32} {value!s:>24}", file=sys.stderr)


if __name__ == "__main__":
    main()
