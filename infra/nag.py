"""cdk-nag 3: the AwsSolutions and HIPAA Security rule packs, run on the whole app at synth.

The accepted findings are acknowledged where their resource is created (``infra.acknowledge``).
"""

from __future__ import annotations

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks


def apply_nag(app: cdk.App) -> None:
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True), HIPAASecurityChecks(app, verbose=True))
