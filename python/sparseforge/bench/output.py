"""Result files: JSON that ``json`` accepts, written atomically; matplotlib when present."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays and other odd values so json.dump accepts them
    (NaN and infinities become null)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if hasattr(obj, "tolist"):  # numpy scalar or array
        return jsonable(obj.tolist())
    return str(obj)


def write_json(directory: str | Path, name: str, data: dict[str, Any]) -> Path:
    """Write `data` to ``directory/name.json`` (pretty-printed, via a temporary file) and
    return the path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(jsonable(data), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def pyplot() -> tuple[Any, str | None]:
    """``(matplotlib.pyplot, None)`` with the Agg backend, or ``(None, why)`` when
    matplotlib cannot be imported (plots are optional; JSON is always written)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as exc:
        return None, f"matplotlib unavailable: {exc!r}"
    return plt, None
