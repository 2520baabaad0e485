"""Typed errors of the core. The CLI turns each into a one-line message and an exit code."""

from __future__ import annotations


class RecombeeCliError(Exception):
    """Base class of every error the core raises on purpose."""


class ConfigError(RecombeeCliError):
    """The configuration cannot be used (exit 2). Carries where, so the message can name it."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 mapping: str | None = None, field: str | None = None):
        self.message = message
        self.file = file
        self.line = line
        self.mapping = mapping
        self.field = field
        super().__init__(self.describe())

    def describe(self) -> str:
        where = []
        if self.file:
            where.append(f"{self.file}:{self.line}" if self.line else self.file)
        if self.mapping:
            where.append(f"mapping {self.mapping!r}")
        if self.field:
            where.append(f"field {self.field!r}")
        return (", ".join(where) + ": " if where else "") + self.message


class TriggerSyntaxError(RecombeeCliError):
    """A trigger Segment's runtime cannot parse (Segment would never match it)."""


class MappingError(RecombeeCliError):
    """A mapping-kit directive failed on a payload, or a mapping failed validation.

    `errors` holds every message (validation aggregates several); str() joins them.
    """

    def __init__(self, message: str | list[str]):
        self.errors = [message] if isinstance(message, str) else list(message)
        super().__init__("; ".join(self.errors))


class LiquidMissing(MappingError):
    """A mapping uses @liquid where python-liquid (the `liquid` extra) is not installed."""

    MESSAGE = ("@liquid needs python-liquid, which this install does not have: "
               "pip install 'recombee-cli[liquid]'")

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)


class PayloadInvalid(RecombeeCliError):
    """An event cannot become a valid request (missing required field, bad ID, bad timestamp...)."""


class AuthenticationError(RecombeeCliError):
    """Recombee refused our credentials (401/403): stop at once (exit 3)."""


class ServiceError(RecombeeCliError):
    """Recombee failed in a way retries did not fix and that is not per-request (exit 3)."""


class InputError(RecombeeCliError):
    """An input argument names nothing readable (usage error, exit 2)."""


class WorkerError(RecombeeCliError):
    """A translator worker process (--workers) died or failed: the run stops (exit 3)."""


class WorkerStartError(RecombeeCliError):
    """Translator worker processes cannot be started on this system (--workers needs the 'fork'
    start method: Linux, macOS): a usage error (exit 2)."""


class ClusterError(WorkerError):
    """The cluster cannot be reached, or a file's task failed for good (exit 3)."""


class ClusterUsageError(RecombeeCliError):
    """A --dask value that means nothing, or the extra is not installed (exit 2)."""


class StateLocked(RecombeeCliError):
    """Another run holds the state file."""


class StateError(RecombeeCliError):
    """The state file cannot be used (folder, lock, unreadable, read-only, newer schema...): exit 2."""


class ReprocessRefused(StateError):
    """--reprocess of files whose merges or user deletions Recombee already applied (a usage error:
    nothing was sent)."""


class StateWriteError(StateError):
    """Writing progress failed in the middle of a run (disk full, I/O error): exit 3."""


class ExportError(RecombeeCliError):
    """The output folder of a file export cannot be used (not empty, not a folder): a usage error."""


class ExportWriteError(ExportError):
    """Writing the files of an export failed (disk full, permissions): the export is abandoned."""


class PicturesError(RecombeeCliError):
    """A page cannot be drawn: the pictures extra is not installed, or what `report` was given is
    not a report or a state file (a usage error, exit 2)."""


class OutputError(RecombeeCliError):
    """Writing the output failed (stdout on a full disk, a closed pipe's sibling errors): exit 3."""


class UnreachableError(ServiceError):
    """Batch calls kept getting no answer at all (connection refused, DNS, TLS, timeouts): the
    sender's circuit breaker stopped the run (exit 3). The message is the true transport reason."""
