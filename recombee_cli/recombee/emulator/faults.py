"""Injected failures: what the emulator may do wrong on purpose, and the seeded dice that decide."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any


def odd_answer(results: list[dict[str, Any]], kind: str) -> Any:
    """A Batch answer spoilt in one way; the middle result is the one spoilt."""
    middle = len(results) // 2
    spoilt: list[Any] = list(results)
    if kind == "not_a_list":
        return {"results": spoilt}
    if kind == "wrong_length":
        return spoilt[:-1]
    if not spoilt:
        return spoilt
    if kind == "string_code":
        spoilt[middle] = {**spoilt[middle], "code": str(spoilt[middle]["code"])}
    elif kind == "null_result":
        spoilt[middle] = None
    elif kind == "not_an_object":
        spoilt[middle] = [spoilt[middle]["code"], spoilt[middle]["json"]]
    return spoilt


# kind -> what the answer looks like
ODD_ANSWERS = {
    "string_code": 'a result\'s "code" is a string ("200")',
    "null_result": "a result is null",
    "not_a_list": "the answer is an object, not a list",
    "not_an_object": "a result is a list, not an object",
    "wrong_length": "one result fewer than requests",
}


@dataclass(frozen=True)
class Faults:
    """Injected failures; probabilities per HTTP call (``p_sub_5xx`` per sub-request).

    At most one of p_drop_before, p_500, p_503, p_429 hits a call (nothing is executed then);
    p_slow and p_drop act after execution. ``limit`` caps the total number of injected faults
    (e.g. ``Faults(p_503=1.0, limit=3)``: the first three calls fail, the rest succeed).
    """

    p_500: float = 0.0
    p_503: float = 0.0
    p_429: float = 0.0
    retry_after: float = 1.0        # Retry-After header value in seconds (fractions printed as is)
    p_slow: float = 0.0
    slow_seconds: float = 2.0
    p_drop: float = 0.0             # execute, then close the connection halfway through the reply
    p_drop_before: float = 0.0      # close the connection without executing or answering
    p_sub_5xx: float = 0.0          # per batch sub-request: 500 or 503, not executed
    p_sub_400: float = 0.0          # per batch sub-request: 400 (refused for good), not executed
    seed: int = 0
    limit: int | None = None
    batch_calls_only: bool = False  # the faults hit Batch calls only (reads, e.g. property lists, answer)
    p_trickle: float = 0.0          # execute, then send the reply one byte every trickle_seconds
    trickle_seconds: float = 2.0
    p_odd: float = 0.0              # a batch: execute, then answer 200 with a malformed answer...
    odd: str = "string_code"        # ...of this kind (ODD_ANSWERS)

    def __post_init__(self) -> None:
        probs = [self.p_500, self.p_503, self.p_429, self.p_slow, self.p_drop, self.p_drop_before,
                 self.p_sub_5xx, self.p_sub_400, self.p_trickle, self.p_odd]
        if any(not 0.0 <= p <= 1.0 for p in probs):
            raise ValueError("fault probabilities must be within [0, 1]")
        if self.odd not in ODD_ANSWERS:
            raise ValueError(f"odd must be one of {', '.join(ODD_ANSWERS)}")
        if self.p_drop_before + self.p_500 + self.p_503 + self.p_429 > 1.0:
            raise ValueError("p_drop_before + p_500 + p_503 + p_429 must not exceed 1")


class FaultDice:
    """The seeded RNG behind Faults; one lock so concurrent handlers draw consistently."""

    def __init__(self, faults: Faults):
        self.faults = faults
        self.rng = random.Random(faults.seed)
        self.lock = threading.Lock()
        self.injected = 0

    def _exhausted(self) -> bool:
        return self.faults.limit is not None and self.injected >= self.faults.limit

    def _hit(self, p: float) -> bool:
        if p <= 0.0 or self._exhausted():
            return False  # no draw: a fault kind that is off does not shift the sequence
        hit = self.rng.random() < p
        self.injected += hit
        return hit

    def before(self) -> str | None:
        """One of 'drop_before', '500', '503', '429' or None, from a single draw."""
        f = self.faults
        with self.lock:
            exclusive = (("drop_before", f.p_drop_before), ("500", f.p_500), ("503", f.p_503),
                         ("429", f.p_429))
            if self._exhausted() or not any(p for _, p in exclusive):
                return None
            u, edge = self.rng.random(), 0.0
            for kind, p in exclusive:
                edge += p
                if u < edge:
                    self.injected += 1
                    return kind
            return None

    def hit(self, p: float) -> bool:
        with self.lock:
            return self._hit(p)

    def sub_code(self) -> int | None:
        with self.lock:
            if self._hit(self.faults.p_sub_400):
                return 400
            if not self._hit(self.faults.p_sub_5xx):
                return None
            return self.rng.choice((500, 503))


def fault_body(code: int) -> dict[str, Any]:
    message = {500: "Internal server error", 503: "Service temporarily unavailable",
               429: "Too many requests", 400: "Refused (an injected fault)"}[code]
    return {"statusCode": code, "error": message}
