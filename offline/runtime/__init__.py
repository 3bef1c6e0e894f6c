"""The embedded local runtime: the real CDK app, state machine and handlers on moto, with no AWS and no Docker.

See ``offline.runtime.runtime.LocalRuntime`` for the API and the README section "Local runtime".
"""

from offline.runtime.assembly import AssemblyError, CloudAssembly
from offline.runtime.lambdas import Invocation
from offline.runtime.runtime import (
    ACCOUNT,
    DEFAULT_DATASTORE_ID,
    IMPORT_INPUT_BUCKET,
    IMPORT_OUTPUT_BUCKET,
    REGION,
    ExecutionInfo,
    IdleReport,
    IdleTimeout,
    LocalRuntime,
    Progress,
    RetrySleep,
)
from offline.runtime.synth import synthesize

__all__ = [
    "ACCOUNT",
    "DEFAULT_DATASTORE_ID",
    "IMPORT_INPUT_BUCKET",
    "IMPORT_OUTPUT_BUCKET",
    "REGION",
    "AssemblyError",
    "CloudAssembly",
    "ExecutionInfo",
    "IdleReport",
    "IdleTimeout",
    "Invocation",
    "LocalRuntime",
    "Progress",
    "RetrySleep",
    "synthesize",
]
