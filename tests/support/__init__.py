"""What the test suites share (imported by the suites, never collected as tests).

- ``environment``: one AWS environment for the handler suites (functional, security, fuzz): moto, the HealthImaging
  emulator, every handler's environment variables, a manual clock, the call recorder; ``invoke``/``task`` drive a
  handler;
- ``aws``: the resources the handlers use, created in moto, and reading back the queues;
- ``handlers``: the Lambda side: a context, a cold start (caches cleared), the environment variables, events;
- ``calls``: the AWS operations each handler performs, and the service limits moto does not enforce;
- ``fakes``: in-memory fakes of the domain ports (no boto3), for the unit tests;
- ``contracts``: validation against the committed JSON Schemas in ``schemas/``.
"""
