"""Which checkpoint a recipe resumes from (``--resume_from_checkpoint``), and whether a checkpoint is complete.

A process killed while the Trainer writes ``checkpoint-N`` leaves a folder without weights, without
``trainer_state.json``, or with a file cut off; transformers' own ``get_last_checkpoint`` picks it anyway (then "Can't
find a valid checkpoint", ``FileNotFoundError: trainer_state.json`` or ``JSONDecodeError``). The Trainer writes the
weights, then optimizer, scheduler and random-number states, and ``trainer_state.json`` last; a checkpoint is
*complete* when every one of them is there and whole (:func:`checkpoint_problem`). ``last`` resumes from the newest
complete checkpoint, saying which newer ones it skipped.
"""

from __future__ import annotations

import json
import os
import re
import struct
import warnings
import zipfile
from pathlib import Path

__all__ = ["IncompleteCheckpointWarning", "checkpoint_problem", "checkpoints", "resume_checkpoint"]

_CHECKPOINT = re.compile(r"checkpoint-(\d+)\Z")
# What the Trainer writes besides the weights (torch.save zip archives), unless --save_only_model.
_TRAINING_STATE = ("optimizer.pt", "scheduler.pt")
_WEIGHTS = ("model.safetensors", "adapter_model.safetensors", "pytorch_model.bin", "adapter_model.bin")
_WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


class IncompleteCheckpointWarning(UserWarning):
    """A checkpoint cut off mid-write was skipped."""


def _safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file is not whole: its header, or the bytes the header announces, are cut off."""
    size = path.stat().st_size
    try:
        with path.open("rb") as file:
            (header_size,) = struct.unpack("<Q", file.read(8))
            if 8 + header_size > size:
                return f"{path.name} is cut off in its header"
            header = json.loads(file.read(header_size))
    except (struct.error, ValueError):
        return f"{path.name} is cut off in its header"
    end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
    if size < 8 + header_size + end:
        return f"{path.name} is cut off ({size} of {8 + header_size + end} bytes)"
    return None


def _file_problem(path: Path) -> str | None:
    """Why a file the Trainer wrote is not whole (None when it is)."""
    if path.suffix == ".safetensors":
        return _safetensors_problem(path)
    if path.suffix == ".json":
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            return f"{path.name} is not valid JSON (cut off?)"
        return None
    if not zipfile.is_zipfile(path):  # torch.save's archive: its directory is written at the end
        return f"{path.name} is cut off"
    return None


def _weights_problem(folder: Path) -> str | None:
    for name in _WEIGHT_INDEXES:
        index = folder / name
        if index.is_file():
            problem = _file_problem(index)
            if problem:
                return problem
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values()))
            missing = [shard for shard in shards if not (folder / shard).is_file()]
            if missing:
                return f"shards missing: {', '.join(missing)}"
            return next(filter(None, (_file_problem(folder / shard) for shard in shards)), None)
    present = [folder / name for name in _WEIGHTS if (folder / name).is_file()]
    if not present:
        return "no weights (model.safetensors or adapter_model.safetensors)"
    return next(filter(None, map(_file_problem, present)), None)


def checkpoint_problem(folder: str | os.PathLike) -> str | None:
    """Why ``folder`` cannot be resumed from; None when it is a complete checkpoint.

    Complete: ``trainer_state.json`` (written last) is a JSON object with ``global_step``; the weights (model or
    LoRA adapter; every shard of an index) are there and whole (a safetensors file as long as its header says);
    ``optimizer.pt``, ``scheduler.pt`` and every other torch file are whole archives; every JSON file parses."""
    folder = Path(folder)
    if not folder.is_dir():
        return "no such folder"
    state = folder / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json (the Trainer writes it last)"
    problem = _file_problem(state)
    if problem:
        return problem
    content = json.loads(state.read_text(encoding="utf-8"))
    if not isinstance(content, dict) or "global_step" not in content:
        return "trainer_state.json has no global_step"
    problem = _weights_problem(folder)
    if problem:
        return problem
    missing = [name for name in _TRAINING_STATE if not (folder / name).is_file()]
    if missing:
        return f"no {' or '.join(missing)} (saved with --save_only_model? it cannot be resumed from)"
    others = [p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix in (".pt", ".pth", ".bin", ".json")]
    return next(filter(None, map(_file_problem, others)), None)


def checkpoints(output_dir: str | os.PathLike) -> list[tuple[Path, str | None]]:
    """``(folder, problem)`` of every ``checkpoint-N`` folder of ``output_dir``, newest first; the problem is None for
    a complete checkpoint (:func:`checkpoint_problem`)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    folders = [p for p in output_dir.iterdir() if p.is_dir() and _CHECKPOINT.match(p.name)]
    folders.sort(key=lambda p: int(_CHECKPOINT.match(p.name).group(1)), reverse=True)
    return [(folder, checkpoint_problem(folder)) for folder in folders]


def resume_checkpoint(output_dir: str | os.PathLike, resume: str | None) -> str | None:
    """The checkpoint to give ``Trainer.train(resume_from_checkpoint=)`` for ``--resume_from_checkpoint resume``.

    None: start afresh. ``"last"``: the newest complete checkpoint in ``output_dir``; an
    :class:`IncompleteCheckpointWarning` names each newer one skipped and why; ``ValueError`` when none is complete.
    A path: itself when complete, else ``ValueError`` saying what is wrong and naming the newest complete one."""
    if resume is None:
        return None
    found = checkpoints(output_dir)
    newest = next((folder for folder, problem in found if problem is None), None)
    if resume == "last":
        for folder, problem in found:
            if folder == newest:
                break
            warnings.warn(IncompleteCheckpointWarning(
                f"--resume_from_checkpoint last: skipping {folder}, which is incomplete ({problem}; cut off while "
                "being written?)"), stacklevel=2)
        if newest is None:
            seen = "; ".join(f"{folder.name}: {problem}" for folder, problem in found)
            raise ValueError(f"--resume_from_checkpoint last: no complete checkpoint in {output_dir}"
                             + (f" ({seen})" if seen else ""))
        return str(newest)
    problem = checkpoint_problem(resume)
    if problem is not None:
        fallback = f"; the newest complete checkpoint in {output_dir} is {newest}" if newest else ""
        raise ValueError(f"--resume_from_checkpoint {resume}: not a complete checkpoint ({problem}){fallback}")
    return resume
