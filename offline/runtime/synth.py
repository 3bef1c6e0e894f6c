"""Synthesize the CDK app for the local runtime, cached by a hash of everything that shapes the template.

``synthesize()`` returns a ready ``cdk.out`` directory. The cache key is the SHA-256 of the app's source files
(``app.py``, ``cdk.json``, ``infra/``, ``functions/``), the synth context and arguments, and the aws-cdk-lib version.
A hit costs a few milliseconds and never starts jsii/Node; a miss synthesizes in this process (the first synth of a
process pays ~3-5 s for loading aws-cdk-lib, later ones ~0.3 s) into a temporary directory that is renamed into
place, so concurrent processes (pytest-xdist) never see a half-written assembly.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SOURCES: tuple[str, ...] = ("app.py", "cdk.json", "infra", "functions")
DEFAULT_FACTORY = "infra.app_factory:build_app"
CACHE_FORMAT = "1"
_IGNORED_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", "cdk.out", "tests", ".hypothesis"}
_KEEP_CACHES = 4
_memo: dict[str, Path] = {}
_memo_lock = threading.Lock()


def default_cache_root(root: Path = REPO_ROOT) -> Path:
    env = os.environ.get("HICOPY_LOCAL_CACHE")
    return Path(env) if env else root / "build" / "local-runtime"


def _iter_files(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    if not path.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith((".pyc", ".pyo")):
                continue
            yield Path(dirpath) / name


def tree_digest(paths: Sequence[Path], *, base: Path) -> str:
    """SHA-256 over relative names and contents of every file under ``paths``."""
    h = hashlib.sha256()
    for top in paths:
        for file in _iter_files(top):
            h.update(str(file.relative_to(base)).encode())
            h.update(b"\0")
            h.update(file.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


def _cdk_version() -> str:
    try:
        return importlib.metadata.version("aws-cdk-lib")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def cache_key(
    *,
    root: Path,
    sources: Sequence[str],
    factory: str,
    factory_kwargs: Mapping[str, Any],
) -> str:
    h = hashlib.sha256()
    h.update(CACHE_FORMAT.encode())
    h.update(_cdk_version().encode())
    h.update(factory.encode())
    h.update(json.dumps(factory_kwargs, sort_keys=True, default=str).encode())
    h.update(tree_digest([root / s for s in sources], base=root).encode())
    return h.hexdigest()[:20]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _load_factory(spec: str, root: Path) -> Callable[..., Any]:
    module_name, _, attr = spec.partition(":")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    module = importlib.import_module(module_name)
    factory: Callable[..., Any] = getattr(module, attr or "build_app")
    return factory


def _prune(cache_root: Path, keep: Path) -> None:
    dirs = sorted(
        (d for d in cache_root.glob("cdk.out-*") if d.is_dir() and d != keep),
        key=lambda d: d.stat().st_mtime,
        reverse=True,
    )
    for old in dirs[_KEEP_CACHES - 1 :]:
        shutil.rmtree(old, ignore_errors=True)


def synthesize(
    *,
    context: Mapping[str, Any] | None = None,
    root: str | Path = REPO_ROOT,
    factory: str = DEFAULT_FACTORY,
    sources: Sequence[str] = DEFAULT_SOURCES,
    cache_root: str | Path | None = None,
    force: bool = False,
) -> Path:
    """Return a ``cdk.out`` directory for ``factory(bundle=False, cfn_validation=False, nag=False, context=...)``.

    ``factory`` is ``"module:function"`` importable from ``root``; it must accept the keyword arguments of
    ``infra.app_factory.build_app`` and return ``(app, stack)``.
    """
    root = Path(root).resolve()
    cache_dir = Path(cache_root) if cache_root is not None else default_cache_root(root)
    kwargs: dict[str, Any] = {"bundle": False, "nag": False, "cfn_validation": False, "context": dict(context or {})}
    key = cache_key(root=root, sources=sources, factory=factory, factory_kwargs=kwargs)
    target = cache_dir / f"cdk.out-{key}"
    done_marker = target / ".local-runtime-complete"
    with _memo_lock:
        if not force and key in _memo and done_marker.is_file():
            return _memo[key]
        with _file_lock(cache_dir / ".synth.lock"):
            if force and target.exists():
                shutil.rmtree(target)
            if not done_marker.is_file():
                _synth_into(target, root=root, factory=factory, kwargs=kwargs)
                done_marker.write_text(json.dumps({"key": key, "factory": factory, "context": kwargs["context"]}))
                _prune(cache_dir, keep=target)
        os.utime(target)
        _memo[key] = target
        return target


def _synth_into(target: Path, *, root: Path, factory: str, kwargs: dict[str, Any]) -> None:
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
    build = _load_factory(factory, root)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".synth-", dir=target.parent))
    try:
        app, _stack = build(outdir=str(tmp), **kwargs)
        app.synth()
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
