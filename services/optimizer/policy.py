"""The optimizer's policy file and its table of cheaper same-family models.

Example policy::

    non_interactive_use_cases: [document-extraction]   # owners declared these need no real-time answer
    cheaper_model:
      max_input_tokens_per_request: 16000
      max_output_tokens_per_request: 12000
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml


class PolicyError(ValueError):
    """The optimizer policy file is invalid; the message names the field."""


@dataclass(frozen=True)
class OptimizerPolicy:
    non_interactive_use_cases: frozenset[str] = field(default_factory=frozenset)
    max_input_tokens_per_request: int = 16000
    max_output_tokens_per_request: int = 12000

    @classmethod
    def load(cls, path: Path | None) -> OptimizerPolicy:
        if path is None:
            return cls()
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise PolicyError(f"{path}: not valid YAML: {error}") from None
        if not isinstance(document, dict):
            raise PolicyError(f"{path}: must be a mapping")
        use_cases = document.get("non_interactive_use_cases", [])
        if not isinstance(use_cases, list) or not all(isinstance(item, str) and item for item in use_cases):
            raise PolicyError(f"{path}: non_interactive_use_cases: must be a list of use case names")
        limits = document.get("cheaper_model", {}) or {}
        if not isinstance(limits, dict):
            raise PolicyError(f"{path}: cheaper_model: must be a mapping")
        values = {}
        for name in ("max_input_tokens_per_request", "max_output_tokens_per_request"):
            value = limits.get(name, getattr(cls, name))
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise PolicyError(f"{path}: cheaper_model.{name}: must be a positive whole number of tokens")
            values[name] = value
        return cls(non_interactive_use_cases=frozenset(use_cases), **values)


@dataclass(frozen=True, slots=True)
class Alternative:
    cheaper_model: str
    caveat: str


def load_alternatives() -> dict[tuple[str, str], Alternative]:
    text = resources.files("shared.data").joinpath("model_alternatives.csv").read_text()
    lines = [line for line in io.StringIO(text) if not line.startswith("#")]
    return {
        (row["provider"], row["model"]): Alternative(row["cheaper_model"], row["caveat"])
        for row in csv.DictReader(lines)
    }
