"""Merge the spec's Client-Server OpenAPI files into one document that schemathesis can load.

The spec splits the API over ~70 YAML files, each with its own `servers` base path
(`/_matrix/client/v3`, `/_matrix/client/v1`, ...) and relative `$ref`s into `definitions/`.
Schemathesis takes one document, so this inlines every reference (a reference that recurses
into itself becomes an empty schema, which accepts anything), prefixes each path with its
file's base path and declares the bearer token scheme the operations name. Operations the
spec marks deprecated stay in: the server answers them, so they must not fail either.

Usage: python bench/fuzz_bundle.py SPEC_DIR OUT.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

_FILES: dict[Path, Any] = {}


def _load(path: Path) -> Any:
    if path not in _FILES:
        _FILES[path] = yaml.safe_load(path.read_text())
    return _FILES[path]


def _pointer(document: Any, pointer: str) -> Any:
    node = document
    for part in pointer.lstrip("/").split("/") if pointer.strip("/") else []:
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _inline(node: Any, file: Path, stack: tuple[tuple[Path, str], ...]) -> Any:
    """Return `node` with every `$ref` replaced by a copy of what it points to (sibling keys
    of a `$ref` are merged over the target, as OpenAPI 3.1 allows)."""
    if isinstance(node, list):
        return [_inline(item, file, stack) for item in node]
    if not isinstance(node, dict):
        return node
    if isinstance(node.get("$ref"), str):
        target, _, pointer = node["$ref"].partition("#")
        target_file = (file.parent / target).resolve() if target else file
        key = (target_file, pointer)
        if key in stack:
            return {}
        resolved = _inline(_pointer(_load(target_file), pointer), target_file, (*stack, key))
        siblings = {k: _inline(v, file, stack) for k, v in node.items() if k != "$ref"}
        return {**resolved, **siblings} if isinstance(resolved, dict) else resolved
    return {key: _inline(value, file, stack) for key, value in node.items()}


def _base_path(document: dict[str, Any]) -> str:
    variables = document["servers"][0].get("variables", {})
    base: str = variables.get("basePath", {}).get("default", "")
    return base


def bundle(spec_dir: Path) -> dict[str, Any]:
    """One OpenAPI 3.1 document holding every operation of every file in `spec_dir`."""
    paths: dict[str, Any] = {}
    for file in sorted(spec_dir.glob("*.yaml")):
        document = _load(file.resolve())
        if not document.get("paths"):
            continue
        base = _base_path(document)
        for path, item in document["paths"].items():
            full = base + path
            inlined = _inline(item, file.resolve(), ())
            paths.setdefault(full, {}).update(inlined)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Matrix Client-Server API (bundled for fuzzing)", "version": "1"},
        "paths": paths,
        "components": {"securitySchemes": {
            "accessTokenBearer": {"type": "http", "scheme": "bearer"},
            "appserviceAccessTokenBearer": {"type": "http", "scheme": "bearer"},
        }},
    }


def main() -> None:
    spec_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    document = bundle(spec_dir)
    out.write_text(json.dumps(document, indent=1))
    operations = sum(
        1 for item in document["paths"].values() for method in item
        if method in {"get", "put", "post", "delete", "patch", "head", "options"}
    )
    print(f"{len(document['paths'])} paths, {operations} operations -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
