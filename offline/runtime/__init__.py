"""The embedded local runtime: the real CDK app, state machine and handlers on moto, with no AWS and no Docker.

See ``offline.runtime.runtime.LocalRuntime`` for the API and the README section "Local runtime".
"""

from offline.runtime.assembly import AssemblyError, CloudAssembly
from offline.runtime.deploy import ACCOUNT, REGION, Deployment
from offline.runtime.drive import IdleReport, IdleTimeout
from offline.runtime.inspection import Attempt, ExecutionInfo
from offline.runtime.lambdas import Invocation
from offline.runtime.patches import RetrySleep
from offline.runtime.progress import Progress
from offline.runtime.runtime import DEFAULT_DATASTORE_ID, IMPORT_INPUT_BUCKET, IMPORT_OUTPUT_BUCKET, LocalRuntime
from offline.runtime.synth import synthesize

__all__ = [
    "ACCOUNT",
    "DEFAULT_DATASTORE_ID",
    "IMPORT_INPUT_BUCKET",
    "IMPORT_OUTPUT_BUCKET",
    "REGION",
    "AssemblyError",
    "Attempt",
    "CloudAssembly",
    "Deployment",
    "ExecutionInfo",
    "IdleReport",
    "IdleTimeout",
    "Invocation",
    "LocalRuntime",
    "Progress",
    "RetrySleep",
    "synthesize",
]
