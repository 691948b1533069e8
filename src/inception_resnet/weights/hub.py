"""Published weights on the Hugging Face Hub: the known tags and their download into the hub's cache.

A tag names a repository of timm's (``timm/inception_v4.tf_in1k``); ``hf-hub:`` in front is accepted too.
:func:`resolve_tag` returns the local path of the tag's weights file: read from huggingface_hub's cache
when a copy is there (no network access at all), downloaded into that cache otherwise. Before downloading
it checks within a few seconds that the hub's endpoint (or the proxy in front of it) accepts a connection,
so that a machine without network gets an answer at once instead of after huggingface_hub's retries.
Without network and without a cached copy it raises :class:`HubUnavailableError`, which says what to
download and how to pass the downloaded file instead of the tag.

:func:`default_tag` names the tag ``create_model(name, pretrained=True)`` loads, as timm chooses its default
weights for the same architecture.

:data:`KNOWN_TAGS` lists the tags published for the networks of this package, with the preprocessing
their weights were evaluated with and their ImageNet-1k validation accuracy as timm's results table
reports it; :func:`tag_metadata` turns an entry into the
:class:`~inception_resnet.models.metadata.ModelMetadata` changes that loading the tag records on the model.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..markdown import table

# Files a timm repository may hold, in order of preference.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_TAG_PATTERN = re.compile(r"^(?:hf[-_]hub:)?(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+?)(?:@(?P<rev>[\w.-]+))?$")
# Seconds the reachability check of the hub waits for a connection before calling the hub unreachable.
PROBE_TIMEOUT_S = 3.0
# Names ending like a weights file are paths, never tags.
FILE_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt", ".h5", ".hdf5", ".keras", ".index", ".npz", ".onnx")


@dataclass(frozen=True)
class HubTag:
    """A published set of weights: its hub repository, the model it fits, preprocessing and accuracy."""

    repo_id: str
    model: str
    top1: float
    top5: float
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    num_classes: int = 1000
    origin: str = ""
    default: bool = False  # the tag create_model(model, pretrained=True) loads (timm's default for the model)


_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

KNOWN_TAGS: dict[str, HubTag] = {
    tag.repo_id: tag
    for tag in (
        HubTag(
            "timm/inception_v4.tf_in1k",
            "inception_v4",
            80.144,
            94.982,
            origin="TF-slim inception_v4_2016_09_09, background class removed",
            default=True,
        ),
        HubTag(
            "timm/inception_resnet_v2.tf_in1k",
            "inception_resnet_v2",
            80.434,
            95.312,
            crop_pct=0.8975,
            origin="TF-slim inception_resnet_v2_2016_08_30, background class removed",
            default=True,
        ),
        HubTag(
            "timm/inception_resnet_v2.tf_ens_adv_in1k",
            "inception_resnet_v2",
            79.998,
            94.940,
            crop_pct=0.8975,
            origin="TF ensemble adversarial training (Tramer et al. 2018)",
        ),
        HubTag(
            "timm/inception_v3.tv_in1k",
            "inception_v3",
            77.472,
            93.468,
            origin="torchvision IMAGENET1K_V1",
            default=True,
        ),
        HubTag(
            "timm/inception_v3.tf_in1k",
            "inception_v3",
            77.866,
            93.644,
            origin="TF-slim inception_v3_2016_08_28, background class removed",
        ),
        HubTag(
            "timm/inception_v3.gluon_in1k",
            "inception_v3",
            78.806,
            94.372,
            mean=_IMAGENET_MEAN,
            std=_IMAGENET_STD,
            origin="GluonCV",
        ),
        HubTag(
            "timm/inception_v3.tf_adv_in1k",
            "inception_v3",
            77.598,
            93.726,
            origin="TF adversarial training (Kurakin et al. 2017)",
        ),
    )
}


class HubUnavailableError(RuntimeError):
    """The weights of a hub tag are neither in the local cache nor downloadable now."""


def parse_tag(source: str) -> tuple[str, str | None] | None:
    """``(repo_id, revision)`` when ``source`` reads as a hub tag (``org/name[.tag][@rev]``), else None."""
    text = str(source).strip()
    match = _TAG_PATTERN.match(text)
    if match is None or text.lower().endswith(FILE_SUFFIXES):
        return None
    return match.group("repo"), match.group("rev")


def looks_like_tag(source: Any) -> bool:
    """Whether ``source`` is a string of the hub-tag form (it may still name a repository that does not exist)."""
    return isinstance(source, str) and parse_tag(source) is not None


def tags_for(model_name: str) -> list[HubTag]:
    """The known tags whose weights fit the registered model ``model_name``."""
    return [tag for tag in KNOWN_TAGS.values() if tag.model == model_name]


def default_tag(model_name: str) -> str:
    """The tag ``pretrained=True`` loads for ``model_name``; a ValueError naming the options when there is none."""
    for tag in tags_for(model_name):
        if tag.default:
            return tag.repo_id
    with_tags = sorted({tag.model for tag in KNOWN_TAGS.values() if tag.default})
    raise ValueError(
        f"{model_name} has no published weights, so pretrained=True has nothing to load (published: "
        f"{', '.join(with_tags)}); pass a weights file instead, e.g. pretrained='model.safetensors' "
        "(--weights FILE on the command line), or pretrained=False for random weights"
    )


def tag_metadata(repo_id: str) -> dict[str, Any]:
    """Metadata changes recorded on a model that loads the tag (empty for a tag not in the table)."""
    tag = KNOWN_TAGS.get(repo_id)
    if tag is None:
        return {"weights": repo_id}
    return {
        "weights": repo_id,
        "crop_pct": tag.crop_pct,
        "crop_mode": "center",
        "interpolation": tag.interpolation,
        "mean": tag.mean,
        "std": tag.std,
        "label_offset": 0,
        "extra": {"hub_tag": repo_id, "top1": tag.top1, "top5": tag.top5, "origin": tag.origin},
    }


def tags_table() -> str:
    """The known tags as a Markdown table (for the README and ``--help`` texts)."""
    rows = []
    for tag in KNOWN_TAGS.values():
        norm = "ImageNet" if tag.mean == _IMAGENET_MEAN else "0.5 / 0.5"
        rows.append(
            [
                f"`{tag.repo_id}`",
                tag.model,
                f"{tag.top1:.3f}",
                f"{tag.top5:.3f}",
                tag.crop_pct,
                tag.interpolation,
                norm,
                tag.origin,
            ]
        )
    return table(["tag", "model", "top-1", "top-5", "crop", "interpolation", "mean / std", "origin"], rows)


def cache_dir() -> str | None:
    """huggingface_hub's cache folder as the environment sets it now (``HF_HUB_CACHE``, ``HF_HOME``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def cached_file(repo_id: str, revision: str | None = None, cache: str | os.PathLike | None = None) -> Path | None:
    """The tag's weights file when huggingface_hub's cache holds it, without any network access."""
    from huggingface_hub import try_to_load_from_cache

    folder = cache if cache is not None else cache_dir()
    for filename in WEIGHT_FILES:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=folder, revision=revision)
        if isinstance(found, str):
            return Path(found)
    return None


def download_help(repo_id: str) -> str:
    """What to run on a machine with network access, and how to pass the file afterwards."""
    return (
        f"download it where there is network access, e.g. `hf download {repo_id} model.safetensors "
        f"--local-dir ./{repo_id.split('/')[-1]}` (or `huggingface-cli download ...` with older "
        f"huggingface_hub), then pass the file: --weights ./{repo_id.split('/')[-1]}/model.safetensors "
        f"(pretrained='./{repo_id.split('/')[-1]}/model.safetensors' in Python); a copy placed in the "
        "huggingface_hub cache (HF_HOME / HF_HUB_CACHE) is found by the tag as well"
    )


def resolve_tag(source: str, cache: str | os.PathLike | None = None) -> Path:
    """The local weights file of a hub tag: from the cache if there, else downloaded into it once."""
    parsed = parse_tag(source)
    if parsed is None:
        raise ValueError(f"{source!r} is not a hub tag of the form 'org/name.tag' (e.g. 'timm/inception_v4.tf_in1k')")
    repo_id, revision = parsed
    found = cached_file(repo_id, revision, cache)
    if found is not None:
        return found
    if _offline():
        raise HubUnavailableError(
            f"the weights {repo_id} are not in the local huggingface_hub cache and HF_HUB_OFFLINE is set; "
            + download_help(repo_id)
        )
    endpoint = hub_endpoint()
    unreachable = endpoint_unreachable(endpoint)
    if unreachable:
        raise HubUnavailableError(
            f"could not download {repo_id}: {unreachable}, and there is no copy in the local huggingface_hub "
            "cache; " + download_help(repo_id)
        )
    return _download(repo_id, revision, cache if cache is not None else cache_dir(), endpoint)


def hub_endpoint() -> str:
    """The hub's address: ``HF_ENDPOINT`` as the environment sets it now, else huggingface_hub's default."""
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT


def endpoint_unreachable(endpoint: str, timeout: float | None = None) -> str | None:
    """Why ``endpoint`` cannot be reached now (no connection within ``timeout`` seconds), or None when it can.

    Connects to the proxy the environment sets for the endpoint's scheme instead, when there is one. Name
    resolution and connection run in a daemon thread, so a resolver that hangs costs ``timeout``, no more.
    """
    timeout = PROBE_TIMEOUT_S if timeout is None else timeout
    parts = urllib.parse.urlsplit(endpoint)
    scheme = parts.scheme or "https"
    host, port = parts.hostname or "", parts.port or (443 if scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(scheme)
    if proxy and not urllib.request.proxy_bypass_environment(host):
        proxy_parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxy_parts.hostname or host, proxy_parts.port or 80
    outcome: dict[str, BaseException] = {}

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as err:
            outcome["error"] = err

    thread = threading.Thread(target=connect, name="hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return f"no connection to {host}:{port} within {timeout:g} s (no network?)"
    if "error" in outcome:
        err = outcome["error"]
        return f"cannot connect to {host}:{port} ({type(err).__name__}: {err}; no network?)"
    return None


def _download(repo_id: str, revision: str | None, cache: str | os.PathLike | None, endpoint: str) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    last_error: Exception | None = None
    for filename in WEIGHT_FILES:
        try:
            return Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache, endpoint=endpoint))
        except LocalEntryNotFoundError as err:  # the network failed and the cache has no copy: not a missing file
            raise _unavailable(repo_id, err) from err
        except EntryNotFoundError as err:  # the hub answered that the file is not there: try the next name
            last_error = err
        except RepositoryNotFoundError as err:
            known = ", ".join(KNOWN_TAGS)
            raise ValueError(f"no repository {repo_id!r} on the Hugging Face Hub; known tags: {known}") from err
        except Exception as err:  # offline, DNS failure, proxy, HTTP error: all end the same way for the user
            raise _unavailable(repo_id, err) from err
    raise ValueError(f"the hub repository {repo_id} holds none of {', '.join(WEIGHT_FILES)} ({last_error})")


def _unavailable(repo_id: str, err: BaseException) -> HubUnavailableError:
    return HubUnavailableError(
        f"could not download {repo_id} ({type(err).__name__}: {str(err).splitlines()[0][:200]}) and "
        "there is no copy in the local huggingface_hub cache; " + download_help(repo_id)
    )
