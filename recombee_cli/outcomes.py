"""The outcomes every event ends in (SPEC §3), and which of them make a run unsuccessful."""

from __future__ import annotations

from recombee_cli.errors import ConfigError

OUTCOMES = ("sent", "duplicate", "unmatched", "filtered", "invalid", "failed")
DEFAULT_FAIL_ON = ("invalid", "failed")
FAILABLE = ("invalid", "failed", "unmatched", "filtered")


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
