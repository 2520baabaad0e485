"""The outcomes every event ends in (docs/behaviour.md, "Outcomes"), and which of them make a run unsuccessful."""

from __future__ import annotations

from recombee_cli.errors import ConfigError

OUTCOMES = ("sent", "duplicate", "unmatched", "filtered", "invalid", "failed")
DEFAULT_FAIL_ON = ("invalid", "failed")
FAILABLE = ("invalid", "failed", "unmatched", "filtered")

# -- What an answer means, in one place -----------------------------------------------------------
# A request's answer is a code (and a message, the reason when it is not plain success): an HTTP
# status Recombee answered for it (200/201 stored, 409 already there, 4xx refused, 429/5xx not now),
# UNANSWERED while it waits, NO_ANSWER when its call got no usable answer (no answer at all, a
# malformed one, or the request was held back because an earlier request of its user was not
# delivered: its message says which), or a file sink's verdict (REFUSED, NOT_REPRESENTABLE:
# negative, so that no HTTP status can be taken for one). Every reader of codes (the sender, the
# journal, the outcome of an event, the summary's counts) asks the functions below.
UNANSWERED = 0
NO_ANSWER = 1
REFUSED = -1            # the request breaks the output format's rules: the event is `invalid`
NOT_REPRESENTABLE = -2  # the format has no way to express it: `filtered` unless something was written


def recorded_code(code: int, lenient: bool) -> int:
    """The code an HTTP answer is recorded as: a request whose kind takes a 404 as done (a
    delete or a merge: request_kinds.LENIENT) found nothing left to do, like a re-sent add's 409."""
    return 409 if code == 404 and lenient else code


def accepted(code: int) -> bool:
    """Recombee has it: stored (200, 201) or had it already (409; also a delete or merge answered
    404, recorded as 409: nothing was left to do)."""
    return code == 200 or code == 201 or code == 409


def retryable(code: int) -> bool:
    """An answer that may change if asked again (429, 5xx): the sender sends it again, in order."""
    return code == 429 or code >= 500


def transient(code: int) -> bool:
    """Not delivered, for a reason that may pass: no usable answer, 429 or 5xx after the retries.
    Such a request's file stays pending and the next run sends it again (docs/behaviour.md, "State,
    resume and cron"); any other refusal (a 4xx that no retry can change) is final."""
    return code == NO_ANSWER or retryable(code)


def refused_for_good(code: int) -> bool:
    """Recombee refused it with a 4xx that no retry changes (not 409, not 429): a final answer."""
    return code >= 400 and code != 409 and code != 429 and code < 500


def request_outcome(code: int) -> str:
    """The outcome an answered request is counted under (the report's `requests`)."""
    if code == 200 or code == 201:
        return "sent"
    if code == 409:
        return "duplicate"
    if code == REFUSED:
        return "invalid"
    if code == NOT_REPRESENTABLE:
        return "filtered"
    return "failed"


def failure_reason(code: int, message: str | None) -> str:
    """Why a request failed. A code below 100 is no HTTP status (no answer at all, or a malformed
    one): the message alone says what happened, never an invented status."""
    if code < 100:
        return message or "no answer from Recombee"
    return f"Recombee answered {code}: {message or 'no message'}"


def answered_outcome(codes: list[int], messages: list[str | None],
                     errors: list[tuple[str, str]] | None) -> tuple[str, str | None, int | None]:
    """An event's outcome from its requests' answers, with its reason and the HTTP status a
    rejects record keeps: invalid > failed > sent > duplicate. A mapping that failed makes the
    event invalid whatever was answered; a file sink's REFUSED makes it invalid; requests the
    format cannot express make it `filtered` only when nothing else of it was written or answered
    (they are counted per request either way)."""
    failed: tuple[int, str | None] | None = None
    refused = unrepresentable = None
    any_sent = any_answered = False
    for code, message in zip(codes, messages):
        if code == 200 or code == 201:
            any_sent = True
        elif code == REFUSED:
            refused = refused or message or "refused by the output format"
        elif code == NOT_REPRESENTABLE:
            unrepresentable = unrepresentable or message or "not representable in the output format"
            continue
        elif code != 409 and failed is None:
            failed = (code, message)
        any_answered = True
    if errors:
        return "invalid", mapping_error(*errors[0]), None
    if refused is not None:
        return "invalid", refused, None
    if failed is not None:
        return "failed", failure_reason(*failed), failed[0] if failed[0] >= 100 else None
    if unrepresentable is not None and not any_answered:
        return "filtered", unrepresentable, None
    return ("sent" if any_sent else "duplicate"), None, None


def parse_fail_on(value: str | list, where: str, *, file: str | None = None,
                  line: int | None = None) -> tuple[str, ...]:
    """`"invalid,failed"` (or a TOML list) -> the outcomes that make a run exit 1; `none` for none.

    A nightly job whose presets always meet a few page names Recombee refuses can say `failed`, so
    that `--quiet` stays quiet on invalid events and loud when Recombee refuses something."""
    if not isinstance(value, (str, list)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of outcome names", file=file, line=line)
    names = [n.strip() for n in (value.split(",") if isinstance(value, str) else value) if n.strip()]
    if names == ["none"]:
        return ()
    for name in names:
        if name not in FAILABLE:
            raise ConfigError(f"{where}: {name!r} is not an outcome that can fail a run "
                              f"(choose from {', '.join(FAILABLE)}, or none)", file=file, line=line)
    return tuple(dict.fromkeys(names))


def unmatched_name(event: dict) -> str:
    """The name an unmatched event is counted under: `track: <event>`, else its type."""
    kind = event.get("type")
    name = event.get("event")
    if kind == "track" or (kind is None and name is not None):
        return f"track: {name}"
    return str(kind) if kind is not None else "(no type)"


def mapping_error(mapping: str, reason: str) -> str:
    """The reason an event is invalid because one of its mappings could not build its requests."""
    return f"mapping {mapping!r}: {reason}"


def translated_outcome(event: dict, matched: list[str], errors: list[tuple[str, str]],
                       request_count: int) -> tuple[str, str | None]:
    """An event's outcome as translation alone decides it, before any sink answers: unmatched when
    no trigger matched; invalid when a matching mapping failed (even if another built requests, as
    in a replay) or nothing was built; else `sent` (what a replay would send)."""
    if not matched:
        return "unmatched", f"no trigger matched ({unmatched_name(event)})"
    if errors:
        return "invalid", mapping_error(*errors[0])
    if not request_count:
        return "invalid", "nothing to send"
    return "sent", None
