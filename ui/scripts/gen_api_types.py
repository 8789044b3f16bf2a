"""Regenerate ui/src/api/schema.d.ts from the service's OpenAPI document (run from the repo root).

`python ui/scripts/gen_api_types.py` writes the file; `--check` exits 1 when the committed file is
stale (tests/browser/test_ui_build.py runs it, so an API change without a regenerated client fails).
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UI = ROOT / "ui"
TARGET = UI / "src" / "api" / "schema.d.ts"


def openapi_document() -> dict:
    """The OpenAPI document of `api.main.create_app` (no lifespan: nothing is started)."""
    sys.path.insert(0, str(ROOT))
    from api.main import create_app

    return create_app("sqlite://").openapi()


def generate() -> str:
    """The TypeScript declarations openapi-typescript makes of the current API."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "openapi.json"
        out = Path(tmp) / "schema.d.ts"
        spec.write_text(json.dumps(openapi_document(), indent=1, sort_keys=True))
        binary = UI / "node_modules" / ".bin" / "openapi-typescript"
        if not binary.exists():
            raise SystemExit(f"{binary} is missing: run `npm ci` in ui/ (make ui does)")
        subprocess.run([str(binary), str(spec), "-o", str(out)], check=True, capture_output=True, cwd=UI)
        return out.read_text()


def main() -> int:
    """Write the file, or with --check report whether it is current."""
    fresh = generate()
    if "--check" in sys.argv[1:]:
        if TARGET.exists() and TARGET.read_text() == fresh:
            return 0
        print(f"{TARGET.relative_to(ROOT)} is stale: run `cd ui && npm run gen:api`", file=sys.stderr)
        return 1
    TARGET.write_text(fresh)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
