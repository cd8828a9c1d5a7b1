"""Files from the Hugging Face Hub (official weights, FID references), fetched with ``huggingface_hub``.

Interface shared by the weight registry and the FID references: a :class:`HubFile` names one file of one Hub
repository at a revision; :func:`download_file` returns its local path, downloading it first when needed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HubFile:
    """One file of a Hub repository: ``repo_id`` ("FoundationVision/var"), ``filename`` (path inside the repository,
    e.g. "VAR-DD/var-d16.pth"), ``revision`` (a commit hash where known, else a branch) and ``repo_type``."""

    repo_id: str
    filename: str
    revision: str = "main"
    repo_type: str = "model"

    @property
    def url(self) -> str:
        prefix = "" if self.repo_type == "model" else f"{self.repo_type}s/"
        return f"https://huggingface.co/{prefix}{self.repo_id}/resolve/{self.revision}/{self.filename}"


def download_file(file: HubFile, *, local_dir: str | os.PathLike | None = None, offline: bool | None = None) -> Path:
    """The local path of ``file``, downloaded through ``hf_hub_download`` when missing.

    local_dir: download into this folder (keeping the repository's layout) instead of the Hub cache.
    offline: never touch the network (default: ``$HF_HUB_OFFLINE``).
    """
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(
        repo_id=file.repo_id,
        filename=file.filename,
        revision=file.revision,
        repo_type=file.repo_type,
        local_dir=str(local_dir) if local_dir is not None else None,
        local_files_only=bool(offline),
    )
    return Path(path)
