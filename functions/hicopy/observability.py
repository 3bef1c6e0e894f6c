"""Powertools Logger, Tracer and Metrics: created once, imported by every handler.

Service name and metrics namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE (set by the
stack). The job ID is the correlation ID on every log line of a job.
"""

from __future__ import annotations

import logging

from aws_lambda_powertools import Logger, Metrics, Tracer

# The AWS SDK logs whole request and response bodies at DEBUG (SearchImageSets' DICOMTags hold patient names and
# IDs). Pin its loggers to WARNING so that raising LOG_LEVEL to troubleshoot never writes PHI to CloudWatch.
for _name in ("botocore", "boto3", "urllib3", "s3transfer"):
    logging.getLogger(_name).setLevel(logging.WARNING)

logger = Logger(service="hicopy")
tracer = Tracer(service="hicopy")
metrics = Metrics(namespace="HealthImagingCopy", service="hicopy")
