"""Least-privilege statements that CDK's grant helpers do not cover (HealthImaging, import output)."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import ArnFormat, Aws, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.acknowledge import AWS_SOLUTIONS, acknowledge

# What each function may call on HealthImaging (design §2; the Lambda code's adapters use exactly these).
PREPARE_ACTIONS = ["GetImageSet", "GetImageSetMetadata"]
SUBMIT_ACTIONS = ["CopyImageSet", "GetImageSet", "GetImageSetMetadata", "SearchImageSets"]
AWAIT_COPY_ACTIONS = ["GetImageSet"]
PLANNER_ACTIONS = ["GetDICOMImportJob", "SearchImageSets", "GetImageSet", "GetImageSetMetadata"]
# DeleteSource reads the source and destination metadata (every source instance must be in the destination) and the
# source's latest version (unchanged since the copy) before it deletes.
DELETE_SOURCE_ACTIONS = ["DeleteImageSet", "GetImageSet", "GetImageSetMetadata"]
# HealthImaging's write operations among those: with a customer-managed key, a write needs kms:GenerateDataKey.
WRITE_ACTIONS = frozenset({"CopyImageSet", "DeleteImageSet", "UpdateImageSetMetadata"})


def datastore_key_actions(actions: Sequence[str]) -> list[str]:
    """What a caller of these HealthImaging actions needs on a data store's customer-managed KMS key (HealthImaging
    developer guide, "Data encryption": kms:DescribeKey for every operation, kms:Decrypt for reads and searches,
    kms:GenerateDataKey for writes)."""
    needed = ["kms:DescribeKey", "kms:Decrypt"]
    if WRITE_ACTIONS & set(actions):
        needed.append("kms:GenerateDataKey")
    return needed


def datastore_arn(scope: Construct, datastore_id: str) -> str:
    return Stack.of(scope).format_arn(
        service="medical-imaging",
        resource="datastore",
        resource_name=datastore_id,
        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
    )


def datastore_resources(scope: Construct, datastore_ids: Sequence[str]) -> list[str]:
    """Each configured data store and its image sets: ``datastore/<id>`` and ``datastore/<id>/imageset/*``."""
    arns: list[str] = []
    for datastore_id in datastore_ids:
        arn = datastore_arn(scope, datastore_id)
        arns += [arn, f"{arn}/imageset/*"]
    return arns


def _role(fn: lambda_.Function) -> iam.IRole:
    if fn.role is None:
        raise ValueError(f"{fn.node.path} has no execution role")
    return fn.role


def allow_medical_imaging(
    grantee: lambda_.Function,
    scope: Construct,
    *,
    datastore_ids: Sequence[str],
    actions: Sequence[str],
    kms_key_arns: Sequence[str] = (),
) -> None:
    """The HealthImaging actions on the configured data stores, and, when they are encrypted with customer-managed
    keys (``datastoreKmsKeyArns``), what those calls need of the keys, only through HealthImaging."""
    grantee.grant_principal.add_to_principal_policy(
        iam.PolicyStatement(
            sid="HealthImagingConfiguredDatastores",
            actions=[f"medical-imaging:{action}" for action in actions],
            resources=datastore_resources(scope, datastore_ids),
        )
    )
    if kms_key_arns:
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                sid="DatastoreKeysThroughHealthImaging",
                actions=datastore_key_actions(actions),
                resources=list(kms_key_arns),
                conditions={"StringEquals": {"kms:ViaService": f"medical-imaging.{Aws.REGION}.amazonaws.com"}},
            )
        )
    for datastore_id in datastore_ids:
        imagesets = (
            f"arn:<AWS::Partition>:medical-imaging:<AWS::Region>:<AWS::AccountId>:datastore/{datastore_id}/imageset/*"
        )
        acknowledge(
            _role(grantee),
            f"{AWS_SOLUTIONS}-IAM5[Resource::{imagesets}]",
            "Image set ids are only known at run time (jobs name them, copies create them); the wildcard is "
            f"limited to the image sets of the configured data store {datastore_id}.",
        )


def allow_import_output_read(grantee: lambda_.Function, *, buckets: Sequence[str], kms_key_arns: Sequence[str]) -> None:
    """Read the DICOM import job output (manifests) in the configured buckets only."""
    if not buckets:
        return
    bucket_arns = [f"arn:{Aws.PARTITION}:s3:::{bucket}" for bucket in buckets]
    grantee.grant_principal.add_to_principal_policy(
        iam.PolicyStatement(
            sid="ReadImportOutputObjects",
            actions=["s3:GetObject"],
            resources=[f"{arn}/*" for arn in bucket_arns],
        )
    )
    for bucket in buckets:
        acknowledge(
            _role(grantee),
            f"{AWS_SOLUTIONS}-IAM5[Resource::arn:<AWS::Partition>:s3:::{bucket}/*]",
            "Import job output keys (job-output-manifest.json, SUCCESS/, FAILURE/) are per import job; "
            f"s3:GetObject is limited to the configured import output bucket {bucket}.",
        )
    grantee.grant_principal.add_to_principal_policy(
        iam.PolicyStatement(sid="ListImportOutputBuckets", actions=["s3:ListBucket"], resources=bucket_arns)
    )
    if kms_key_arns:
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                sid="DecryptImportOutputThroughS3",
                actions=["kms:Decrypt"],
                resources=list(kms_key_arns),
                conditions={"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}},
            )
        )
