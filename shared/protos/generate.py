"""Generate the Python gRPC code for every .proto file under shared/protos with grpcio-tools.

Run from anywhere: ``python -m shared.protos.generate``. Proto imports and generated Python imports are rooted at
the repository, so ``shared/protos/common/v1/common.proto`` becomes ``shared.protos.common.v1.common_pb2``.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
REPOSITORY = PROTO_ROOT.parent.parent


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(output: Path = REPOSITORY) -> None:
    from grpc_tools import protoc

    include = str(resources.files("grpc_tools") / "_proto")
    for path in proto_files():
        relative = path.relative_to(REPOSITORY)
        arguments = [
            "protoc",
            f"-I{REPOSITORY}",
            f"-I{include}",
            f"--python_out={output}",
            f"--pyi_out={output}",
            f"--grpc_python_out={output}",
            str(relative),
        ]
        if protoc.main(arguments) != 0:
            raise SystemExit(f"protoc failed on {relative}")
    for directory in {path.parent for path in proto_files()} | {path.parent.parent for path in proto_files()}:
        marker = output / directory.relative_to(REPOSITORY) / "__init__.py"
        if not marker.exists():
            marker.write_text("")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else REPOSITORY)
