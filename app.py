#!/usr/bin/env python3
"""CDK app entry point (cdk.json "app"). Offline: no AWS calls, no Docker.

The CDK CLI runs it with the project venv first on PATH (`make synth`/`make deploy`), where `make venv` installed
the project (hicopy, infra) editable.

Environment switches: ``SKIP_BUNDLING=1`` (no pip bundling: quick synth), ``CDK_NAG=0`` (no cdk-nag packs).
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from infra.app_factory import build_app
    from infra.config import ConfigError

    try:
        app, _ = build_app(
            bundle=os.environ.get("SKIP_BUNDLING", "0") != "1",
            nag=os.environ.get("CDK_NAG", "1") != "0",
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
