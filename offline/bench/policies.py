"""The policies the benchmark compares, as transformations of the deployed state machine definition.

``shipped`` is the definition the CDK app synthesizes, unchanged, with HealthImaging's copy events delivered; the
events dimension runs it with 10 % (``events-10-lost``) and 100 % (``events-lost``) of the emulator's image set
events dropped (polling alone). ``naive`` is derived from it in code (see
``naive_definition``): same Lambda functions, same error names, no pacing, Step Functions' default retries on
Submit and a fixed 30 s status poll. Both are registered in the same moto account, so they run the same handlers
against the same emulated service.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Step Functions' documented Retry defaults (IntervalSeconds 1, BackoffRate 2.0, MaxAttempts 3, no MaxDelaySeconds,
# no jitter).
SFN_DEFAULT_RETRY: dict[str, Any] = {"IntervalSeconds": 1, "BackoffRate": 2.0, "MaxAttempts": 3}
NAIVE_POLL_SECONDS = 30
PACING_STATES = ("Pace", "NeedsPacing?", "PaceWait")
EVENT_WAIT_STATE = "WaitForCopyEvent"  # AwaitCopy's callback wait between status checks (infra.state_machine)


class DefinitionShapeError(ValueError):
    """The deployed definition does not have the states the transformation expects (the workflow changed)."""


def _state(states: dict[str, Any], name: str) -> dict[str, Any]:
    try:
        state: dict[str, Any] = states[name]
    except KeyError as exc:
        raise DefinitionShapeError(f"the state machine has no state {name!r} (states: {sorted(states)})") from exc
    return state


def _redirect(states: dict[str, Any], old: set[str], new: str) -> None:
    """Point every transition (Next, Default, Choices[].Next, Catch[].Next) that targets a state in ``old`` at
    ``new``."""
    for state in states.values():
        if state.get("Next") in old:
            state["Next"] = new
        if state.get("Default") in old:
            state["Default"] = new
        for rule in state.get("Choices", []):
            if rule.get("Next") in old:
                rule["Next"] = new
        for catcher in state.get("Catch", []):
            if catcher.get("Next") in old:
                catcher["Next"] = new


def naive_definition(definition: dict[str, Any], *, longest_copy_seconds: float) -> dict[str, Any]:
    """The naive policy, derived from the shipped definition (which is not modified):

    1. **No pacing**: the states ``Pace``, ``NeedsPacing?`` and ``PaceWait`` are removed; every transition into
       ``Pace`` (from ``Prepare``, and from ``MoreChunks?`` for the next chunk) goes to what followed the pacing
       (``NeedsPacing?``'s ``Default``: ``Submit``, or ``CopyOrDelete?`` when delete-after is configured).
    2. **Default retries on Submit**: each of Submit's retriers keeps its ``ErrorEquals`` and gets Step Functions'
       defaults instead of its tuning: ``IntervalSeconds`` 1, ``BackoffRate`` 2.0, ``MaxAttempts`` 3, no
       ``MaxDelaySeconds``, no ``JitterStrategy``. A Submit ``Catch`` that leads back to ``Pace`` (``SlotMissed``:
       a call that missed its turn takes a new slot) is removed and its errors join the first retrier.
    3. **Fixed 30 s polling**: AwaitCopy's callback wait ``WaitForCopyEvent`` (cut short by HealthImaging's copy
       event) becomes a plain ``Wait`` of 30 s; the budget stays AwaitCopy's (its ``POLL_MAX_ATTEMPTS`` checks,
       hours at 30 s; ``longest_copy_seconds`` is no longer needed for it).

    Everything else (Lambda ARNs, payloads, the other retriers, catches, publishing) is unchanged.
    """
    out = copy.deepcopy(definition)
    states: dict[str, Any] = out["States"]
    needs_pacing = _state(states, "NeedsPacing?")
    for name in PACING_STATES:
        _state(states, name)
    after_pacing = needs_pacing.get("Default")
    if not isinstance(after_pacing, str) or after_pacing in PACING_STATES:
        raise DefinitionShapeError(f"NeedsPacing? has no usable Default (got {after_pacing!r})")
    for name in PACING_STATES:
        del states[name]
    submit = _state(states, "Submit")
    # A catcher that sends an error back to the pacing (e.g. a throttled Submit re-paced) is pacing policy too: its
    # errors are retried like the others instead (without it they would loop Submit -> Submit without a bound).
    repaced = [e for c in submit.get("Catch", []) if c.get("Next") in PACING_STATES for e in c["ErrorEquals"]]
    submit["Catch"] = [c for c in submit.get("Catch", []) if c.get("Next") not in PACING_STATES]
    _redirect(states, set(PACING_STATES), after_pacing)
    if out.get("StartAt") in PACING_STATES:
        out["StartAt"] = after_pacing

    retriers = [list(retrier["ErrorEquals"]) for retrier in submit.get("Retry", [])]
    retried = {e for errors in retriers for e in errors}
    missing = [e for e in repaced if e not in retried]
    if missing:
        retriers = [[*retriers[0], *missing], *retriers[1:]] if retriers else [missing]
    submit["Retry"] = [{"ErrorEquals": errors, **SFN_DEFAULT_RETRY} for errors in retriers]

    wait = _state(states, EVENT_WAIT_STATE)
    states[EVENT_WAIT_STATE] = {"Type": "Wait", "Seconds": NAIVE_POLL_SECONDS, "Next": wait["Next"]}
    _check_closed(out)
    return out


def _check_closed(definition: dict[str, Any]) -> None:
    """Every transition targets an existing state."""
    states = definition["States"]
    targets = [definition["StartAt"]]
    for state in states.values():
        targets += [state.get("Next"), state.get("Default")]
        targets += [r.get("Next") for r in state.get("Choices", [])]
        targets += [c.get("Next") for c in state.get("Catch", [])]
    missing = sorted({t for t in targets if t is not None and t not in states})
    if missing:
        raise DefinitionShapeError(f"transitions to missing states: {missing}")


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    # None: the deployed definition as is; else a function of (deployed definition, longest copy seconds).
    transform: Callable[[dict[str, Any], float], dict[str, Any]] | None = None
    # The fraction of the emulator's image set events (Image Set Copied, ...) that is never delivered.
    event_drop_fraction: float = 0.0


SHIPPED = Policy(
    "shipped",
    "account-wide GCRA slots before CopyImageSet and a turn right before each call; tuned retries with full "
    "jitter; backoff polling from the config",
)
NAIVE = Policy(
    "naive",
    "no pacing; Step Functions default retries on Submit (1 s x2, 3 attempts, no jitter); fixed 30 s polling",
    lambda definition, longest: naive_definition(definition, longest_copy_seconds=longest),
)
EVENTS_10_LOST = Policy(
    "events-10-lost",
    "shipped, 10 % of HealthImaging's copy events lost (those waits end by their timeout)",
    event_drop_fraction=0.1,
)
EVENTS_LOST = Policy(
    "events-lost",
    "shipped, every HealthImaging copy event lost: backoff polling alone",
    event_drop_fraction=1.0,
)
POLICIES: dict[str, Policy] = {p.name: p for p in (SHIPPED, EVENTS_10_LOST, EVENTS_LOST, NAIVE)}
DEFAULT_POLICIES = ("shipped", "events-10-lost", "events-lost", "naive")
