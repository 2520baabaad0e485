"""The Python API hands back plain JSON-like values and follows a config file as it is edited."""

from __future__ import annotations

import json
import os

import recombee_cli
from recombee_cli.segment.jsvalues import UNDEFINED

EVENT = {"type": "track", "event": "Product Viewed", "userId": "u1", "timestamp": "2024-01-01T00:00:00Z",
         "properties": {"product_id": "p1", "sku": "s-1"}}


def test_resolve_mapping_returns_json_values_where_segment_has_null():
    value = recombee_cli.resolve_mapping([{"@path": "$.properties.missing"}, {"@path": "$.properties.sku"},
                                          {"a": {"@path": "$.nope"}, "b": 1}], EVENT)
    assert value == [None, "s-1", {"b": 1}]
    assert json.loads(json.dumps(value)) == value           # plain JSON, no private sentinel inside
    assert recombee_cli.resolve_mapping({"@path": "$.nope"}, EVENT) is UNDEFINED   # documented at the top


def test_translate_event_follows_the_config_file_as_a_notebook_edits_it(tmp_path):
    config = tmp_path / "m.toml"
    mapping = ('[replay]\npresets = false\n\n[[mappings]]\nname = "views"\n'
               'trigger = \'type = "track" and event = "Product Viewed"\'\naction = "addDetailView"\n'
               'fields = {{ itemId = "$.properties.{field}" }}\n')
    config.write_text(mapping.format(field="product_id"))
    assert recombee_cli.translate_event(EVENT, str(config))[0]["params"]["itemId"] == "p1"
    config.write_text(mapping.format(field="sku"))
    stat = os.stat(config)   # a save within the same clock tick still changes the size here
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert recombee_cli.translate_event(EVENT, str(config))[0]["params"]["itemId"] == "s-1"
