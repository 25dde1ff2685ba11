"""The committed gRPC code is exactly what the project's generator makes from the .proto files."""

from __future__ import annotations

from pathlib import Path

from shared.protos.generate import PROTO_ROOT, REPOSITORY, generate, proto_files


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    generate(tmp_path)
    generated = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*_pb2*.py*"))
    committed = sorted(path.relative_to(REPOSITORY) for path in PROTO_ROOT.rglob("*_pb2*.py*"))
    assert generated == committed, "run `make protos` and commit the result"
    for relative in generated:
        assert (tmp_path / relative).read_text() == (REPOSITORY / relative).read_text(), (
            f"{relative} differs from the generator's output; run `make protos` instead of editing it"
        )


def test_every_proto_is_versioned() -> None:
    for path in proto_files():
        package = next(line for line in path.read_text().splitlines() if line.startswith("package "))
        assert package.endswith(".v1;"), path
