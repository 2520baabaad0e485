"""How one answered Batch call is read, request by request (the sender's half that needs no
thread, no client and no clock): what is final, with the code and message recorded, and what goes
again. What each code means is outcomes.py's; the order rules are the sender's (sender.py)."""

from __future__ import annotations

from typing import Any

from recombee_cli.outcomes import NO_ANSWER, accepted, recorded_code, retryable
from recombee_cli.recombee.items import Item
from recombee_cli.request_kinds import LENIENT


def message_of(result: dict[str, Any]) -> str:
    """Recombee's message in a `{code, json}` result."""
    body = result.get("json")
    return str(body.get("error", body)) if isinstance(body, dict) else str(body)


class BatchAnswer:
    """One answered call, sorted: `items`, `codes` and `messages` are final (in the Batch's order,
    then what gave up: a failure with its last answer, and the later requests of its users in the
    Batch as not delivered, whatever they were answered, so that the next run sends them again
    after it); `again` goes in the next call; `nothing_to_do` counts deletes and merges answered
    404 (recorded as 409: already applied, or never there)."""

    __slots__ = ("items", "codes", "messages", "again", "nothing_to_do")

    def __init__(self, todo: list[Item], results: list[dict[str, Any]], codes: list[int], *, attempt: int,
                 give_up: bool) -> None:
        """`give_up`: the retries are spent, so what would go again is final with its last answer."""
        self.items: list[Item] = []
        self.codes: list[int] = []
        self.messages: list[str | None] = []
        self.nothing_to_do = 0
        again: list[tuple[Item, dict[str, Any]]] = []
        blocked_users: set[str] = set()
        for item, result, code in zip(todo, results, codes):
            if retryable(code) or (blocked_users and not blocked_users.isdisjoint(item.users)):
                # A failed request, or a later request of a user whose earlier one failed:
                # both go again, in their order, so the user's history ends in order.
                again.append((item, result))
                blocked_users.update(item.users)
                continue
            self._final(item, result, code)
        if again and give_up:
            for item, result in again:   # what each last answered; a failure says it gave up
                code = result["code"]
                self.items.append(item)
                if retryable(code):
                    self.codes.append(code)
                    self.messages.append(f"gave up after {attempt} attempts: {message_of(result)}")
                else:   # applied after an earlier request of its user that was not: not final
                    # either, so that the next run sends it again after that one, in order
                    self.codes.append(NO_ANSWER)
                    self.messages.append("not delivered in order: an earlier request of its user in its "
                                         f"Batch gave up after {attempt} attempts")
            again = []
        self.again = [item for item, _ in again]

    def _final(self, item: Item, result: dict[str, Any], code: int) -> None:
        recorded = recorded_code(code, bool(item.flags & LENIENT))
        self.nothing_to_do += recorded != code
        self.items.append(item)
        self.codes.append(recorded)
        self.messages.append(None if accepted(recorded) else message_of(result))
