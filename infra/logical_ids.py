"""Logical ids that do not move when constructs are regrouped: CDK's own algorithm, applied to a chosen path.

CDK derives a resource's logical id from its construct path (``Stack.allocateLogicalId`` -> ``makeUniqueId``): a
human-readable part plus a hash of the path. Grouping resources into new constructs therefore changes their
logical ids, and CloudFormation would replace them (a new event bus with the same name fails, the state machine
would stop its running executions). :class:`infra.stack.CopyOrchestratorStack` uses :func:`make_unique_id` on the
path without the capability group, so a stack deployed before the groups existed updates in place.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Sequence

HIDDEN_ID = "Default"  # left out of ids entirely
HIDDEN_FROM_HUMAN_ID = "Resource"  # left out of the readable part only
HASH_LEN = 8
MAX_HUMAN_LEN = 240
MAX_ID_LEN = 255


def make_unique_id(components: Sequence[str]) -> str:
    """CDK's ``makeUniqueId`` (aws-cdk-lib ``core/lib/private/uniqueid.ts``) on the path ``components``."""
    kept = [c for c in components if c != HIDDEN_ID]
    if not kept:
        raise ValueError("a unique id needs at least one path component other than 'Default'")
    if len(kept) == 1:
        candidate = _alphanumeric(kept[0])
        if len(candidate) <= MAX_ID_LEN:
            return candidate
    digest = hashlib.md5("/".join(kept).encode(), usedforsecurity=False).hexdigest()[:HASH_LEN].upper()
    human = "".join(_alphanumeric(c) for c in _without_dupes(kept) if c != HIDDEN_FROM_HUMAN_ID)
    return human[:MAX_HUMAN_LEN] + digest


def without_group(components: Sequence[str], *, parent: str, groups: Collection[str]) -> list[str]:
    """``components`` without the group directly under ``parent``: ``[parent, group, x, ...] -> [parent, x, ...]``."""
    path = list(components)
    if len(path) > 2 and path[0] == parent and path[1] in groups:
        del path[1]
    return path


def _alphanumeric(component: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", component)


def _without_dupes(components: Sequence[str]) -> list[str]:
    """A component that ends the previous one is dropped (``Bucket/Bucket`` -> ``Bucket``), as CDK does."""
    out: list[str] = []
    for component in components:
        if not out or not out[-1].endswith(component):
            out.append(component)
    return out
