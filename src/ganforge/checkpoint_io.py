"""Checkpoint files: written so that they cannot tear, read with a named error for every bad one.

Writing: ``atomic_torch_save`` writes to a temporary file beside the target (a name that
does not end in ``.ckpt``, so nothing that lists checkpoints sees it), flushes and fsyncs
it, renames it onto the target and fsyncs the directory. A run killed at any moment
(SIGKILL, an out-of-memory kill, a cluster's time limit, a power cut once the rename is on
disk) leaves the previous checkpoint or the new one, never a part of one. Lightning's own
writer builds the file in memory and then writes the target in place, so a kill during
that write leaves a truncated ``last.ckpt``. ``AtomicCheckpointIO`` is the plugin that
every training run gets (``conf/trainer/default.yaml``); Lightning hands it to the
strategy, ``ganforge.strategy.GANDDPStrategy`` included.

Reading: ``read_checkpoint`` opens a file the way every entry point needs it (training's
``ckpt_path``, eval, sample, repair, export, ``ganforge.load``), on the CPU with
``weights_only=True``, and turns each way a file can be wrong into a
``CheckpointFileError`` that names the file, says what is wrong with it and what to do:
missing, a directory, empty, not a checkpoint at all, cut short, written by another
program, or written by a newer ganforge. The callers raise it as
``ganforge.pipeline.ConfigError`` (this module cannot import the pipeline: the pipeline
imports it).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import fsspec
import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ganforge.modules.checkpoint_format import CheckpointFormatError, upgrade

ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since torch 1.6: a zip archive
PICKLE_MAGIC = b"\x80"  # the legacy format (_use_new_zipfile_serialization=False): a pickle
EXAMPLE = "outputs/<date>/<time>/checkpoints/last.ckpt"
_SHOWN_NEIGHBOURS = 8


class CheckpointFileError(ValueError):
    """A checkpoint file that cannot be used; the message names the file, the problem and the fix."""


# ----------------------------------------------------------------------------- writing
def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` that leaves ``path`` whole: the old file or the new one.

    On any exception the temporary file is removed, the previous ``path`` is untouched and
    the exception propagates. A SIGKILL can leave the temporary file (``.<name>.tmp-<pid>``)
    behind, never a torn ``path``; the next write of ``path`` removes it once that process
    is gone.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    _remove_stale_temporaries(path)


def _remove_stale_temporaries(path: Path) -> None:
    # what a write killed by SIGKILL left beside ``path``: its writer's pid is gone
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _fsync_directory(directory: Path) -> None:
    # makes the rename itself durable; not every platform or filesystem can open a directory
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO`` with local writes through ``atomic_torch_save``.

    Loading and removing are Lightning's. Remote paths (``s3://``, ...) keep Lightning's
    writer, which uploads in one transaction.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any | None = None
    ) -> None:
        fs, local_path = fsspec.core.url_to_fs(str(path))
        if not isinstance(fs, LocalFileSystem):
            super().save_checkpoint(checkpoint, path, storage_options=storage_options)
            return
        if storage_options is not None:
            raise TypeError(
                "`Trainer.save_checkpoint(..., storage_options=...)` with `storage_options` arg"
                f" is not supported for `{type(self).__name__}`."
            )
        atomic_torch_save(checkpoint, local_path)


# ----------------------------------------------------------------------------- reading
def sniff_checkpoint(path: str | os.PathLike, resuming: bool = False) -> str:
    """``"zip"`` or ``"pickle"`` for a file that may be a torch checkpoint, else a named error.

    Cheap: a stat, the first bytes and (for zip files) the archive's end record.
    ``resuming``: the messages say how to train without it (training's ``ckpt_path``).
    """
    path = Path(path).expanduser()
    name = _name(path)
    if not path.exists():
        raise CheckpointFileError(
            f"{name} does not exist. Pass the path of a checkpoint such as {EXAMPLE}"
            + _others(path, "; checkpoints in that folder: ")
            + (", or drop ckpt_path to start afresh." if resuming else ".")
        )
    if path.is_dir():
        inside = _checkpoints_in(path) or _checkpoints_in(path / "checkpoints")
        shown = ", ".join(str(p) for p in inside[:_SHOWN_NEIGHBOURS])
        raise CheckpointFileError(
            f"{name} is a directory, not a checkpoint file. Pass one of the .ckpt files of a run's "
            "checkpoints/ folder" + (f": {shown}" if shown else f", such as {EXAMPLE}") + "."
        )
    size = path.stat().st_size
    if size == 0:
        raise CheckpointFileError(
            f"{name} is empty (0 bytes): the file was created but nothing was written to it (a copy or "
            "download that failed at once, or a full disk). " + _earlier(path, resuming)
        )
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(ZIP_MAGIC):
        if not zipfile.is_zipfile(path):
            raise CheckpointFileError(_cut_short(path, "its zip archive has no end record", resuming))
        return "zip"
    if head.startswith(PICKLE_MAGIC):
        return "pickle"
    raise CheckpointFileError(
        f"{name} is not a PyTorch checkpoint: {_describe_start(head)}. A checkpoint written by "
        f"torch.save starts with the bytes of a zip archive ({ZIP_MAGIC!r}) or of a pickle "
        f"({PICKLE_MAGIC!r}). Pass a .ckpt file of a ganforge run, such as {EXAMPLE}."
    )


def read_checkpoint(path: str | os.PathLike, resuming: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """The contents of a ganforge checkpoint and its ``ganforge`` entry in the current format.

    Loaded on the CPU with ``weights_only=True`` (a file cannot run code when opened);
    memory-mapped for zip files, so that reading one to check it costs little. Every way
    the file can be wrong is a ``CheckpointFileError`` (``sniff_checkpoint``'s and the ones
    below), named.
    """
    path = Path(path).expanduser()
    kind = sniff_checkpoint(path, resuming=resuming)
    name = _name(path)
    if kind == "zip" and not _is_torch_archive(path):
        raise CheckpointFileError(
            f"{name} is not a PyTorch checkpoint: it is a zip archive without the data.pkl that "
            "torch.save writes (a .zip of files, or a checkpoint packed into one: unpack it first)."
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=kind == "zip")
    except pickle.UnpicklingError as err:
        foreign = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if foreign is None:
            raise CheckpointFileError(_cut_short(path, _first_line(err), resuming)) from err
        raise CheckpointFileError(
            f"{name} was not written by ganforge: it stores an object of class {foreign.group(1)}, and ganforge opens "
            "checkpoints with weights_only=True, which loads tensors and plain Python types only "
            "(so that a file cannot run code). A ganforge checkpoint holds nothing else; pass one from a "
            f"ganforge run, such as {EXAMPLE}."
        ) from err
    except (RuntimeError, OSError, EOFError, ValueError, KeyError) as err:
        raise CheckpointFileError(_cut_short(path, _first_line(err), resuming)) from err
    foreign = _foreign(ckpt)
    if foreign:
        raise CheckpointFileError(
            f"{name} was not written by ganforge: {foreign}. Pass a checkpoint from a ganforge run's "
            f"checkpoints/ folder, such as {EXAMPLE}."
        )
    try:
        state = upgrade(ckpt, source=name)
    except CheckpointFormatError as err:
        raise CheckpointFileError(str(err)) from err
    if "state_dict" not in ckpt:
        raise CheckpointFileError(
            f"{name} holds no weights ('state_dict'); pass a checkpoint from a ganforge run"
        )
    if not state.get("config"):
        raise CheckpointFileError(
            f"{name} holds no training config (ckpt['ganforge']['config']); cannot rebuild the GAN"
        )
    return ckpt, state


def _foreign(ckpt: Any) -> str | None:
    """What a loaded file is when it is not a ganforge checkpoint, in words; None when it is one."""
    if not isinstance(ckpt, dict):
        return f"it holds a {type(ckpt).__name__}, not a checkpoint's dict"
    if isinstance(ckpt.get("ganforge"), dict):
        return None
    if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        first = next(iter(ckpt))
        return (
            f"it is a plain state_dict ({len(ckpt)} tensors, e.g. {first!r}), weights without the "
            "training config that ganforge rebuilds a GAN from"
        )
    missing = "without the 'ganforge' entry where ganforge keeps its config and counters"
    if "pytorch-lightning_version" in ckpt:
        version = ckpt["pytorch-lightning_version"]
        return f"it is a Lightning checkpoint (Lightning {version}) of another LightningModule, {missing}"
    if "state_dict" in ckpt:
        return f"it has weights ('state_dict') {missing}"
    keys = ", ".join(repr(k) for k in list(ckpt)[:6])
    return f"it is a dict ({keys}{', ...' if len(ckpt) > 6 else ''}) without a 'ganforge' entry"


def _is_torch_archive(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n == "data.pkl" or n.endswith("/data.pkl") for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return True  # torch.load tells what is wrong with it


def _cut_short(path: Path, detail: str, resuming: bool) -> str:
    return (
        f"{_name(path)} is cut short or damaged ({path.stat().st_size:,} bytes; {detail}). A checkpoint ends up like this "
        "when a copy or a write of it was interrupted: a killed cp/scp/rsync, a full disk, another tool "
        "writing it (ganforge's own writes are atomic: a run killed while saving leaves the previous "
        "checkpoint whole). " + _earlier(path, resuming)
    )


def _earlier(path: Path, resuming: bool) -> str:
    others = _others(path, "Use an earlier checkpoint from the same folder (newest first): ")
    if others:
        return others + "."
    fresh = ", or drop ckpt_path to start afresh" if resuming else ""
    return f"There is no other checkpoint in {path.parent}: copy the file again from where it came{fresh}."


def _others(path: Path, prefix: str) -> str:
    """The other checkpoints in ``path``'s folder (those that look whole), newest first, after
    ``prefix``; '' if none."""
    others = [p for p in _checkpoints_in(path.parent) if p.name != path.name and _looks_whole(p)]
    if not others:
        return ""
    shown = ", ".join(p.name for p in others[:_SHOWN_NEIGHBOURS])
    more = f" and {len(others) - _SHOWN_NEIGHBOURS} more" if len(others) > _SHOWN_NEIGHBOURS else ""
    return f"{prefix}{shown}{more} in {path.parent}"


def _checkpoints_in(directory: Path) -> list[Path]:
    try:
        found = [p for p in directory.glob("*.ckpt") if p.is_file()]
    except OSError:
        return []
    return sorted(found, key=lambda p: (-p.stat().st_mtime, p.name))


def _looks_whole(path: Path) -> bool:
    """A torch zip archive with its end record, or a legacy pickle: worth suggesting."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
        return head.startswith(PICKLE_MAGIC) or (head == ZIP_MAGIC and zipfile.is_zipfile(path))
    except OSError:
        return False


def _describe_start(head: bytes) -> str:
    if b"\0" not in head:
        text = head.decode("utf-8", errors="ignore")
        if text.startswith("version https://git-lfs"):
            return "it is a Git LFS pointer, not the file it points to (run `git lfs pull` to fetch it)"
        if text and all(c.isprintable() or c.isspace() for c in text):
            start = " ".join(text.split())[:60]
            return f"it starts with text ({start!r})"
    if head.startswith(b"\x1f\x8b"):
        return "it is gzip-compressed (unpack it first)"
    return f"it starts with the bytes {head[:4].hex(' ')}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"torch.load: {type(err).__name__}: {text[0][:200] if text else ''}".rstrip(": ")


def _name(path: Path) -> str:
    """The file as the user named it, and where that is when it was relative."""
    return f"ckpt_path={path}" + ("" if path.is_absolute() else f" ({path.absolute()})")


__all__ = [
    "AtomicCheckpointIO",
    "CheckpointFileError",
    "atomic_torch_save",
    "read_checkpoint",
    "sniff_checkpoint",
]
