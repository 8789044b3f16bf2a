"""Masking personal data in run records.

A flow lists the field names it treats as personal data (`execution.sensitive`, e.g.
`["mobile", "id_card"]`); connectors mark input and output fields `x-sensitive` or `x-secret`.
Their values are replaced by ``MASK`` wherever those names occur in what is *recorded* (the
trigger payload, step inputs and outputs, the run output); the data that flows between the
steps of a run is never changed.
"""
from __future__ import annotations

from typing import Any

import orjson

MASK = "***"


def mask_value(value: Any, keys: frozenset[str]) -> Any:
    """A copy of `value` with the values of `keys` (case-insensitive names) masked, at any depth."""
    if isinstance(value, dict):
        return {k: (MASK if isinstance(k, str) and k.lower() in keys and v is not None else mask_value(v, keys))
                for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value(v, keys) for v in value]
    return value


def mask_json(data: bytes | None, keys: frozenset[str]) -> bytes | None:
    """Recorded JSON with the values of `keys` masked (unchanged when no key occurs in it)."""
    if data is None or not keys:
        return data
    lowered = data.lower()
    if not any(f'"{key}"'.encode() in lowered for key in keys):  # cheap pre-check: most payloads have none
        return data
    return orjson.dumps(mask_value(orjson.loads(data), keys))


def normalise_keys(names: Any) -> frozenset[str]:
    """Lower-cased field names."""
    return frozenset(str(n).lower() for n in names or ())
