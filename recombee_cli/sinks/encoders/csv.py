"""CSV: how Reco_Interactions is written, and any format whose files are CSV.

The file syntax the contract's overview asks of an entity's partitions, and nothing of what a
value may be (that is the format's columns, `sinks.rows`): comma-separated, no header (unless
asked for), UTF-8 without BOM, "\\n" line ends, a value quoted only when it holds the delimiter, a
quote, a line break or leading/trailing space (RFC 4180, quotes doubled), each value in its text
form (`sinks.rows.TEXT_FORMS`: doubles with a point, ISO 8601 times, True/False). Beside each
table's parts, the Common Data Model's `model.json` (a CDM folder: the entity, its columns and
their types; its partitions, found by the reader, are the CSV files).
"""

from __future__ import annotations

from typing import Any

import orjson

from recombee_cli.sinks.rows import TEXT_FORMS, Refused, Row, RowFormat

# The columns' kinds as the Common Data Model's model.json names them.
CDM_TYPES = {"string": "string", "datetime": "dateTime", "double": "double", "bool": "boolean"}


def quoted(text: str, delimiter: str) -> str:
    """`text` as one CSV cell: quoted (quotes doubled) only where it must be."""
    if delimiter in text or '"' in text or "\n" in text or "\r" in text or text[:1].isspace() \
            or text[-1:].isspace():
        return '"' + text.replace('"', '""') + '"'
    return text


class CsvEncoder:
    """Rows as CSV lines (an `Encoder`, sinks.protocol). `header`: each part starts with the
    column names (off for Reco_Interactions: "headers ... shouldn't be part of the actual data")."""

    suffix = "csv"

    def __init__(self, fmt: RowFormat, *, header: bool = False, delimiter: str = ","):
        if len(delimiter) != 1 or delimiter in '"\r\n' or delimiter.isspace():
            raise ValueError(f"a CSV delimiter is one character other than a quote or a space: {delimiter!r}")
        self.format = fmt
        self.with_header = header
        self.delimiter = delimiter
        self._texts = tuple(TEXT_FORMS[column.kind] for column in fmt.columns)
        self._delimiters = len(fmt.columns) - 1
        self._space_before, self._space_after = " " + delimiter, delimiter + " "

    def header(self) -> bytes:
        if not self.with_header:
            return b""
        return (self.delimiter.join([quoted(c.name, self.delimiter) for c in self.format.columns]) + "\n").encode()

    def encode(self, row: Row) -> bytes:
        """One line: each value in its text form, quoted where needed, UTF-8, "\\n" at the end."""
        delimiter = self.delimiter
        cells = ["" if value is None else value if text_of is None else text_of(value)
                 for text_of, value in zip(self._texts, row)]
        line = delimiter.join(cells)
        # Most lines need no quoting, and these few scans of the whole line tell (instead of each
        # cell's): no delimiter but the joins', no quote, nothing unprintable (line breaks, and
        # every space but " ", are), and no " " at a cell's edge. Otherwise, cell by cell.
        if line.count(delimiter) != self._delimiters or '"' in line or not line.isprintable() or (
                " " in line and (self._space_before in line or self._space_after in line or line[:1] == " "
                                 or line[-1:] == " ")):
            line = delimiter.join([quoted(cell, delimiter) for cell in cells])
        try:
            return (line + "\n").encode("utf-8")
        except UnicodeEncodeError:
            raise Refused("a value is not valid Unicode (a lone surrogate)") from None

    def root_files(self, table: str) -> dict[str, bytes]:
        """The table folder's `model.json`: the one entity it holds, its columns in order with
        their types; its partitions are the CSV files of its folder."""
        fmt = self.format
        model = {
            "name": f"recombee-cli-{table}",
            "description": f"{fmt.entity}: Recombee {table}, written by recombee-cli export",
            "version": "1.0",
            "entities": [{
                "$type": "LocalEntity",
                "name": fmt.entity,
                "description": f"{fmt.table_description(table)}, one CSV row each, "
                               f"{'the column names first' if self.with_header else 'no header'}",
                "attributes": [{"name": c.name, "dataType": CDM_TYPES[c.kind]} for c in fmt.columns],
            }],
        }
        return {"model.json": orjson.dumps(model, option=orjson.OPT_INDENT_2) + b"\n"}

    def describe(self) -> dict[str, Any]:
        return {"header": self.with_header, "delimiter": self.delimiter, "quoting": "RFC 4180 (only where needed)",
                "encoding": "utf-8", "line_end": "\\n"}
