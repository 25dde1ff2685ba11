"""Reading Azure OpenAI meters: the model, token kind, deployment type and batch tier that a meter bills.

Azure names each AI meter in free text, with abbreviations that vary between
model generations: ``GPT 5 outpt Glbl 1M Tokens``, ``gpt-4o-0806-Inp-glbl Tokens``,
``gpt 4.1 nano cached Inp glbl Tokens``, ``o3 mini 0131 Batch Outp Data Zone Tokens``
(spellings from the Azure retail prices API). The reading below is best effort and
only adds tags. A bill line's cost is the billed cost whatever the meter name reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

AI_METER_CATEGORIES = frozenset({"azure openai", "foundry models", "cognitive services"})

_INPUT = frozenset({"inp", "inpt", "input", "in"})
_OUTPUT = frozenset({"outp", "outpt", "output", "out", "opt"})
_CACHED = frozenset({"cached", "cchd", "cd"})
_DEPLOYMENTS = {
    "glbl": "global",
    "gl": "global",
    "global": "global",
    "dz": "data_zone",
    "dzone": "data_zone",
    "dzn": "data_zone",
    "regnl": "regional",
    "regional": "regional",
    "rgnl": "regional",
}
_SIZES = ("mini", "nano")


@dataclass(frozen=True, slots=True)
class MeterReading:
    model: str | None
    token_type: str | None  # input, cached_input or output
    deployment: str | None  # global, data_zone or regional
    batch: bool

    def tags(self) -> dict[str, str]:
        values = {"token_type": self.token_type, "deployment": self.deployment}
        return {name: value for name, value in values.items() if value is not None}


def read_meter(category: str | None, subcategory: str | None, meter_name: str | None, unit: str | None) -> MeterReading:
    """Read what an Azure AI meter bills; a meter that is not an AI token meter yields no model."""
    if not meter_name or (category or "").strip().lower() not in AI_METER_CATEGORIES:
        return MeterReading(None, None, None, False)
    words = [word for word in re.split(r"[\s\-_]+", meter_name.lower()) if word]
    text = " ".join(words)
    is_token_meter = "tokens" in words or "token" in (unit or "").lower()
    token_type = None
    if any(word in _INPUT for word in words):
        token_type = "cached_input" if any(word in _CACHED for word in words) else "input"
    elif any(word in _OUTPUT for word in words):
        token_type = "output"
    deployment = next((_DEPLOYMENTS[word] for word in words if word in _DEPLOYMENTS), None)
    if deployment is None and "data zone" in text:
        deployment = "data_zone"
    model = _model(subcategory, words) if is_token_meter else None
    return MeterReading(model, token_type, deployment, "batch" in words)


def _model(subcategory: str | None, words: list[str]) -> str | None:
    if not subcategory or not subcategory.strip():
        return None
    model = re.sub(r"\s+", "-", subcategory.strip().lower())
    for size in _SIZES:
        if size in words and not model.endswith(f"-{size}"):
            model = f"{model}-{size}"
    return model
