"""In-process AWS HealthImaging (``medical-imaging``) emulator for tests and the offline runtime.

Unmodified ``boto3.client("medical-imaging")`` calls are answered through a botocore ``before-send`` hook (inside or
outside moto's ``mock_aws``); routes, wire format, status codes and validation come from botocore's service model.

Public API::

    from offline.clock import ScaledClock
    from offline.healthimaging import HealthImagingEmulator, SeededImageSet, SeedSpec, install

    emu = HealthImagingEmulator(clock=ScaledClock(0.01), account="123456789012", region="us-east-1",
                                copy_duration=2.0, event_sink=None,   # sink(detail_type, detail, resources)
                                throttling=True, max_frames_per_copy=1000, max_concurrent_copies=100,
                                frame_quota_error="ValidationException", event_id_key="imageSetId",
                                stale_version_error="ResourceNotFoundException", pad_numbers=True,
                                background=True, seed=None)
    ds = emu.create_datastore("name", datastore_id=None)               # ACTIVE, 32-char [0-9a-z] id
    s: SeededImageSet = emu.seed_image_set(ds, series=1, instances_per_series=1, frames_per_instance=1,
                                           patient_id=None, study_uid=None, is_primary=True, series_uids=None)
    emu.seed_image_set_from_metadata(ds, document, is_primary=True, image_set_id=None)  # a real metadata document
    emu.inject_fault("CopyImageSet", "ThrottlingException", times=2)  # any error the op's model lists
    emu.fail_next_copy("INVALID_REQUEST:  ...")                      # next accepted copy ends COPY_FAILED
    emu.set_copy_duration(5.0) / emu.copy_durations.append(1.0)       # or a callable(src_id, dst_id) -> seconds
    emu.lock(ds, image_set_id, seconds, bump_version=False)          # a concurrent writer: writes -> Conflict,
                                                                     # then (bump_version) held versions are stale
    emu.calls / emu.calls_to(op) / emu.events / emu.effect_errors
    emu.image_set(ds, id, version=None) / emu.versions(ds, id) / emu.metadata(ds, id, version=None)
    emu.simulate_import(ds, input_s3_uri=..., output_s3_uri=..., image_sets=[SeedSpec(...) | metadata | seeded],
                        failures=[(input_file, exception_type, message)], warnings=[(sop_or_file, type, message)],
                        write_manifest=None, manifest_delay=0.0, job_status="COMPLETED", message=None) -> job id
    emu.next_import([...])           # what the next StartDICOMImportJob imports
    emu.pending()                    # how many timed actions are still due
    emu.tick()                       # run everything due now (copy completions, lock expiries, delayed manifests)
    with install(emu): ...           # or emu.install() / emu.uninstall()

Operations: CreateDatastore, GetDatastore, ListDatastores, DeleteDatastore, CopyImageSet, GetImageSet,
GetImageSetMetadata, ListImageSetVersions, SearchImageSets, DeleteImageSet, UpdateImageSetMetadata (minimal),
StartDICOMImportJob, GetDICOMImportJob, ListDICOMImportJobs, Tag/Untag/ListTagsForResource (data stores).
Other model operations (GetImageFrame) answer ``ValidationException``; nothing reaches the network.

Time: every duration is in seconds of the injected ``hicopy.clock.Clock`` (default: ``hicopy.clock.get_clock()``
at construction, so the emulator follows a clock the runtime installed with ``set_clock``). Timed work (copy
completion, lock expiry, delete/update completion, delayed manifests) runs lazily at the start of every API call and
``tick()``, and, with ``background=True``, on a daemon ticker thread that runs only while timed work is pending
(polling the clock every ``tick_interval`` real seconds), so events go out even when nobody polls.
``close()``/``uninstall()`` stop it.

Events go to ``event_sink`` synchronously, in order, on the thread that caused them (or the ticker), outside the
emulator's lock; a sink may call the emulator again. Sink and S3-writer exceptions are logged and kept in
``effect_errors``. Image set events can be delivered the way EventBridge delivers HealthImaging's, best effort
(``offline.healthimaging.delivery``): ``event_delivery_delay`` clock seconds late (on a thread of their own) and
``event_drop_fraction`` of them never (``events()`` still lists them, ``delivered=False``).

Metadata documents have the real layout and value types (``offline.healthimaging.dicom``; real ones are in
``tests/data/healthimaging``): ``StoredTransferSyntaxUID``, ``ChecksumType``, ``DICOMVRs`` per instance, IS elements
(``SeriesNumber``, ``InstanceNumber``, ``NumberOfFrames``) as strings padded to an even length (``"1 "``;
``pad_numbers=False``: unpadded, as in the 2023 document). ``seed_image_set_from_metadata`` takes a document as
GetImageSetMetadata returns it (object, JSON text or gzip blob) and every operation works on it.

A stale ``latestVersionId`` (CopyImageSet source or destination, UpdateImageSetMetadata) answers
``ResourceNotFoundException`` (404) "Requested version(s) of ImageSet(s) is not the latest." (what comic/
grand-challenge.org's production code expects from UpdateImageSetMetadata; unverified for CopyImageSet), or with
``stale_version_error="ConflictException"`` a 409 (this emulator's earlier guess). LOCKED image sets answer 409.

Emulator choices where the AWS docs are silent:
- a new image set created by CopyImageSet starts at version ``first_copy_version`` (default 1; the docs show 1 and 2);
  it is non-primary unless ``promoteToPrimary``; no ``Image Set Created`` event is emitted for it;
- after a successful copy, the source's latest version shows ``COPIED`` and gets its own ``Image Set Copied`` event
  (``source_copy_events=False`` to switch off); after a failed copy the source returns to its previous status;
- ``promoteToPrimary`` without destination: if the Study/Series already has a primary image set, the instances merge
  into it (a new version of that primary; consistency rules and ``force`` apply as for any destination), else a new
  primary image set; ``promoteToPrimary`` with a destination, or from a source that is already primary ->
  ValidationException;
- a consistency check compares every element present (non-null) in both sets at Patient and Study level, and each
  copied series must exist in a destination that has series, with agreeing series-level elements;
  messages ``INVALID_REQUEST:  <Patient|Study|Series> of SourceImageSet and DestinationImageSet don't match.``;
- with ``force``, the destination keeps its Patient/Study elements and the elements of its existing series; copied
  series that are new to it are added with the source's series elements; ``overrides.forced`` is set whenever
  ``force`` was given; ``force`` does not allow SOP Instance UID collisions;
- ``copiableAttributes``: invalid JSON or not an object -> ValidationException at call time; an unknown Series key,
  an unknown SOP Instance, an empty ``Instances`` selection, a missing ``Study.Series`` or a SchemaVersion other than
  ``"1.1"``/``1.1`` -> COPY_FAILED with a message;
- the per-copy ImageFrames quota counts the frames of every copied instance (whole-set copies included) and answers
  ``frame_quota_error`` (default ValidationException: retrying cannot help); the concurrent-copy quota counts copies
  still LOCKED in the data store -> ServiceQuotaExceededException;
- throttling: a token bucket per operation for the account, starting full, on the emulator's clock; faults injected
  with ``inject_fault`` come before throttling and do not consume tokens; operations without a published limit are
  not throttled;
- DeleteImageSet answers LOCKED/DELETING and completes after ``delete_duration`` (default 0: on the next call); a
  deleted image set still answers GetImageSet/ListImageSetVersions with state DELETED, other operations -> 404;
- UpdateImageSetMetadata: updatable/removable attributes are merged into / removed from the hierarchy, or
  ``revertToVersionId``; Patient- or Series-level changes of a primary image set -> ValidationException; the new
  version is LOCKED/UPDATING until ``update_duration`` has passed;
- CreateDatastore (API) answers CREATING and is ACTIVE from the next call; ``create_datastore()`` is ACTIVE at once;
- ListImageSetVersions lists newest first; SearchImageSets without ``sort`` lists the most recently updated first
  and never returns deleted image sets;
- imports: see ``offline.healthimaging.importer``; ``simulate_import`` emits no ``Import Job Submitted``/``In
  Progress``, StartDICOMImportJob emits ``Import Job Submitted`` and runs the job ``import_duration`` later;
- the emulator answers clients of any region with its own ``region`` in ARNs.

Not modelled: GetImageFrame and pixel data; data store events; ``Import Job In Progress``; the statuses
``UPDATING_FOR_STUDY_CONSISTENCY``/``IMPORTING``/``IMPORTED``/``IMPORT_FAILED``; ``includeStudyImageSets``; the
concurrent Update/Delete/import quotas, the 50 MB metadata and 10 KB update-payload quotas; KMS keys and Lambda
authorizers (stored, not enforced); ``lastAccessedAt``/``storageTier``; IAM (every caller is allowed).
Clients created before ``install()`` keep their own handler copy and are NOT routed (create clients afterwards).
"""

from offline.healthimaging.dicom import copiable_attributes, valid_uid
from offline.healthimaging.emulator import (
    CallRecord,
    EmittedEvent,
    EmulatorBug,
    EventSink,
    HealthImagingEmulator,
    install,
)
from offline.healthimaging.importer import ImportPlan
from offline.healthimaging.model import validate_response
from offline.healthimaging.seeding import SeededImageSet, SeedSpec
from offline.healthimaging.throttling import DEFAULT_THROTTLES

__all__ = [
    "DEFAULT_THROTTLES",
    "CallRecord",
    "EmittedEvent",
    "EmulatorBug",
    "EventSink",
    "HealthImagingEmulator",
    "ImportPlan",
    "SeedSpec",
    "SeededImageSet",
    "copiable_attributes",
    "install",
    "valid_uid",
    "validate_response",
]
