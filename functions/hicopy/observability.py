"""Powertools Logger, Tracer and Metrics: created once, imported by every handler.

Service name and metrics namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE (set by the
stack). The job ID is the correlation ID on every log line of a job.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="hicopy")
tracer = Tracer(service="hicopy")
metrics = Metrics(namespace="HealthImagingCopy", service="hicopy")
