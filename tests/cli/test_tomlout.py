"""The TOML writer behind `import-segment` and `presets --toml`: what it writes, tomllib reads back
as the same value. (tomli-w was tried in its place: it cannot write comments, moves nested tables
after the scalar keys and spreads arrays over lines, so the files users get would change; see
docs/architecture.md.)"""

from __future__ import annotations

import math
import tomllib

from hypothesis import given
from hypothesis import strategies as st

from recombee_cli.cli.tomlout import mappings_toml, value
from recombee_cli.mapping.config import MappingSpec

keys = st.text(min_size=1, max_size=8)
scalars = (st.booleans() | st.integers(min_value=-2**63, max_value=2**63 - 1)
           | st.floats(allow_nan=False) | st.text(max_size=12))
json_like = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                         max_leaves=12)


@given(json_like)
def test_every_value_reads_back_as_itself(original):
    assert tomllib.loads(f"v = {value(original)}")["v"] == original


def test_null_becomes_a_directive_that_resolves_to_null_and_nan_stays_nan():
    assert tomllib.loads(f"v = {value(None)}")["v"] == {"@json": {"mode": "decode", "value": "null"}}
    assert math.isnan(tomllib.loads(f"v = {value(math.nan)}")["v"])
    assert tomllib.loads(f"v = {value([-math.inf])}")["v"] == [-math.inf]


@given(st.dictionaries(keys, json_like, max_size=5), st.text(min_size=1, max_size=10))
def test_a_written_mapping_reads_back_with_its_fields_in_order(fields, name):
    spec = MappingSpec(name=name, trigger='type = "track"', action="sendTrack", fields=fields)
    table = tomllib.loads(mappings_toml([spec], "# header", presets=False))
    (written,) = table["mappings"]
    assert (written["name"], written["fields"]) == (name, fields)
    assert list(written["fields"]) == list(fields)
    assert table["replay"]["presets"] is False
