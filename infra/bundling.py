"""Docker-free Lambda packaging: ``pip install --target`` with manylinux wheels, run by CDK's local bundling hook.

The whole ``functions/`` folder (package ``hicopy`` + ``requirements.txt``) is ONE asset shared by every function.
boto3/botocore stay in the bundle on purpose: they are pinned in ``functions/requirements.txt`` because
CopyImageSet's ``promoteToPrimary`` needs a newer botocore than the Lambda runtime ships.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

# Keyed by ``lambda_.Architecture.name`` (plain strings: no jsii call at import time).
PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
# Never shipped: caches, tests and the requirements file itself (folded into the hash by being in the source).
# hicopy/cli is the operator's command (installed with the package), not Lambda code.
EXCLUDE = ["**/__pycache__", "**/*.pyc", "**/.mypy_cache", "**/.pytest_cache", "**/tests", "**/.DS_Store", "hicopy/cli"]


@jsii.implements(ILocalBundling)
class PipLocalBundling:
    """Installs ``requirements.txt`` for the Lambda platform, then copies the source next to the packages."""

    def __init__(self, source_dir: Path, python_version: str, platform: str) -> None:
        self.source_dir = source_dir
        self.python_version = python_version
        self.platform = platform

    def pip_command(self, target: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "-r",
            str(self.source_dir / "requirements.txt"),
            "--target",
            target,
            "--platform",
            self.platform,
            "--implementation",
            "cp",
            "--python-version",
            self.python_version,
            "--only-binary=:all:",
            "--upgrade",
        ]

    # jsii passes the BundlingOptions positionally: keep *args.
    def try_bundle(self, output_dir: str, *_args: Any, **_kwargs: Any) -> bool:
        if (self.source_dir / "requirements.txt").exists():
            subprocess.run(self.pip_command(output_dir), check=True)
        shutil.copytree(
            self.source_dir,
            output_dir,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache", "tests", "*.txt"),
        )
        return True  # handled locally: CDK never calls Docker


def python_code(source_dir: Path, *, python_version: str, architecture: lambda_.Architecture) -> lambda_.Code:
    """One asset for ``source_dir``; the SOURCE hash makes it identical with and without bundling."""
    source_dir = source_dir.resolve()
    platform = PLATFORMS[architecture.name]
    return lambda_.Code.from_asset(
        str(source_dir),
        asset_hash_type=AssetHashType.SOURCE,
        exclude=EXCLUDE,
        bundling=BundlingOptions(
            # Required by the API, never used: try_bundle returns True, so no container runs.
            image=DockerImage.from_registry(f"public.ecr.aws/sam/build-python{python_version}"),
            local=PipLocalBundling(source_dir, python_version, platform),
            # Folded into the SOURCE asset hash: a new platform or Python version gives a new asset.
            environment={"PIP_PLATFORM": platform, "PYTHON_VERSION": python_version},
        ),
    )
