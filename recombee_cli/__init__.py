"""recombee-cli: replay Segment event exports into Recombee as Segment's destination would.

The Python API, for notebooks and Spark/Dask jobs:

    >>> from recombee_cli import compile_trigger, resolve_mapping, translate_event
    >>> compile_trigger('type = "track" and event = "Product Viewed"').matches(event)
    >>> resolve_mapping({"@path": "$.properties.sku"}, event)
    >>> translate_event(event)                 # the requests Segment's presets would send
    >>> translate_event(event, "mappings.toml")

A whole replay, sent (the token from RECOMBEE_PRIVATE_TOKEN):

    >>> sender = make_sender("shop-prod", region="us-west")
    >>> session = ReplaySession(load_translator(), sender, dry_run=False, state_path="shop.sqlite")
    >>> session.run(expand_inputs(["exports/"])).to_dict()
"""

from __future__ import annotations

__version__ = "0.1.0"

# Before any submodule is imported: the compiled modules, where the install built them, unless
# RECOMBEE_CLI_PURE=1 asks for the pure-Python build or a module's source changed since (build.py).
from recombee_cli import build as _build  # noqa: E402

_build.install()

from recombee_cli.errors import ConfigError, MappingError, PayloadInvalid, RecombeeCliError, TriggerSyntaxError  # noqa: E402

__all__ = [
    "__version__", "compile_trigger", "resolve_mapping", "translate_event", "load_translator",
    "DaskSession", "ReplaySession", "ExportSession", "make_sender", "expand_inputs",
    "ConfigError", "MappingError", "PayloadInvalid", "RecombeeCliError", "TriggerSyntaxError",
]


def __getattr__(name: str):
    """The Python API's heavier names, imported when first used: `DaskSession` (dask is an extra),
    `ReplaySession`, `ExportSession`, `make_sender` (httpx) and `expand_inputs`."""
    if name == "DaskSession":
        from recombee_cli.pipeline.cluster import DaskSession

        return DaskSession
    if name == "ReplaySession":   # the library's replay: what the CLI, a notebook or a job drives
        from recombee_cli.pipeline.session import ReplaySession

        return ReplaySession
    if name == "ExportSession":   # the library's export: the same run into files (sinks.files)
        from recombee_cli.pipeline.session import ExportSession

        return ExportSession
    if name == "make_sender":   # the sender a ReplaySession sends with (httpx loads only now)
        from recombee_cli.pipeline.connect import make_sender

        return make_sender
    if name == "expand_inputs":   # files, folders, globs, `-`, s3://... -> the sources a session reads
        from recombee_cli.sources.reader import expand_inputs

        return expand_inputs
    raise AttributeError(f"module 'recombee_cli' has no attribute {name!r}")


def compile_trigger(text: str):
    """Compile a Segment subscription trigger; `.matches(event)` tests an event. Raises
    TriggerSyntaxError where Segment cannot parse it."""
    from recombee_cli.segment.triggers import compile_trigger as _compile

    return _compile(text)


def resolve_mapping(mapping, payload: dict):
    """Resolve a mapping-kit value (directives such as @path, @if, @template) against a payload,
    as plain JSON-like values: what Segment's runtime would serialise. A value that resolves to
    nothing at the top (JavaScript's undefined) is returned as `recombee_cli.segment.jsvalues.UNDEFINED`;
    inside objects it is left out and inside arrays it is None, as JSON.stringify writes them.
    Raises MappingError for invalid mappings."""
    from recombee_cli.segment.jsvalues import UNDEFINED
    from recombee_cli.segment.mappingkit import resolve

    value = resolve(mapping, payload)
    return value if value is UNDEFINED else _as_json(value, UNDEFINED)


def _as_json(value, undefined):
    if isinstance(value, list):
        return [None if item is undefined else _as_json(item, undefined) for item in value]
    if isinstance(value, dict):
        return {k: _as_json(v, undefined) for k, v in value.items() if v is not undefined}
    return value


_translators: dict = {}


def load_translator(config_path: str | None = None):
    """A Translator for a config file (None = Segment's 14 presets), compiled once per version of
    the file: a notebook that edits the TOML gets the new mappings on its next call (the cache is
    keyed by path, size and modification time)."""
    import os

    from recombee_cli.mapping.compile import compile_config
    from recombee_cli.mapping.config import load_config
    from recombee_cli.mapping.translate import Translator

    key: str | tuple[str, int, int] | None = config_path
    if config_path is not None:
        try:
            st = os.stat(config_path)
            key = (os.path.realpath(config_path), st.st_size, st.st_mtime_ns)
        except OSError:
            key = config_path   # load_config says why it cannot be read
    if key not in _translators:
        if config_path is not None:   # an older version of this file: drop it
            real = os.path.realpath(config_path)
            for old in [k for k in _translators if isinstance(k, tuple) and k[0] == real]:
                del _translators[old]
        _translators[key] = Translator(compile_config(load_config(config_path)))
    return _translators[key]


def translate_event(event: dict, config_path: str | None = None) -> list[dict]:
    """The Recombee Batch request objects an event becomes, by the rules a replay follows
    (`Translator.apply`). Raises PayloadInvalid (with the reason) when a matching mapping cannot
    build a valid request; returns [] when no trigger matches."""
    result = load_translator(config_path).translate(event)
    if result.errors:
        name, reason = result.errors[0]
        raise PayloadInvalid(f"mapping {name!r}: {reason}")
    return result.requests
