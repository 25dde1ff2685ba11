"""Run the ITSM stand-in on loopback: ``python -m services.risk.itsm_standin --port 0 --state-file F``.

Credentials come from the environment, never from arguments: ITSM_STANDIN_SERVICENOW_USER,
ITSM_STANDIN_SERVICENOW_PASSWORD, ITSM_STANDIN_JIRA_EMAIL, ITSM_STANDIN_JIRA_TOKEN and
ITSM_STANDIN_WEBHOOK_SECRET, plus optional agent accounts in ITSM_STANDIN_AGENTS as ``user:password`` pairs
separated by commas. With ``--ready-file`` it writes ``{"port": N, "pid": P}`` there once it serves.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
from pathlib import Path

import uvicorn

from services.risk.itsm_standin.app import Credentials, build_app
from services.risk.itsm_standin.state import StandinState
from shared.logging import configure_logging, get_logger

log = get_logger(__name__)

CREDENTIAL_VARIABLES = {
    "servicenow_user": "ITSM_STANDIN_SERVICENOW_USER",
    "servicenow_password": "ITSM_STANDIN_SERVICENOW_PASSWORD",
    "jira_email": "ITSM_STANDIN_JIRA_EMAIL",
    "jira_token": "ITSM_STANDIN_JIRA_TOKEN",
    "webhook_secret": "ITSM_STANDIN_WEBHOOK_SECRET",
}


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.risk.itsm_standin", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1; 0 picks a free one.")
    parser.add_argument("--state-file", type=Path, help="JSON file that keeps the tickets across restarts.")
    parser.add_argument("--ready-file", type=Path, help="File to write the bound port to once serving.")
    parser.add_argument(
        "--jira-projects", default="FINOPS=10000", help="Jira projects as KEY=ID pairs separated by commas."
    )
    return parser.parse_args(argv)


def read_credentials() -> Credentials:
    missing = [name for name in CREDENTIAL_VARIABLES.values() if not os.environ.get(name)]
    if missing:
        raise SystemExit(f"set {', '.join(missing)} to the credentials the stand-in should accept")
    agents = dict(pair.split(":", 1) for pair in os.environ.get("ITSM_STANDIN_AGENTS", "").split(",") if ":" in pair)
    return Credentials(**{field: os.environ[name] for field, name in CREDENTIAL_VARIABLES.items()}, agents=agents)


async def serve(arguments: argparse.Namespace) -> None:
    credentials = read_credentials()
    projects = dict(pair.split("=", 1) for pair in arguments.jira_projects.split(",") if "=" in pair)
    state = StandinState.open(arguments.state_file)
    # Bind the socket first, so that the links the app returns can contain its port.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", arguments.port))
    port = int(sock.getsockname()[1])
    app = build_app(state, f"http://127.0.0.1:{port}", credentials, projects)
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    if arguments.ready_file is not None:
        temporary = arguments.ready_file.with_suffix(".tmp")
        temporary.write_text(json.dumps({"port": port, "pid": os.getpid()}))
        temporary.replace(arguments.ready_file)
    log.info(
        "standin.started",
        port=port,
        incidents=len(state.incidents),
        issues=len(state.issues),
        state_file=str(arguments.state_file or "(memory)"),
    )
    await task


def main(argv: list[str] | None = None) -> None:
    configure_logging("itsm-standin", level=os.environ.get("AIFINOPS_LOG_LEVEL", "INFO"))
    asyncio.run(serve(parse_arguments(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    main()
