"""File exports: the translated interactions written as files instead of sent (`export`).

`files` holds what every format shares (the `RowFormat` interface, column rules, the part
writer, the sink); each format is one module with its columns and its request-to-row rules."""

from __future__ import annotations

from .files import (DEFAULT_PART_ROWS, MANIFEST, SUCCESS, Column, ExportError, ExportSink, ExportWriteError,
                    FileExporter, NotRepresentable, Refused, RowFormat)
from .reco_interactions import RecoInteractions

FORMATS: dict[str, type[RowFormat]] = {RecoInteractions.name: RecoInteractions}

__all__ = ["DEFAULT_PART_ROWS", "FORMATS", "MANIFEST", "SUCCESS", "Column", "ExportError", "ExportSink",
           "ExportWriteError", "FileExporter", "NotRepresentable", "RecoInteractions", "Refused", "RowFormat"]
