"""Nova's versioned notification samples (tests/fixtures/nova_notification_samples), resolved.

A sample's ``{"$ref": "file#", ...}`` objects stand for the referenced file's
object with the other keys merged over it, recursively, as nova's own
functional tests read them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).parent / "fixtures" / "nova_notification_samples"


def nova_sample(name: str) -> dict[str, Any]:
    """The notification of SAMPLES/name (e.g. ``instance-create-end.json``) as nova sends it."""
    path = SAMPLES / name
    return _resolve(json.loads(path.read_text()), path.parent)


def _resolve(value: Any, base: Path) -> Any:
    if isinstance(value, list):
        return [_resolve(item, base) for item in value]
    if not isinstance(value, dict):
        return value
    value = {key: _resolve(item, base) for key, item in value.items()}
    ref = value.pop("$ref", None)
    if ref is None:
        return value
    target = base / ref.split("#", 1)[0]
    return _merged(_resolve(json.loads(target.read_text()), target.parent), value)


def _merged(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, item in override.items():
            out[key] = _merged(base.get(key), item)
        return out
    return override
