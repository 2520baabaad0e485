"""File export formats and encodings by name.

A format (`sinks.rows.RowFormat`) is which rows a request becomes: its columns and rules, one
module each (`--format`); an encoder (`sinks.protocol.Encoder`) is how rows are written, one
module each in `sinks.encoders`. A format is written with its own encoding (`RowFormat.encoding`)
unless an export is given another. A new one is one module plus one line here."""

from __future__ import annotations

from collections.abc import Callable

from recombee_cli.sinks.encoders.csv import CsvEncoder
from recombee_cli.sinks.protocol import Encoder
from recombee_cli.sinks.reco_interactions import RecoInteractions
from recombee_cli.sinks.rows import RowFormat

FORMATS: dict[str, type[RowFormat]] = {RecoInteractions.name: RecoInteractions}

ENCODERS: dict[str, Callable[[RowFormat], Encoder]] = {CsvEncoder.suffix: CsvEncoder}
