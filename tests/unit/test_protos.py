"""The committed gRPC code is exactly what the project's generator makes from the .proto files."""

from __future__ import annotations

from pathlib import Path

from shared.protos.generate import PROTO_ROOT, REPOSITORY, generate, proto_files


def generated_files(root: Path) -> list[Path]:
    """Return the generated modules and stubs under root; bytecode caches of them do not count."""
    return [path for pattern in ("*_pb2*.py", "*_pb2*.pyi") for path in root.rglob(pattern)]


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    generate(tmp_path)
    generated = sorted(path.relative_to(tmp_path) for path in generated_files(tmp_path))
    committed = sorted(path.relative_to(REPOSITORY) for path in generated_files(PROTO_ROOT))
    assert generated == committed, "run `make protos` and commit the result"
    for relative in generated:
        assert (tmp_path / relative).read_text() == (REPOSITORY / relative).read_text(), (
            f"{relative} differs from the generator's output; run `make protos` instead of editing it"
        )


def test_every_proto_is_versioned() -> None:
    for path in proto_files():
        package = next(line for line in path.read_text().splitlines() if line.startswith("package "))
        assert package.endswith(".v1;"), path
