"""Webhook request signing: an HMAC-SHA256 secret per source, bound to a timestamp.

A sender names its source in ``x-aifinops-source``, the Unix time in seconds in
``x-aifinops-timestamp`` and ``sha256=<hex>`` in ``x-aifinops-signature``, where the
hex digest is HMAC-SHA256 under the source's secret over the bytes
``<timestamp>.<body>``. The receiver rejects a timestamp more than five minutes
away from its own clock, so a captured request cannot be replayed later. A replay
inside the window carries the same body and is recorded once, as a duplicate.
Signatures are compared in constant time.

The secrets file (``INGEST_WEBHOOK_SECRETS_FILE``) is YAML::

    sources:
      anthropic-admin:                  # the source name senders put in x-aifinops-source
        secret_file: /run/secrets/anthropic-admin   # or `secret: ...` inline
        tenants: [acme]                 # tenants this source may write to; "*" allows any
      gpu-cluster-a:
        secret: "at least 32 characters of random text ..."
        tenants: ["*"]

A source without ``tenants`` may write only to the service's default tenant.
Secrets are never logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SOURCE_HEADER = "x-aifinops-source"
TIMESTAMP_HEADER = "x-aifinops-timestamp"
SIGNATURE_HEADER = "x-aifinops-signature"
SIGNATURE_PREFIX = "sha256="
TOLERANCE_SECONDS = 300
MIN_SECRET_CHARS = 32
ANY_TENANT = "*"


class SecretsFileError(ValueError):
    """The webhook secrets file is invalid; the message names the source and key, never a secret."""


class SignatureRejected(Exception):
    """A webhook request that is not signed by a known source, or is signed for another time or tenant."""

    def __init__(self, reason: str, *, status_code: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


@dataclass(frozen=True, slots=True)
class WebhookSource:
    name: str
    secret: bytes
    tenants: frozenset[str] | None  # None: only the service's default tenant

    def may_write(self, tenant: str, default_tenant: str) -> bool:
        if self.tenants is None:
            return tenant == default_tenant
        return ANY_TENANT in self.tenants or tenant in self.tenants

    def __repr__(self) -> str:  # keeps the secret out of logs and tracebacks
        return f"WebhookSource(name={self.name!r}, tenants={sorted(self.tenants) if self.tenants else None})"


def load_sources(path: Path) -> dict[str, WebhookSource]:
    """Read the secrets file; raise SecretsFileError naming what is wrong."""
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise SecretsFileError(f"cannot read webhook secrets file {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise SecretsFileError(f"webhook secrets file {path} is not valid YAML: {error}") from None
    entries = document.get("sources") if isinstance(document, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise SecretsFileError(f"webhook secrets file {path} must have a non-empty 'sources' mapping")
    return {str(name): _source(str(name), entry, path) for name, entry in entries.items()}


def _source(name: str, entry: Any, path: Path) -> WebhookSource:
    where = f"{path}: sources.{name}"
    if not isinstance(entry, dict):
        raise SecretsFileError(f"{where} must be a mapping with 'secret' or 'secret_file'")
    unknown = set(entry) - {"secret", "secret_file", "tenants"}
    if unknown:
        raise SecretsFileError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    if ("secret" in entry) == ("secret_file" in entry):
        raise SecretsFileError(f"{where} needs exactly one of 'secret' and 'secret_file'")
    if "secret_file" in entry:
        secret_path = Path(str(entry["secret_file"]))
        if not secret_path.is_absolute():
            secret_path = path.parent / secret_path
        try:
            secret = secret_path.read_text().strip()
        except OSError as error:
            raise SecretsFileError(f"{where}.secret_file: cannot read {secret_path}: {error.strerror}") from None
    else:
        secret = str(entry["secret"])
    if len(secret) < MIN_SECRET_CHARS:
        raise SecretsFileError(f"{where}: the secret must be at least {MIN_SECRET_CHARS} characters long")
    tenants_value = entry.get("tenants")
    tenants: frozenset[str] | None = None
    if tenants_value is not None:
        if not isinstance(tenants_value, list) or not all(isinstance(item, str) and item for item in tenants_value):
            raise SecretsFileError(f'{where}.tenants must be a list of tenant names, or ["*"]')
        tenants = frozenset(tenants_value)
    return WebhookSource(name=name, secret=secret.encode(), tenants=tenants)


def compute_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def signed_headers(source: str, secret: bytes, body: bytes, *, now: float | None = None) -> dict[str, str]:
    """Build the three signing headers for a request body, as a sender does."""
    timestamp = str(int(time.time() if now is None else now))
    return {
        SOURCE_HEADER: source,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: compute_signature(secret, timestamp, body),
    }


def verify_request(
    sources: Mapping[str, WebhookSource], headers: Mapping[str, str], body: bytes, *, now: float | None = None
) -> WebhookSource:
    """Return the source that signed the request; raise SignatureRejected with the reason otherwise."""
    name = headers.get(SOURCE_HEADER)
    timestamp = headers.get(TIMESTAMP_HEADER)
    signature = headers.get(SIGNATURE_HEADER)
    missing = [
        header
        for header, value in ((SOURCE_HEADER, name), (TIMESTAMP_HEADER, timestamp), (SIGNATURE_HEADER, signature))
        if not value
    ]
    if missing:
        raise SignatureRejected(f"missing signing headers: {', '.join(missing)}")
    assert name is not None
    assert timestamp is not None
    assert signature is not None
    source = sources.get(name)
    if source is None:
        raise SignatureRejected(f"unknown webhook source {name[:64]!r}")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureRejected(f"{TIMESTAMP_HEADER} must be Unix time in whole seconds")
    skew = abs((time.time() if now is None else now) - int(timestamp))
    if skew > TOLERANCE_SECONDS:
        raise SignatureRejected(
            f"{TIMESTAMP_HEADER} is {int(skew)} s away from the server clock; at most {TOLERANCE_SECONDS} s "
            "is accepted, so sign each request when it is sent"
        )
    expected = compute_signature(source.secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise SignatureRejected(f"{SIGNATURE_HEADER} does not match the body for source {name!r}")
    return source
