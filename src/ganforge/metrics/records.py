"""One JSON line per evaluation appended to ``<run>/metrics.jsonl`` (as stylegan2-ada's metric-*.jsonl)."""

from __future__ import annotations

import json
import os
from pathlib import Path


def append_jsonl(path: str | os.PathLike, record: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=False) + "\n"
    # one short write in append mode per record: a reader never sees half of an earlier line
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
    return path
