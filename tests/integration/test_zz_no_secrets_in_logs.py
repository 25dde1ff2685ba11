"""Secrets never reach the services' logs: ops tokens, webhook secrets and ITSM credentials.

Named to run last in the integration session, so the logs it reads hold everything the other tests did.
"""

from __future__ import annotations

import pytest

from aifinops.stack import Stack

pytestmark = pytest.mark.integration


def test_logs_hold_no_secret(stack: Stack) -> None:
    secrets = {f"ops token {name}": token for name, token in stack.tokens.items()}
    secrets["webhook secret"] = stack.config.webhook_secret
    for name in ("password", "token", "webhook_secret", "agent_password"):  # user names and e-mail are not secret
        secrets[f"ITSM {name}"] = stack.itsm_credentials[name]
    logs = {path.name: path.read_text(errors="replace") for path in (stack.config.run_dir / "logs").glob("*.log")}
    assert "ingest.log" in logs
    assert "risk.log" in logs
    leaks = [f"{label} in {name}" for name, text in logs.items() for label, value in secrets.items() if value in text]
    assert leaks == []
