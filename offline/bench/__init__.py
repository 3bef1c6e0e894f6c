"""Throughput benchmark: the shipped copy policy against a naive one, on the embedded local runtime.

``python -m offline.bench`` (``make bench``) runs, for each backlog (1, 50 and 500 jobs by default; ``--quick`` for
1, 10 and 40) and each policy, one run on a fresh ``LocalRuntime`` (fresh moto account, fresh HealthImaging emulator
and token buckets), sequentially, at ``--scale`` real seconds per virtual second. It prints a table, and writes
``bench-results/results.md``, ``results.json`` and ``throughput.png`` (completed copies over virtual time, largest
backlog); ``--update-docs`` also copies the table and the chart to ``docs/``.

Policies (``offline.bench.policies``), both running the same synthesized template, Lambda code and emulator:

- ``shipped``: the deployed state machine as synthesized: Prepare -> Pace (GCRA slot in DynamoDB, shared by every
  execution) -> NeedsPacing? -> PaceWait (ends 2-3 s before the slot) -> Submit (reads, sleeps to the slot, takes
  the account's turn, calls CopyImageSet) -> AwaitCopy (CopyStillInProgress retried with exponential backoff and
  full jitter) -> MoreChunks? -> PublishResult.
- ``naive``: the same definition, loaded from moto and transformed in code, registered as a second state machine
  (same role, same Lambda ARNs): Pace, NeedsPacing? and PaceWait removed (Prepare -> Submit, next chunk ->
  Submit); Submit's retriers replaced by Step Functions' defaults (IntervalSeconds 1, BackoffRate 2.0,
  MaxAttempts 3, no jitter) for the same error names; AwaitCopy's CopyStillInProgress retrier fixed at 30 s
  (IntervalSeconds 30, BackoffRate 1.0, no jitter, MaxAttempts ceil(900 / 30) + 2 = 32). See
  ``policies.naive_definition``.

Workload (``offline.bench.workload``): job ``i`` of a backlog copies its own seeded image set (one series, two
single-frame instances) to a new image set: one CopyImageSet per job. The emulator's copy duration is drawn per job
from a lognormal distribution, median 60 s, sigma 0.6, clipped to [10 s, 900 s], seeded by ``--seed``; both policies
get the same jobs and durations. Executions are started directly on the state machine with the input the job-queue
consumer would give them (``hicopy.domain.intake.accept(...).state.dump()``), all at once. Before the backlog, one
warm-up job runs through the policy's state machine so that every function is imported (a cold start is 0.3-1 s of
real CPU, tens of virtual seconds at scaled time), then the emulator's token buckets are reset.

Figures (``offline.bench.metrics``, virtual seconds): the sustained rate (accepted CopyImageSet calls per hour
between the first and last accepted call) and copies/hour over the span from the first CopyImageSet call to the
last completion event, both against the quota (rate x 3600); CopyImageSet calls per successful copy (every call the
emulator received, throttled ones included); jobs failed with reasons; AwaitCopy status checks and Step Functions
state transitions (states entered + retries, as billed) per successful copy; completion lag from the emulator's end
of a copy (accepted call + duration) to the terminal event's ``completedAt``, p50/p95/max. Diagnostics: the slots
missed (``SlotMissed``), how late each first call came after its slot (and when its Submit started, relative to
the slot).

Fidelity: the local runtime runs handler calls one at a time in one process (a handler that sleeps lets the others
run). At scaled time, the real CPU time of handlers (~25 ms a call) and their queueing become virtual seconds
(x 1 / scale): at 0.1 the runtime's one core is busy more than half of the time on a 500-job backlog and its
queueing, not the policy, makes calls late; the default scale, 0.25, keeps it under a third. A backlog started at
once still makes every execution's Prepare and Pace queue up (the *start-up burst*). The diagnostics table shows
how late calls came; read the results with that in mind (see docs/bench-analysis.md).

Targets, checked at each policy's largest backlog of 500 jobs or more (``metrics.targets``). Issue #6, shipped
policy: sustained rate (accepted CopyImageSet calls per hour between the first and last one) at least 90 % of the
quota, at most 1.05 CopyImageSet calls per copy, no job failed. Issue #15, per events mode (``shipped``: delivered,
``events-10-lost``, ``events-lost``): at least 95 % of the quota, at most 1.01 calls per copy, no job failed; events
delivered: completion lag p95 at most 2 s and at most 1.5 status checks per copy; 10 % lost: lag p95 no worse than
all lost (polling alone). The command exits 1 when one is missed.
"""
