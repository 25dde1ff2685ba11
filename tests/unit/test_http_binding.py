"""The HTTP APIs bind to loopback unless AIFINOPS_HTTP_HOST names another address, as a container needs."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette

from shared.service import _start_http
from shared.settings import ServiceSettings


def test_http_host_defaults_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIFINOPS_HTTP_HOST", raising=False)
    assert ServiceSettings().http_host == "127.0.0.1"


def test_http_host_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIFINOPS_HTTP_HOST", "0.0.0.0")
    assert ServiceSettings().http_host == "0.0.0.0"


async def test_server_binds_the_given_host() -> None:
    server, task, port = await _start_http(Starlette(), "127.0.0.2", 0)
    try:
        host = server.servers[0].sockets[0].getsockname()[0]
    finally:
        server.should_exit = True
        await task
    assert host == "127.0.0.2"
    assert port > 0
