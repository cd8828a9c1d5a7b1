"""Files from the Hugging Face Hub (official weights, FID references), fetched with ``huggingface_hub``.

Interface shared by the weight registry and the FID references: a :class:`HubFile` names one file of one Hub
repository at a revision; :func:`download_file` returns its local path, downloading it first when needed.

Where files go: the Hub cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``), or,
with ``local_dir``, that folder in the repository's own layout (``local_dir/VAR-DD/var-d16.pth``). A file already
there is used without touching the network. A missing one is downloaded through ``hf_hub_download`` (its progress
bar, its resume of a cut connection with an HTTP Range request, ``$HF_ENDPOINT`` for mirrors, ``$HF_TOKEN``), then
its sha256 is checked against the Hub's ETag (the LFS object id: ``hf_hub_download`` only checks the size) and a
mismatching file is deleted. Offline (``offline=True``, ``$HF_HUB_OFFLINE=1``) or without a network, a missing file
is a one-line :class:`~ardistill.errors.WeightsMissingError`.

Environment variables are read at call time (``huggingface_hub`` reads them once, at import), so a process that set
``HF_ENDPOINT`` / ``HF_HUB_OFFLINE`` / ``HF_HUB_CACHE`` after importing it is still honoured.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ardistill.errors import ArdistillError, CheckpointError, WeightsMissingError
from ardistill.io import sha256_file

SHA256 = re.compile(r"[0-9a-f]{64}")
_TRUE = {"1", "on", "yes", "true"}


class HubError(ArdistillError):
    """The Hub answered, but not with the file (unknown repository, revision or file; access denied; bad mirror)."""


class CorruptDownloadError(CheckpointError):
    """A downloaded file whose sha256 differs from the Hub's: it was deleted."""


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
        return f"{hub_endpoint()}/{prefix}{self.repo_id}/resolve/{self.revision}/{self.filename}"

    @property
    def basename(self) -> str:
        return self.filename.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return f"{self.repo_id}@{self.revision[:12]}:{self.filename}"


# ------------------------------------------------------------------------------------------------ environment
def hub_endpoint() -> str:
    """``$HF_ENDPOINT`` now, else what ``huggingface_hub`` read at import (default https://huggingface.co)."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def hub_cache_dir() -> Path:
    """``$HF_HUB_CACHE`` now, else ``$HF_HOME/hub`` now, else ``huggingface_hub``'s default."""
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE).expanduser()


def is_offline(offline: bool | None = None) -> bool:
    """The argument when given, else ``$HF_HUB_OFFLINE`` (read now), else ``huggingface_hub``'s offline mode."""
    if offline is not None:
        return bool(offline)
    env = os.environ.get("HF_HUB_OFFLINE")
    if env is not None:
        return env.strip().lower() in _TRUE
    from huggingface_hub import constants

    return bool(constants.is_offline_mode())


# ------------------------------------------------------------------------------------------------ lookup
def local_path(file: HubFile, *, local_dir: str | os.PathLike | None = None) -> Path | None:
    """Where ``file`` already is on this machine (no network), or None.

    local_dir: the file at ``local_dir/<filename>`` (downloaded there, or put there by hand in the release layout);
    otherwise the Hub cache's snapshot of ``file.revision`` (a branch resolves through the cache's refs).
    """
    if local_dir is not None:
        p = Path(local_dir).expanduser() / file.filename
        return p if p.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(file.repo_id, file.filename, cache_dir=str(hub_cache_dir()), revision=file.revision,
                                   repo_type=file.repo_type)
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def _missing(file: HubFile, why: str, command: str | None) -> WeightsMissingError:
    todo = f"run `{command}` where the Hub is reachable" if command else "retry where the Hub is reachable"
    err = WeightsMissingError(f"{file.basename} is not downloaded and not downloadable now ({why}): {todo} (source: {file.url})")
    err.reason = why
    return err


# ------------------------------------------------------------------------------------------------ download
def download_file(file: HubFile, *, local_dir: str | os.PathLike | None = None, offline: bool | None = None,
                  command: str | None = None) -> Path:
    """The local path of ``file``, downloaded through ``hf_hub_download`` when missing.

    local_dir: download into this folder (keeping the repository's layout) instead of the Hub cache.
    offline: never touch the network (default: ``$HF_HUB_OFFLINE``).
    command: the command that downloads the file, named in the error when it cannot be downloaded now.

    Raises WeightsMissingError (missing and offline / no network), HubError (the Hub refuses or lacks the file) or
    CorruptDownloadError (sha256 mismatch: the file is deleted). Each with a one-line message.
    """
    found = local_path(file, local_dir=local_dir)
    if found is not None:
        return found
    if is_offline(offline):
        raise _missing(file, "offline mode: --offline / HF_HUB_OFFLINE", command)

    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import (EntryNotFoundError, FileMetadataError, GatedRepoError, HfHubHTTPError,
                                        LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    endpoint = hub_endpoint()
    try:
        # The HEAD first: the commit it resolves to is what gets downloaded, and its ETag is the sha256 to check.
        meta = get_hf_file_metadata(hf_hub_url(file.repo_id, file.filename, repo_type=file.repo_type,
                                               revision=file.revision, endpoint=endpoint))
        if not meta.commit_hash or not meta.etag:
            raise HubError(f"{endpoint} answered for {file} without the X-Repo-Commit / ETag headers of a Hugging Face "
                           "Hub: check HF_ENDPOINT, proxy and firewall")
        path = Path(hf_hub_download(file.repo_id, file.filename, repo_type=file.repo_type, revision=meta.commit_hash,
                                    local_dir=str(local_dir) if local_dir is not None else None,
                                    cache_dir=str(hub_cache_dir()), endpoint=endpoint))
    except GatedRepoError:
        raise HubError(f"{file.repo_id} is gated on the Hub: accept its terms on the website and set HF_TOKEN "
                       f"(file {file.filename})") from None
    except RepositoryNotFoundError:
        raise HubError(f"Hub repository {file.repo_id} not found at {endpoint} (or private: set HF_TOKEN)") from None
    except RevisionNotFoundError:
        raise HubError(f"revision {file.revision} of {file.repo_id} not found at {endpoint}") from None
    except EntryNotFoundError as e:
        if isinstance(e, LocalEntryNotFoundError):  # no network and not in the cache
            raise _missing(file, f"{endpoint} unreachable", command) from None
        raise HubError(f"{file.filename} not found in {file.repo_id}@{file.revision} at {endpoint}") from None
    except (OfflineModeIsEnabled, ConnectionError, TimeoutError) as e:
        raise _missing(file, f"{endpoint} unreachable: {type(e).__name__}", command) from None
    except FileMetadataError as e:
        raise HubError(f"{endpoint}: {str(e).splitlines()[0]}") from None
    except HfHubHTTPError as e:
        raise HubError(f"downloading {file} from {endpoint} failed: {str(e).splitlines()[0]}") from None
    except OSError as e:
        # hf_hub_download's size check and httpx transport errors after its retries (the partial file is removed).
        raise _missing(file, f"download failed: {str(e).splitlines()[0]}", command) from None
    except Exception as e:  # httpx transport errors are not OSErrors; keep the message on one line
        if type(e).__module__.split(".")[0].startswith("httpx"):
            raise _missing(file, f"{endpoint} unreachable: {type(e).__name__}", command) from None
        raise
    verify_download(path, meta.etag, file=file)
    return path


def verify_download(path: Path, etag: str, *, file: HubFile) -> None:
    """Check a fresh download against the Hub's ETag when it is a sha256 (LFS files; small git files carry a git
    sha1 and are only size-checked by ``hf_hub_download``). A mismatch deletes the file (and, in the Hub cache, the
    blob it points to) so that the next call downloads it again, and raises CorruptDownloadError."""
    if not SHA256.fullmatch(etag or ""):
        return
    actual = sha256_file(path)
    if actual == etag:
        return
    blob = path.resolve()
    for p in {path, blob}:
        try:
            p.unlink()
        except FileNotFoundError:
            pass
    raise CorruptDownloadError(f"{file.basename}: downloaded content has sha256 {actual[:16]}… but the Hub says "
                               f"{etag[:16]}… (corrupted in transit or by a proxy); the file was deleted, download it again")


__all__ = ["HubFile", "HubError", "CorruptDownloadError", "download_file", "local_path", "hub_cache_dir", "hub_endpoint",
           "is_offline", "verify_download"]
