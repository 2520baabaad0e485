"""File export formats by name (`export --format`).

`files` holds what every format shares (the `RowFormat` interface, column rules, the part writer,
the sink); each format is one module with its columns and its request-to-row rules. A new format is
one module plus one line here."""

from __future__ import annotations

from recombee_cli.sinks.files import RowFormat
from recombee_cli.sinks.reco_interactions import RecoInteractions

FORMATS: dict[str, type[RowFormat]] = {RecoInteractions.name: RecoInteractions}
