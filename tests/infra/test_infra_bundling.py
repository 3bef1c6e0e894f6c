"""`python app.py` with Docker-free bundling ON: pip installs manylinux wheels for the Lambda runtime (needs PyPI)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.helpers import STACK_NAME, BundledSynth, resources

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.network
def test_app_py_bundles_the_functions_offline(bundled_synth: BundledSynth, template_json: dict[str, Any]) -> None:
    assert bundled_synth.process.returncode == 0, bundled_synth.log.read_text()[-5000:]
    tmp_path = bundled_synth.outdir
    template = json.loads((tmp_path / f"{STACK_NAME}.template.json").read_text())
    keys = {str(fn["Properties"]["Code"]["S3Key"]) for fn in resources(template, "AWS::Lambda::Function").values()}
    assert len(keys) == 1, keys  # one asset for every function
    (key,) = keys
    # SOURCE hash: the same asset key as the unbundled test synth
    unbundled = {
        str(fn["Properties"]["Code"]["S3Key"]) for fn in resources(template_json, "AWS::Lambda::Function").values()
    }
    assert unbundled == keys

    bundle = tmp_path / f"asset.{key.removesuffix('.zip')}"
    assert (bundle / "hicopy" / "handlers" / "consumer.py").is_file()
    assert (bundle / "hicopy" / "errors.py").is_file()
    assert not (bundle / "requirements.txt").exists()
    assert not list(bundle.glob("hicopy/**/__pycache__"))
    # compiled wheels for the Lambda platform (Python 3.14 on arm64), not for the build host
    (core,) = bundle.glob("pydantic_core/_pydantic_core.*.so")
    assert core.name == "_pydantic_core.cpython-314-aarch64-linux-gnu.so"
    assert (bundle / "aws_lambda_powertools").is_dir()
    # the pinned SDK stays in the bundle: CopyImageSet's promoteToPrimary needs it
    version = re.search(r"__version__ = '([^']+)'", (bundle / "botocore" / "__init__.py").read_text())
    pinned = re.search(r"^botocore==(\S+)", (ROOT / "functions" / "requirements.txt").read_text(), re.MULTILINE)
    assert version and pinned and version.group(1) == pinned.group(1)
    (model,) = bundle.glob("botocore/data/medical-imaging/*/service-2.json*")
    assert (bundle / "boto3").is_dir()
    assert model.exists()
