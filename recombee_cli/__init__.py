"""recombee-cli: replay Segment event exports into Recombee as Segment's destination would.

The Python API, for notebooks and Spark/Dask jobs:

    >>> from recombee_cli import compile_trigger, resolve_mapping, translate_event
    >>> compile_trigger('type = "track" and event = "Product Viewed"').matches(event)
    >>> resolve_mapping({"@path": "$.properties.sku"}, event)
    >>> translate_event(event)                 # the requests Segment's presets would send
    >>> translate_event(event, "mappings.toml")
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import (ConfigError, MappingError, PayloadInvalid, RecombeeCliError,  # noqa: E402
                     TriggerSyntaxError)

__all__ = [
    "__version__", "compile_trigger", "resolve_mapping", "translate_event", "load_translator",
    "ConfigError", "MappingError", "PayloadInvalid", "RecombeeCliError", "TriggerSyntaxError",
]


def compile_trigger(text: str):
    """Compile a Segment subscription trigger; `.matches(event)` tests an event. Raises
    TriggerSyntaxError where Segment cannot parse it."""
    from .triggers import compile_trigger as _compile

    return _compile(text)


def resolve_mapping(mapping, payload: dict):
    """Resolve a mapping-kit value (directives such as @path, @if, @template) against a payload.
    Returns None for JSON null and raises MappingError for invalid mappings; a value that resolves
    to nothing (JavaScript's undefined) is returned as `recombee_cli.jsvalues.UNDEFINED`."""
    from .mappingkit import resolve

    return resolve(mapping, payload)


_translators: dict = {}


def load_translator(config_path: str | None = None):
    """A Translator for a config file (None = Segment's 14 presets), compiled once and cached."""
    from .config import compile_config, load_config
    from .translate import Translator

    if config_path not in _translators:
        _translators[config_path] = Translator(compile_config(load_config(config_path)))
    return _translators[config_path]


def translate_event(event: dict, config_path: str | None = None) -> list[dict]:
    """The Recombee Batch request objects an event becomes. Raises PayloadInvalid (with the reason)
    when a matching mapping cannot build a valid request; returns [] when no trigger matches."""
    result = load_translator(config_path).translate(event)
    if result.errors:
        name, reason = result.errors[0]
        raise PayloadInvalid(f"mapping {name!r}: {reason}")
    return result.requests
