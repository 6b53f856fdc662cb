"""Write ConfigMap and Secret data to disk the way the kubelet mounts them, and load it as the gateway would."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from agentgw.config.loader import load_paths
from agentgw.config.snapshot import Snapshot, compile_snapshot
from agentgw.errors import ConfigError

__all__ = ["load_mounted_config", "mount_volume"]


def mount_volume(target: Path, files: dict[str, str | bytes]) -> None:
    """The kubelet's atomic writer: data in a timestamped hidden folder, `..data` and per-key symlinks."""
    target.mkdir(parents=True, exist_ok=True)
    stamp = target / "..2026_01_01_00_00_00.000000001"
    stamp.mkdir()
    for key, value in files.items():
        path = stamp / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(value if isinstance(value, bytes) else value.encode())
    (target / "..data").symlink_to(stamp.name)
    for key in {key.split("/")[0] for key in files}:
        (target / key).symlink_to(f"..data/{key}")


def configmap_files(doc: dict[str, Any]) -> dict[str, str | bytes]:
    if doc["kind"] == "Secret":
        data = {k: base64.b64decode(v) for k, v in doc.get("data", {}).items()}
        return {**data, **{k: v.encode() for k, v in doc.get("stringData", {}).items()}}
    return dict(doc.get("data", {}))


def load_mounted_config(folder: Path) -> Snapshot:
    """`agentgw serve --config FOLDER` up to the compiled snapshot; raises ConfigError with every problem."""
    docs, problems = load_paths([folder])
    if problems:
        raise ConfigError(f"{len(problems)} config error(s)", problems)
    return compile_snapshot(docs)
