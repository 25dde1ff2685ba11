"""HMAC-SHA256 signatures of webhook bodies, outbound and inbound.

The header is ``X-Aifinops-Signature: t=<unix seconds>,v1=<hex digest>``, where the digest is
HMAC-SHA256(secret, "<unix seconds>.<raw body>"). Signing the timestamp with the body lets a receiver
reject a replayed request older than its tolerance.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Aifinops-Signature"
DELIVERY_HEADER = "X-Aifinops-Delivery"
DEFAULT_TOLERANCE_S = 300


class SignatureError(ValueError):
    """A webhook signature is missing, malformed, too old or wrong."""


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    moment = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{moment}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={moment},v1={digest}"


def verify(secret: str, body: bytes, header: str | None, *, tolerance_s: int = DEFAULT_TOLERANCE_S) -> None:
    """Raise SignatureError unless the header signs this body with the secret within the tolerance."""
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    if "t" not in parts or "v1" not in parts or not parts["t"].isdigit():
        raise SignatureError(f"malformed {SIGNATURE_HEADER} header; expected t=<unix seconds>,v1=<hex digest>")
    timestamp = int(parts["t"])
    if abs(time.time() - timestamp) > tolerance_s:
        raise SignatureError(f"signature timestamp {timestamp} is more than {tolerance_s} s from now")
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    if not hmac.compare_digest(expected, parts["v1"]):
        raise SignatureError("signature does not match the body")
