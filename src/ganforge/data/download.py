"""Make sure a dataset's files are on disk, or say exactly which to put where.

Downloads go through torchvision's own downloaders (mirrors, checksums, extraction)
and happen only when the config asks (``data.download=true``). Whatever stops them,
no network, a dead mirror, a missing optional package, the user gets one error
naming the dataset, the files expected and the directory, not a urllib traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path


class DatasetNotFoundError(FileNotFoundError):
    """Dataset files are missing and could not be downloaded."""


def _message(dataset: str, directory: Path, missing: Sequence[str], source: str, reason: str | None) -> str:
    shown = "\n".join(f"    {directory / name}" for name in missing[:8])
    more = f"\n    ... and {len(missing) - 8} more" if len(missing) > 8 else ""
    if reason:
        why = f"The download failed ({reason}). "
        retry = "or run once with network access"
    else:
        why = "data.download=false, so nothing was fetched. "
        retry = "or set data.download=true where there is network access"
    return (
        f"data={dataset}: files not found in {directory}:\n{shown}{more}\n"
        f"{why}Get them from {source} and place them in {directory}, {retry}. "
        "data.root (default ${paths.data_dir}) sets the parent directory."
    )


def _short(exc: BaseException) -> str:
    """The exception in one line: its first line, and its last when it spans several (the cause)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if len(lines) > 1:
        text += f" ... {lines[-1]}"
    return f"{type(exc).__name__}: {text}".rstrip(": ")


def ensure_files(
    dataset: str,
    directory: Path,
    missing: Callable[[], list[str]],
    download: bool,
    fetch: Callable[[], None],
    source: str,
) -> None:
    """Return when ``missing()`` is empty, after fetching if allowed; else DatasetNotFoundError.

    ``missing`` lists the absent files, relative to ``directory``; ``fetch`` downloads them.
    """
    absent = missing()
    if not absent:
        return
    reason = None
    if download:
        try:
            fetch()
        except Exception as exc:  # any failure of a download is reported the same way
            reason = _short(exc)
        else:
            absent = missing()
            if not absent:
                return
            reason = "it finished, but these files are still missing"
    raise DatasetNotFoundError(_message(dataset, directory, absent, source, reason)) from None
