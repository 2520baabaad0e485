"""The outcomes every event ends in (docs/behaviour.md, "Outcomes"), and which of them make a run unsuccessful."""

from __future__ import annotations

from recombee_cli.errors import ConfigError

OUTCOMES = ("sent", "duplicate", "unmatched", "filtered", "invalid", "failed")
DEFAULT_FAIL_ON = ("invalid", "failed")
FAILABLE = ("invalid", "failed", "unmatched", "filtered")

# How a request's answer is read, in one place. A code is an HTTP status Recombee answered for the
# request (200/201 stored, 409 already there, 4xx refused, 429/5xx not now), 0 while unanswered,
# NO_ANSWER when its call got no usable answer (no answer at all, a malformed one, or the request
# was held back because an earlier request of its user was not delivered: its message says which),
# or a file sink's negative verdict (sinks.protocol.REFUSED, NOT_REPRESENTABLE).
NO_ANSWER = 1


def accepted(code: int) -> bool:
    """Recombee has it: stored (200, 201) or had it already (409; also a delete or merge answered
    404, which the sender records as 409: nothing was left to do)."""
    return code == 200 or code == 201 or code == 409


def transient(code: int) -> bool:
    """Not delivered, for a reason that may pass: no usable answer, 429 or 5xx after the retries.
    Such a request's file stays pending and the next run sends it again (docs/behaviour.md, "State,
    resume and cron"); any other refusal (a 4xx that no retry can change) is final."""
    return code == NO_ANSWER or code == 429 or code >= 500


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
