import json
from typing import Any

import pytest

from hicopy.contract import IMPORT_FAILURES, IMPORT_PLANNED
from hicopy.domain.conflicts import conflicting_attributes
from hicopy.domain.import_output import ImportResult, loads_lenient, parse_ndjson, read_import_result
from hicopy.domain.imports import PlannerSettings, handle_import_event, plan_jobs, planned_detail
from hicopy.domain.job import parse_job
from hicopy.errors import EventPublishFailed, InvalidRequest, ManifestNotReady
from tests.support.contracts import assert_valid_event
from tests.support.fakes import FakeClock, FakeImportMarker, FakePublisher, FakeQueue

DS, JOB = "d" * 32, "e" * 32
OUT = f"s3://bucket/out/{DS}-DicomImport-{JOB}/"
P1, N1, N2 = "1" * 32, "2" * 32, "3" * 32


class Output:
    def __init__(self, files):
        self.files = files
        self.reads = []

    def read(self, uri):
        self.reads.append(uri)
        return self.files.get(uri)


def manifest(*entries, **summary):
    return json.dumps(
        {
            "jobSummary": {
                "jobId": JOB,
                "datastoreId": DS,
                "outputS3Uri": OUT,
                "imageSetsSummary": list(entries),
                **summary,
            }
        }
    ).encode()


class Imaging:
    def __init__(self, primary=None, series=None, primaries=None, documents=None):
        self.primary, self.series, self.primaries = primary or {}, series or {}, primaries or {}
        self.documents = documents or {}

    def is_primary(self, ds, image_set_id):
        return self.primary.get(image_set_id)

    def series_of(self, ds, image_set_id):
        return self.series.get(image_set_id, [])

    def metadata_of(self, ds, image_set_id):
        return self.documents[image_set_id]

    def primary_for_series(self, ds, series_uid, exclude):
        return self.primaries.get(series_uid)

    def version_of(self, ds, image_set_id):
        return "1"


def job_props(status="COMPLETED"):
    return {"jobId": JOB, "datastoreId": DS, "jobStatus": status, "outputS3Uri": OUT}


def test_lenient_json_accepts_the_docs_python_literals():
    assert loads_lenient('{"a": True, "b": False, "c": None, "d": "True"}') == {
        "a": True,
        "b": False,
        "c": None,
        "d": "True",
    }
    assert parse_ndjson(b'{"x": 1}\n\n{"y": true}\n') == [{"x": 1}, {"y": True}]


def test_reads_manifest_success_warning_and_failure_files():
    files = {
        OUT + "job-output-manifest.json": manifest(
            {"imageSetId": P1, "numberOfMatchedSOPInstances": 2, "extra": 1}, {"imagesetId": N1}, numberOfScannedFiles=5
        ),
        OUT + "SUCCESS/success.ndjson": b'{"inputFile":"a.dcm","importResponse":{"imageSetId":"'
        + P1.encode()
        + b'", "isPrimary": True}}\n{"inputFile":"b.dcm","importResponse":{"imageSetId":"'
        + N1.encode()
        + b'","isPrimary":false}}\n',
        OUT + "WARNING/warning.ndjson": b'{"inputFile":"c.dcm","importResponse":{"imageSetId":"'
        + P1.encode()
        + b'","imageSetVersion":2,"isPrimary":true,"warnings":[]}}\n',
        OUT + "FAILURE/failure.ndjson": b'{"inputFile":"bad.dcm","exception":{"exceptionType":"ValidationException",'
        b'"message":"DICOM attribute TransferSyntaxUID does not exist"}}\n',
    }
    result = read_import_result(job_props(), Output(files))
    by_id = {s.image_set_id: s for s in result.image_sets}
    assert by_id[P1].is_primary is True and by_id[P1].version == 2 and by_id[P1].matched_instances == 2
    assert by_id[N1].is_primary is False and [s.image_set_id for s in result.non_primary] == [N1]
    assert result.failures[0].exception_type == "ValidationException" and result.warnings == 1
    assert result.summary == {"numberOfScannedFiles": 5}


@pytest.mark.parametrize("version", ["\u0661\u0662", "\u00b2", "12a", -3, 2.5])
def test_an_image_set_version_that_is_not_ascii_digits_is_ignored(version):
    """Arabic-Indic or superscript digits pass str.isdigit() but are no version: ignored, like any non-number."""
    files = {OUT + "job-output-manifest.json": manifest({"imageSetId": P1, "imageSetVersion": version})}
    (entry,) = read_import_result(job_props(), Output(files)).image_sets
    assert entry.image_set_id == P1 and entry.version is None


def test_missing_manifest_is_retryable_but_missing_ndjson_is_empty():
    with pytest.raises(ManifestNotReady):
        read_import_result(job_props(), Output({}))
    result = read_import_result(job_props(), Output({OUT + "job-output-manifest.json": manifest()}))
    assert result.image_sets == [] and result.failures == []


def result_with(*sets):
    r = ImportResult(JOB, DS, "COMPLETED", None, OUT)
    from hicopy.domain.import_output import ImportedImageSet

    r.image_sets = [ImportedImageSet(i, p) for i, p in sets]
    return r


def test_primaries_only_plan_nothing():
    assert plan_jobs(result_with((P1, True)), Imaging(), policy="consolidate") == []


def test_consolidate_merges_each_non_primary_into_the_primary_of_its_series():
    imaging = Imaging(series={N1: ["1.2.3"], N2: ["1.2.4"]}, primaries={"1.2.3": P1})
    jobs = plan_jobs(
        result_with((P1, True), (N1, False), (N2, None)),
        Imaging(primary={N2: False}, series=imaging.series, primaries=imaging.primaries),
        policy="consolidate",
        force=True,
        delete_after=True,
    )
    merge, promote = jobs
    assert merge.job == {
        "datastoreId": DS,
        "source": {"imageSetId": N1},
        "jobId": f"imp-{JOB}-{N1}",
        "destination": {"imageSetId": P1},
        "force": True,
    }
    assert merge.trigger["action"] == "merge" and merge.trigger["deleteSourceAfterCopy"] is True
    assert promote.job["promoteToPrimary"] is True and promote.trigger["action"] == "promote"
    for p in jobs:
        parse_job(p.job)  # planned jobs satisfy the public job contract


def test_multi_series_non_primary_is_split_and_never_deleted():
    jobs = plan_jobs(
        result_with((N1, False)),
        Imaging(series={N1: ["1.5", "1.6"]}, primaries={"1.5": P1, "1.6": P1}),
        policy="consolidate",
        delete_after=True,
    )
    assert [j.job["series"] for j in jobs] == [["1.5"], ["1.6"]]
    assert [j.job["jobId"][-3:] for j in jobs] == ["-s1", "-s2"]
    assert not any(j.trigger["deleteSourceAfterCopy"] for j in jobs)


def test_promote_policy():
    (job,) = plan_jobs(result_with((N1, False)), Imaging(), policy="promote")
    assert job.job["promoteToPrimary"] is True and "destination" not in job.job


def event(detail_type="Import Job Completed", **detail):
    return {
        "detail-type": detail_type,
        "source": "aws.medical-imaging",
        "detail": {"datastoreId": DS, "jobId": JOB, "jobStatus": "COMPLETED", "outputS3Uri": OUT, **detail},
    }


class Jobs:
    def __init__(self, status="COMPLETED"):
        self.status = status

    def get_import_job(self, ds, job_id):
        return job_props(self.status)


def run(
    ev,
    files,
    *,
    policy="consolidate",
    status="COMPLETED",
    marker=None,
    clock=None,
    wait=120.0,
    details=False,
    publisher=None,
    imaging=None,
):
    queue, pub, marker = FakeQueue(), publisher or FakePublisher(), marker or FakeImportMarker()
    imaging = imaging or Imaging(series={N1: ["1.2.3"]}, primaries={"1.2.3": P1})
    settings = PlannerSettings(
        allowed_datastores=frozenset({DS}), policy=policy, manifest_wait_seconds=wait, report_details=details
    )
    outcome = handle_import_event(
        ev,
        settings,
        jobs_api=Jobs(status),
        output=Output(files),
        imaging=imaging,
        queue=queue,
        publisher=pub,
        marker=marker,
        clock=clock or FakeClock(),
    )
    return outcome, queue, pub, marker


FILES = {
    OUT + "job-output-manifest.json": manifest(
        {"imageSetId": P1, "isPrimary": True}, {"imageSetId": N1, "isPrimary": False}
    ),
    OUT + "FAILURE/failure.ndjson": b'{"inputFile":"x.dcm","exception":{"exceptionType":"ValidationException",'
    b'"message":"bad"}}\n',
}


def test_completed_import_enqueues_jobs_reports_failures_and_marks_the_import():
    outcome, queue, pub, marker = run(event(), FILES)
    assert outcome.planned == [f"imp-{JOB}-{N1}"] and len(queue.messages) == 1
    body, attrs = queue.messages[0]
    assert json.loads(body)["destination"] == {"imageSetId": P1}
    assert json.loads(attrs["hicopyTrigger"])["importJobId"] == JOB
    assert [t for t, _ in pub.events] == [IMPORT_FAILURES, IMPORT_PLANNED]
    for detail_type, detail in pub.events:
        assert_valid_event(detail_type, detail)
    failures = pub.events[0][1]
    assert failures["failedFiles"] == 1 and failures["failuresByType"] == {"ValidationException": 1}
    assert failures["failureReportS3Uri"] == OUT + "FAILURE/failure.ndjson"
    assert "x.dcm" not in json.dumps(pub.events) and "bad" not in json.dumps(failures), "no names by default"
    again, queue2, pub2, _ = run(event(), FILES, marker=marker)
    assert again.duplicate and queue2.messages == [] and pub2.events == []


def test_with_report_details_the_failed_files_are_listed():
    _, _, pub, _ = run(event(), FILES, details=True)
    failures = pub.events[0][1]
    assert failures["failures"] == [{"inputFile": "x.dcm", "exceptionType": "ValidationException", "message": "bad"}]
    assert failures["failuresTruncated"] is False
    assert_valid_event(IMPORT_FAILURES, failures)


class FailingPublisher(FakePublisher):
    """Refuses the first ``failures`` events."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise EventPublishFailed(f"PutEvents {detail_type} not accepted")
        super().publish(detail_type, detail)


def test_a_failed_report_never_loses_the_plan_and_the_retry_only_reports():
    """The jobs are queued and recorded before any report; a refused report fails the invocation (its retry
    publishes the reports, plans nothing again), and the other report is still tried."""
    marker, pub = FakeImportMarker(), FailingPublisher(failures=1)
    with pytest.raises(EventPublishFailed):
        run(event(), FILES, marker=marker, publisher=pub)
    [mark] = marker.planned.values()
    assert mark.jobs == 1 and mark.job_ids == (f"imp-{JOB}-{N1}",) and not mark.reported
    assert [t for t, _ in pub.events] == [IMPORT_PLANNED], "the other report was still published"

    retry, queue, pub2, _ = run(event(), FILES, marker=marker)
    assert not retry.duplicate and queue.messages == [], "nothing planned or queued twice"
    assert [t for t, _ in pub2.events] == [IMPORT_FAILURES, IMPORT_PLANNED]
    assert pub2.events[1][1]["jobsPlanned"] == [f"imp-{JOB}-{N1}"]
    assert next(iter(marker.planned.values())).reported
    assert run(event(), FILES, marker=marker)[0].duplicate


def test_reports_fit_put_events_whatever_the_import():
    """50,000 failed files with 1 KB names, and 5,000 planned jobs: each report stays far below 256 KiB."""
    name = "dicom/DOE^JANE/" + "x" * 1000
    lines = [
        json.dumps({"inputFile": f"{name}{n}", "exception": {"exceptionType": f"E{n % 50}", "message": "m" * 900}})
        for n in range(50_000)
    ]
    non_primary = [f"{n:032x}" for n in range(5_000)]
    files = {
        OUT + "job-output-manifest.json": manifest(*({"imageSetId": i, "isPrimary": False} for i in non_primary)),
        OUT + "FAILURE/failure.ndjson": "\n".join(lines).encode(),
    }
    imaging = Imaging(series={i: ["1.2.3"] for i in non_primary}, primaries={"1.2.3": P1})
    for details in (False, True):
        outcome, queue, pub, _ = run(event(), files, details=details, imaging=imaging)
        assert len(outcome.planned) == len(queue.messages) == 5_000
        for detail_type, detail in pub.events:
            assert_valid_event(detail_type, detail)
            assert len(json.dumps(detail, separators=(",", ":"))) < 200 * 1024, detail_type
        failures, planned = (d for _, d in pub.events)
        assert failures["failedFiles"] == 50_000 and sum(failures["failuresByType"].values()) == 50_000
        assert len(failures["failuresByType"]) == 21 and failures["failuresByType"]["Other"] == 30 * 1_000
        assert (planned["jobsPlannedCount"], len(planned["jobsPlanned"]), planned["jobsPlannedTruncated"]) == (
            5_000,
            100,
            True,
        )
        if details:
            assert 0 < len(failures["failures"]) <= 100 and failures["failuresTruncated"] is True
            assert all(len(f["inputFile"]) <= 1024 for f in failures["failures"])


def test_late_manifest_is_awaited_with_growing_waits():
    clock = FakeClock()
    files: dict = {}

    class Late(Output):
        def read(self, uri):
            if len(clock.slept) >= 3:
                files.update(FILES)
            return super().read(uri)

    queue, pub = FakeQueue(), FakePublisher()
    settings = PlannerSettings(allowed_datastores=frozenset({DS}), policy="consolidate")
    outcome = handle_import_event(
        event(),
        settings,
        jobs_api=Jobs(),
        output=Late(files),
        imaging=Imaging(series={N1: ["1.2.3"]}, primaries={"1.2.3": P1}),
        queue=queue,
        publisher=pub,
        marker=FakeImportMarker(),
        clock=clock,
    )
    assert clock.slept == [2.0, 4.0, 8.0] and outcome.planned


def test_manifest_that_never_comes_raises_after_the_budget():
    clock = FakeClock()
    with pytest.raises(ManifestNotReady):
        run(event(), {}, clock=clock, wait=10)
    assert sum(clock.slept) == 10


def test_failed_import_publishes_its_failures_and_plans_nothing():
    _outcome, queue, pub, _ = run(event("Import Job Failed", jobStatus="FAILED"), {}, status="FAILED")
    assert queue.messages == [] and [t for t, _ in pub.events] == [IMPORT_FAILURES]
    assert pub.events[0][1]["jobStatus"] == "FAILED"
    assert_valid_event(IMPORT_FAILURES, pub.events[0][1])


def test_foreign_datastore_and_bad_events_are_refused():
    with pytest.raises(InvalidRequest):
        run(event(datastoreId="f" * 32), FILES)
    with pytest.raises(InvalidRequest):
        run({"detail-type": "Image Set Created", "detail": {}}, FILES)


class RecordingPlans:
    """A ``PlanRecordPort`` that notes, with each record, how many jobs were queued when it was written."""

    def __init__(self, queue):
        self.queue, self.plans, self.queued_before = queue, {}, {}

    def record(self, plan, now):
        self.plans[plan.job_id] = plan
        self.queued_before[plan.job_id] = len(self.queue.messages)

    def get(self, job_id):
        return self.plans.get(job_id)


def test_each_planned_job_is_recorded_before_it_is_queued():
    """The workflow deletes a source only for what the planner recorded here (never on the message's trigger)."""
    from hicopy.domain.ports import PlannedCopy

    queue, pub = FakeQueue(), FakePublisher()
    plans = RecordingPlans(queue)
    files = {
        OUT + "job-output-manifest.json": manifest(
            {"imageSetId": N1, "isPrimary": False, "imageSetVersion": "1"},
            {"imageSetId": N2, "isPrimary": False},  # no version in the output: asked with GetImageSet
        )
    }
    settings = PlannerSettings(allowed_datastores=frozenset({DS}), policy="consolidate", delete_after=True)
    outcome = handle_import_event(
        event(),
        settings,
        jobs_api=Jobs(),
        output=Output(files),
        imaging=Imaging(series={N1: ["1.2.3"], N2: ["1.5", "1.6"]}, primaries={"1.2.3": P1, "1.5": P1}),
        queue=queue,
        publisher=pub,
        marker=FakeImportMarker(),
        clock=FakeClock(),
        plans=plans,
    )
    assert plans.plans[f"imp-{JOB}-{N1}"] == PlannedCopy(
        job_id=f"imp-{JOB}-{N1}",
        datastore_id=DS,
        import_job_id=JOB,
        source_image_set_id=N1,
        source_version_id="1",
        destination_image_set_id=P1,
        whole_copy=True,
        delete_source=True,
    )
    split = [plans.plans[f"imp-{JOB}-{N2}-s{n}"] for n in (1, 2)]  # one job per Series: never deleted
    assert [(p.whole_copy, p.delete_source, p.destination_image_set_id) for p in split] == [
        (False, False, P1),
        (False, False, None),
    ]
    assert [plans.queued_before[j] for j in outcome.planned] == [0, 1, 2]  # each record before its message


# --- the promote policy follows the developer guide's path, or refuses a copy that would fail (issue #14) --------
def _document(patient_name, study_date, series_number, series="1.5"):
    return {
        "Patient": {"DICOM": {"PatientID": "P-1", "PatientName": patient_name}},
        "Study": {
            "DICOM": {"StudyInstanceUID": "1.2", "StudyDate": study_date},
            "Series": {series: {"DICOM": {"SeriesInstanceUID": series, "SeriesNumber": series_number}}},
        },
    }


def test_promote_refuses_a_set_that_conflicts_with_its_primary_and_names_the_attributes_only():
    imaging = Imaging(
        series={N1: ["1.5"], N2: ["1.6"]},
        primaries={"1.5": P1},
        documents={N1: _document("DOE^JANE", "20240101", "1 "), P1: _document("DOE^JOHN", "20240101", "1")},
    )
    result = result_with((N1, False), (N2, False))
    jobs = plan_jobs(result, imaging, policy="promote")
    assert [j.job["source"]["imageSetId"] for j in jobs] == [N2]  # N2's Series is in no primary: promoted
    detail = planned_detail(result, _mark(jobs), policy="promote")
    # Names only ("1 " vs "1": HealthImaging's padding is no conflict), never the values (PHI).
    assert detail["needsResolution"] == [
        {"imageSetId": N1, "primaryImageSetId": P1, "conflictingAttributes": ["Patient.PatientName"]}
    ]
    assert "DOE" not in json.dumps(detail)
    assert_valid_event(IMPORT_PLANNED, detail)


def test_a_promotable_import_has_nothing_to_resolve():
    result = result_with((N1, False))
    jobs = plan_jobs(result, Imaging(series={N1: ["1.5"]}), policy="promote")
    assert len(jobs) == 1 and planned_detail(result, _mark(jobs), policy="promote")["needsResolution"] == []


def test_conflicting_attributes_cover_the_three_levels_and_missing_ones():
    mine, theirs = _document("A", "20240101", "1"), _document("A", "20240102", "2")
    theirs["Patient"]["DICOM"]["PatientBirthDate"] = "19700101"
    assert conflicting_attributes(mine, theirs, "1.5") == [
        "Patient.PatientBirthDate",
        "Study.StudyDate",
        "Series.SeriesNumber",
    ]


def _mark(jobs):
    """The import marker the planner writes once it queued ``jobs`` (what ``Import Job Planned`` reports)."""
    from hicopy.domain.ports import ImportMark

    return ImportMark(status="COMPLETED", jobs=len(jobs), job_ids=tuple(j.job["jobId"] for j in jobs))
