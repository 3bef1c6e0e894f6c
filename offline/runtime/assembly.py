"""Read a synthesized cloud assembly (``cdk.out``): the stack template, its file assets and construct paths.

Only files CDK always writes are used: ``manifest.json``, ``<Stack>.template.json``, ``<Stack>.assets.json`` and
``tree.json``. Nothing here imports ``aws_cdk``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class AssemblyError(Exception):
    """The cloud assembly is missing, incomplete or not what the runtime expects."""


@dataclass(frozen=True)
class FileAsset:
    """A ``zip``-packaged file asset (a Lambda code folder) and the S3 object key CloudFormation refers to."""

    asset_hash: str
    path: Path
    object_key: str


@dataclass
class CloudAssembly:
    """One stack of a synthesized ``cdk.out``."""

    directory: Path
    stack_name: str
    template: dict[str, Any]
    assets: dict[str, FileAsset] = field(default_factory=dict)  # by S3 object key
    _tree: dict[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def load(cls, directory: str | Path, stack_name: str | None = None) -> CloudAssembly:
        directory = Path(directory).resolve()
        manifest_file = directory / "manifest.json"
        if not manifest_file.is_file():
            raise AssemblyError(f"{directory} is not a cloud assembly (no manifest.json)")
        manifest = json.loads(manifest_file.read_text())
        artifacts: dict[str, Any] = manifest.get("artifacts", {})
        stacks = {k: v for k, v in artifacts.items() if v.get("type") == "aws:cloudformation:stack"}
        if not stacks:
            raise AssemblyError(f"{directory}: no CloudFormation stack in the assembly")
        if stack_name is None:
            if len(stacks) != 1:
                raise AssemblyError(f"{directory}: several stacks ({', '.join(stacks)}); name one")
            stack_name = next(iter(stacks))
        if stack_name not in stacks:
            raise AssemblyError(f"{directory}: no stack {stack_name!r} (have {', '.join(stacks)})")
        props = stacks[stack_name].get("properties", {})
        template_file = directory / props.get("templateFile", f"{stack_name}.template.json")
        template = json.loads(template_file.read_text())
        assembly = cls(directory=directory, stack_name=stack_name, template=template)
        assembly.assets = assembly._load_assets(artifacts, stack_name)
        return assembly

    def _load_assets(self, artifacts: dict[str, Any], stack_name: str) -> dict[str, FileAsset]:
        files: list[Path] = []
        for art in artifacts.values():
            if art.get("type") == "cdk:asset-manifest":
                files.append(self.directory / art["properties"]["file"])
        default = self.directory / f"{stack_name}.assets.json"
        if default.is_file() and default not in files:
            files.append(default)
        assets: dict[str, FileAsset] = {}
        for file in files:
            if not file.is_file():
                continue
            for asset_hash, spec in json.loads(file.read_text()).get("files", {}).items():
                source = spec.get("source", {})
                if source.get("packaging") != "zip":
                    continue
                src_path = Path(source["path"])
                path = src_path if src_path.is_absolute() else self.directory / src_path
                for dest in spec.get("destinations", {}).values():
                    key = dest["objectKey"]
                    assets[key] = FileAsset(asset_hash=asset_hash, path=path.resolve(), object_key=key)
        return assets

    # ------------------------------------------------------------------------------------------------ template

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = self.template.get("Resources", {})
        return resources

    def resources_of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {lid: r for lid, r in self.resources.items() if r.get("Type") == resource_type}

    def code_dir_of(self, logical_id: str) -> Path | None:
        """Local folder of a Lambda function's code asset (``None`` for inline code or an unknown asset)."""
        props = self.resources[logical_id].get("Properties", {})
        key = props.get("Code", {}).get("S3Key")
        if isinstance(key, str) and key in self.assets:
            return self.assets[key].path
        return None

    # ------------------------------------------------------------------------------------------------ tree.json

    def _tree_root(self) -> dict[str, Any]:
        if self._tree is None:
            tree_file = self.directory / "tree.json"
            self._tree = json.loads(tree_file.read_text())["tree"] if tree_file.is_file() else {}
        return self._tree

    def construct_paths(self) -> dict[str, str]:
        """Logical id -> construct path relative to the stack (e.g. ``CopyStateMachine/Resource``)."""
        out: dict[str, str] = {}
        stack: list[dict[str, Any]] = [self._tree_root()]
        prefix = f"{self.stack_name}/"
        while stack:
            node = stack.pop()
            lid = (node.get("attributes") or {}).get("aws:cdk:cloudformation:logicalId")
            path = node.get("path", "")
            if isinstance(lid, str) and path.startswith(prefix):
                out[lid] = path[len(prefix) :]
            stack.extend((node.get("children") or {}).values())
        return out

    def logical_id(self, construct_id: str) -> str:
        """Logical id of the L1 resource behind a construct path or id (``Default/JobQueue``, ``JobQueue``).

        A bare construct id matches the last segment of a path (``Default/JobQueue/Resource``) if only one does.
        """
        paths = self.construct_paths()
        wanted = (construct_id, f"{construct_id}/Resource")
        for lid, path in paths.items():
            if path in wanted:
                return lid
        by_id = [lid for lid, path in paths.items() if path.removesuffix("/Resource").split("/")[-1] == construct_id]
        if len(by_id) == 1:
            return by_id[0]
        if construct_id in self.resources:
            return construct_id
        raise KeyError(f"no single resource for construct {construct_id!r} in stack {self.stack_name}: {by_id}")
