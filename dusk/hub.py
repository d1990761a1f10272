"""Models by Hugging Face id: `org/name` or `org/name@revision` that is not a local path is fetched (or found in the
local hub cache) with `huggingface_hub.snapshot_download`, only the files dusk reads: config, safetensors weights,
tokenizer, chat template and generation config. HF_HUB_OFFLINE=1 (or no network) uses the cache alone.

    HF_HUB_OFFLINE=1 dusk eval HuggingFaceTB/SmolLM2-135M --tasks h6 --subset tiny

A repository whose only weights are pickles (`*.bin`, `*.pt`) is refused unless the user opts in (`--allow-pickle`
or DUSK_ALLOW_PICKLE=1, as for local directories): unpickling can run code.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path

from dusk.errors import DuskError

# Files that travel with the weights: tokenizer, chat template, generation defaults (never pickles). dusk copies
# them into every model it writes (dusk.models.io.copy_side_files).
SIDE_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
)
# What dusk reads from a model repository: config, safetensors weights and the side files (no pickles, no other
# frameworks' weights, no README images).
MODEL_PATTERNS = ("config.json", "*.safetensors", "*.safetensors.index.json", *SIDE_FILES)
PICKLE_PATTERNS = ("*.bin", "*.bin.index.json", "*.pt", "*.pth")
# What dusk reads from a dataset repository: data files and the card that declares configs (never loading scripts).
DATASET_PATTERNS = ("*.parquet", "*.jsonl", "*.jsonl.gz", "*.json", "*.json.gz", "*.csv", "*.tsv", "*.txt", "*.arrow",
                    "README.md")  # fmt: skip
_PART = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_HUB_ID = re.compile(rf"^({_PART})/({_PART})(?:@([A-Za-z0-9._/-]+))?$")
_FILE_SUFFIXES = (".gguf", ".safetensors", ".json", ".jsonl", ".bin", ".pt")


@dataclass(frozen=True)
class HubId:
    """A Hugging Face repository and the revision asked for (None = the default branch)."""

    repo: str
    revision: str | None = None

    def __str__(self) -> str:
        return self.repo + (f"@{self.revision}" if self.revision else "")


def parse_hub_id(text: str) -> HubId | None:
    """`org/name[@revision]` as a HubId, or None when the text does not have that form (or names a file)."""
    match = _HUB_ID.match(str(text))
    if not match or text.endswith(_FILE_SUFFIXES) or text.startswith("."):
        return None
    return HubId(f"{match[1]}/{match[2]}", match[3])


def hub_cache() -> Path:
    """The hub cache directory, read when called (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE asks for the cache only (read when called, not at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def fetch_command(hub_id: HubId, patterns: tuple[str, ...] = MODEL_PATTERNS, repo_type: str = "model") -> str:
    """The command that puts the repository's files in the cache, for the offline error message."""
    revision = f" --revision {hub_id.revision}" if hub_id.revision else ""
    kind = " --repo-type dataset" if repo_type == "dataset" else ""
    return f"hf download {hub_id.repo}{kind}{revision} --include " + " ".join(f"'{p}'" for p in patterns[:3]) + " ..."


def _download(hub_id: HubId, patterns: tuple[str, ...], repo_type: str = "model") -> Path:
    """snapshot_download of the files matching `patterns`; offline or unreachable: the cached snapshot, if any."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    offline = hub_offline()
    local = "no such model directory" if repo_type == "model" else "no such data file or registry dataset"
    try:
        folder = snapshot_download(
            hub_id.repo,
            repo_type=repo_type,
            revision=hub_id.revision,
            allow_patterns=list(patterns),
            cache_dir=hub_cache(),
            local_files_only=offline,
        )
    except (RepositoryNotFoundError, GatedRepoError) as exc:
        raise DuskError(
            f"{hub_id}: {local}, and the Hugging Face hub has no {repo_type} repository {hub_id.repo} "
            "you can read (private or gated repositories need `hf auth login`)"
        ) from exc
    except RevisionNotFoundError as exc:
        raise DuskError(f"{hub_id}: the repository has no revision {hub_id.revision!r}") from exc
    except LocalEntryNotFoundError as exc:
        why = "HF_HUB_OFFLINE is set" if offline else "the hub could not be reached"
        raise DuskError(
            f"{hub_id}: {local}, and not in the Hugging Face cache {hub_cache()} while {why}; fetch it once with "
            f"network access: {fetch_command(hub_id, patterns, repo_type)} (or run without HF_HUB_OFFLINE)"
        ) from exc
    return Path(folder)


def _repo_pickles(hub_id: HubId, folder: Path) -> list[str]:
    """Pickled weight files of the repository: listed on the hub when online, else those already in the cache."""
    suffixes = tuple(p.removeprefix("*") for p in PICKLE_PATTERNS if p.count(".") == 1)
    if not hub_offline():
        try:
            from huggingface_hub import HfApi

            names = HfApi().list_repo_files(hub_id.repo, revision=hub_id.revision)
            return sorted(name for name in names if name.endswith(suffixes))
        except Exception:  # noqa: BLE001 (any listing failure: fall back to what the cache holds)
            pass
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(suffixes))


def resolve_hub_model(hub_id: HubId, allow_pickle: bool = False) -> Path:
    """The local snapshot directory of a hub model (downloaded if needed and allowed); pickles need `allow_pickle`."""
    folder = _download(hub_id, MODEL_PATTERNS)
    if not (folder / "config.json").is_file():
        raise DuskError(f"{hub_id}: the repository has no config.json; it is not a transformers model")
    if any(folder.glob("*.safetensors")):
        return folder
    pickles = _repo_pickles(hub_id, folder)
    if not pickles:
        raise DuskError(f"{hub_id}: the repository has no weight files (*.safetensors)")
    if not allow_pickle:
        raise DuskError(
            f"{hub_id}: the repository holds only pickled weights ({', '.join(pickles)}), which can run code when "
            "loaded; dusk loads safetensors only: pass --allow-pickle (or set DUSK_ALLOW_PICKLE=1) if you trust it"
        )
    return _download(hub_id, MODEL_PATTERNS + PICKLE_PATTERNS)


def resolve_hub_dataset(hub_id: HubId) -> Path:
    """The local snapshot directory of a hub dataset's data files (downloaded if needed and allowed)."""
    return _download(hub_id, DATASET_PATTERNS, "dataset")
