"""A throwaway corner of a real AWS account for ``make test-aws``, removed again afterwards.

``Account.create()`` makes a data store, an S3 bucket (import input and output), the role HealthImaging imports with,
deploys this repository's stack against them (``cdk deploy``, postImportPolicy ``consolidate``), and puts two
capture queues behind EventBridge rules: the orchestrator's events (custom bus) and HealthImaging's own events
(default bus). On exit everything is deleted in reverse order, best effort, and whatever could not be deleted is
printed. ``Account`` is also the ``tests.support.premises.World`` the probes run on.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

from hicopy.contract import TERMINAL_DETAIL_TYPES
from tests.aws import dicom_files
from tests.support.premises import Made, wait_until

ROOT = Path(__file__).resolve().parents[2]
IMPORT_TIMEOUT = 30 * 60
COPY_TIMEOUT = 30 * 60


class Account:
    def __init__(self) -> None:
        self.session = boto3.Session()
        self.region = self.session.region_name or "us-east-1"
        self.suffix = uuid.uuid4().hex[:8]
        self.rng = random.Random(self.suffix)
        self.mi: Any = self.session.client("medical-imaging", region_name=self.region)
        self.s3: Any = self.session.client("s3", region_name=self.region)
        self.sqs: Any = self.session.client("sqs", region_name=self.region)
        self.events: Any = self.session.client("events", region_name=self.region)
        self.iam: Any = self.session.client("iam", region_name=self.region)
        self.account_id: str = self.session.client("sts").get_caller_identity()["Account"]
        self.stack_name = f"HicopyAwsTest{self.suffix}"
        self.datastore_id = ""
        self.bucket = f"hicopy-test-{self.account_id}-{self.suffix}"
        self.role_arn = ""
        self.outputs: dict[str, str] = {}
        self.orchestrator_events: list[dict[str, Any]] = []
        self.healthimaging_events: list[dict[str, Any]] = []
        self._queues: dict[str, str] = {}
        self._cleanup: list[tuple[str, Callable[[], Any]]] = []
        self._patients = 0
        self._studies: dict[str, dicom_files.Study] = {}  # image set -> the generated study its files belong to

    # --- setting up and tearing down --------------------------------------------------------------------------
    @classmethod
    @contextmanager
    def create(cls) -> Iterator[Account]:
        account = cls()
        try:
            account._set_up()
            yield account
        finally:
            account._tear_down()

    def _later(self, what: str, undo: Callable[[], Any]) -> None:
        self._cleanup.append((what, undo))

    def _set_up(self) -> None:
        ds = self.mi.create_datastore(datastoreName=f"hicopy-test-{self.suffix}")["datastoreId"]
        self.datastore_id = ds
        self._later(f"data store {ds}", self._delete_datastore)
        wait_until(
            lambda: self.mi.get_datastore(datastoreId=ds)["datastoreProperties"]["datastoreStatus"] == "ACTIVE",
            timeout=15 * 60,
            interval=15,
        )
        config: dict[str, Any] = (
            {} if self.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": self.region}}
        )
        self.s3.create_bucket(Bucket=self.bucket, **config)
        self._later(f"bucket {self.bucket}", self._delete_bucket)
        self.s3.put_public_access_block(
            Bucket=self.bucket,
            PublicAccessBlockConfiguration=dict.fromkeys(
                ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
            ),
        )
        self._import_role()
        self._deploy()
        self._capture("orchestrator", self.outputs["EventBusName"], {"source": ["hicopy.orchestrator"]})
        self._capture("healthimaging", "default", {"source": ["aws.medical-imaging"]})

    def _import_role(self) -> None:
        name = f"hicopy-test-import-{self.suffix}"
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "medical-imaging.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        self.role_arn = self.iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        self._later(f"role {name}", lambda: self._delete_role(name))
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:PutObject"],
                    "Resource": f"arn:aws:s3:::{self.bucket}/*",
                },
                {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{self.bucket}"},
            ],
        }
        self.iam.put_role_policy(RoleName=name, PolicyName="import", PolicyDocument=json.dumps(policy))
        time.sleep(10)  # IAM is eventually consistent

    def _cdk(self, command: str, *extra: str) -> None:
        context = [
            f"hicopy:datastoreIds={self.datastore_id}",
            f"hicopy:importOutputBuckets={self.bucket}",
            "hicopy:postImportPolicy=consolidate",
            f"hicopy:stackName={self.stack_name}",
        ]
        args = ["npx", "--no-install", "cdk", command, *extra]
        for item in context:
            args += ["-c", item]
        subprocess.run(args, cwd=ROOT, check=True, env={**os.environ, "AWS_REGION": self.region})

    def _deploy(self) -> None:
        outputs = ROOT / "build" / f"aws-test-{self.suffix}-outputs.json"
        self._later(f"stack {self.stack_name}", lambda: self._cdk("destroy", "--force"))
        self._cdk("deploy", "--require-approval", "never", "--outputs-file", str(outputs))
        self.outputs = json.loads(outputs.read_text())[self.stack_name]

    def _capture(self, name: str, bus: str, pattern: dict[str, Any]) -> None:
        queue_name = f"hicopy-test-{name}-{self.suffix}"
        url = self.sqs.create_queue(QueueName=queue_name)["QueueUrl"]
        self._later(f"queue {queue_name}", lambda: self.sqs.delete_queue(QueueUrl=url))
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        rule = f"hicopy-test-{name}-{self.suffix}"
        rule_arn = self.events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps(pattern))["RuleArn"]
        self._later(f"rule {rule}", lambda: self._delete_rule(rule, bus))
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                }
            ],
        }
        self.sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
        self.events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "capture", "Arn": arn}])
        self._queues[name] = url

    def _tear_down(self) -> None:
        left: list[str] = []
        for what, undo in reversed(self._cleanup):
            try:
                undo()
            except Exception as exc:  # best effort: report, go on with the rest
                left.append(f"{what}: {type(exc).__name__}: {exc}")
        if left:
            print("make test-aws could not remove (delete by hand):\n  " + "\n  ".join(left))

    def _delete_rule(self, rule: str, bus: str) -> None:
        self.events.remove_targets(Rule=rule, EventBusName=bus, Ids=["capture"])
        self.events.delete_rule(Name=rule, EventBusName=bus)

    def _delete_role(self, name: str) -> None:
        self.iam.delete_role_policy(RoleName=name, PolicyName="import")
        self.iam.delete_role(RoleName=name)

    def _delete_bucket(self) -> None:
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})
        self.s3.delete_bucket(Bucket=self.bucket)

    def _delete_datastore(self) -> None:
        ds = self.datastore_id
        for page in self.mi.get_paginator("search_image_sets").paginate(datastoreId=ds):
            for found in page["imageSetsMetadataSummaries"]:
                wait_until(lambda i=found["imageSetId"]: self._unlocked(i), timeout=COPY_TIMEOUT)
                self.mi.delete_image_set(datastoreId=ds, imageSetId=found["imageSetId"])
                time.sleep(4.2)  # DeleteImageSet: 0.25 calls/s
        wait_until(
            lambda: not self.mi.search_image_sets(datastoreId=ds)["imageSetsMetadataSummaries"],
            timeout=15 * 60,
            interval=15,
        )
        self.mi.delete_datastore(datastoreId=ds)

    def _unlocked(self, image_set_id: str) -> bool:
        got = self.mi.get_image_set(datastoreId=self.datastore_id, imageSetId=image_set_id)
        return bool(got["imageSetState"] != "LOCKED")

    # --- imports (the World of tests.support.premises) ------------------------------------------------------
    def import_files(self, files: dict[str, bytes]) -> list[dict[str, Any]]:
        """Import these DICOM files; the manifest's ``imageSetsSummary``."""
        tag = uuid.uuid4().hex[:12]
        for name, body in files.items():
            self.s3.put_object(Bucket=self.bucket, Key=f"input/{tag}/{name}", Body=body)
        job_id = self.mi.start_dicom_import_job(
            datastoreId=self.datastore_id,
            dataAccessRoleArn=self.role_arn,
            inputS3Uri=f"s3://{self.bucket}/input/{tag}/",
            outputS3Uri=f"s3://{self.bucket}/output/{tag}/",
            clientToken=tag,
        )["jobId"]

        def finished() -> dict[str, Any] | None:
            job = self.mi.get_dicom_import_job(datastoreId=self.datastore_id, jobId=job_id)["jobProperties"]
            return job if job["jobStatus"] in ("COMPLETED", "FAILED") else None

        job = wait_until(finished, timeout=IMPORT_TIMEOUT, interval=10)
        assert job["jobStatus"] == "COMPLETED", job
        bucket, _, key = job["outputS3Uri"].removeprefix("s3://").partition("/")
        manifest = json.loads(self.s3.get_object(Bucket=bucket, Key=f"{key}job-output-manifest.json")["Body"].read())
        summaries: list[dict[str, Any]] = manifest["jobSummary"]["imageSetsSummary"]
        return summaries

    def _made(self, summary: dict[str, Any], study: dicom_files.Study, series: list[dicom_files.Series]) -> Made:
        image_set_id = summary["imageSetId"]
        info = self.settle(image_set_id)
        return Made(
            image_set_id,
            info["versionId"],
            study.study_uid,
            [s.uid for s in series],
            {s.uid: list(s.sop_uids) for s in series},
        )

    def make(self, *, series: int = 1, instances: int = 2, study_of: Made | None = None) -> Made:
        self._patients += 1
        study = dicom_files.new_study(self.rng, patient_id=f"PROBE-{self.suffix}-{self._patients}")
        if study_of is not None:
            study = self._studies[study_of.image_set_id]
        made_series = [dicom_files.add_series(self.rng, study, instances=instances) for _ in range(series)]
        files: dict[str, bytes] = {}
        for s in made_series:
            files.update(dicom_files.files(study, s))
        summaries = self.import_files(files)
        made = self._made(summaries[0], study, made_series)
        self._studies[made.image_set_id] = study
        return made

    def make_non_primary(self, like: Made) -> Made:
        study = self._studies[like.image_set_id]
        again = dicom_files.Series(
            uid=like.series_uids[0], number=1, sop_uids=[dicom_files.uid(self.rng) for _ in range(2)]
        )
        summaries = self.import_files(dicom_files.files(study, again, patient_name="CONFLICTING^NAME"))
        non_primary = [s for s in summaries if s.get("isPrimary") is False] or summaries
        made = self._made(non_primary[0], study, [again])
        self._studies[made.image_set_id] = study
        return made

    def settle(self, image_set_id: str, version_id: str | None = None) -> dict[str, Any]:
        params = {"datastoreId": self.datastore_id, "imageSetId": image_set_id}
        if version_id:
            params["versionId"] = version_id

        def unlocked() -> dict[str, Any] | None:
            got: dict[str, Any] = self.mi.get_image_set(**params)
            return got if got["imageSetState"] != "LOCKED" else None

        settled: dict[str, Any] = wait_until(unlocked, timeout=COPY_TIMEOUT)
        return settled

    def drain(self, name: str) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        while True:
            answer = self.sqs.receive_message(QueueUrl=self._queues[name], MaxNumberOfMessages=10, WaitTimeSeconds=2)
            messages = answer.get("Messages", [])
            if not messages:
                return got
            for message in messages:
                got.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self._queues[name], ReceiptHandle=message["ReceiptHandle"])

    def image_set_event_details(self) -> list[dict[str, Any]]:
        time.sleep(30)  # EventBridge delivery
        self.healthimaging_events += self.drain("healthimaging")
        return [e["detail"] for e in self.healthimaging_events if str(e.get("detail-type", "")).startswith("Image Set")]

    # --- the orchestrator ---------------------------------------------------------------------------------
    def send_job(self, job: dict[str, Any]) -> None:
        self.sqs.send_message(QueueUrl=self.outputs["JobQueueUrl"], MessageBody=json.dumps(job))

    def terminal_event(self, job_id: str, *, timeout: float = 45 * 60) -> dict[str, Any]:
        """The one terminal event of ``job_id`` (and no second one within a minute after it)."""

        def arrived() -> list[dict[str, Any]]:
            self.orchestrator_events += self.drain("orchestrator")
            return [
                e
                for e in self.orchestrator_events
                if e["detail"].get("jobId") == job_id and e["detail-type"] in TERMINAL_DETAIL_TYPES
            ]

        [event] = wait_until(arrived, timeout=timeout, interval=10)
        time.sleep(60)
        assert len(arrived()) == 1, f"job {job_id}: more than one terminal event"
        return event
