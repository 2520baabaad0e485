"""Decoding only what is read (sources/scan.py) against decoding whole lines, as a replay did.

`restrict` may give the text of a line with only the members read, or None (then the line is
decoded whole). Its one rule: text only for a line orjson decodes into one plain event, and that
text must decode to the same values on every path read. Checked here on every corpus we have, by
both the module the build runs and the pure .py (the reference), and by a fuzzer of JSON's edge
cases (escapes, surrogates, deep nesting, numbers at a double's limits, repeated keys, damaged
bytes). A repeated key: orjson keeps the last value (in the place of the first); the restricted
text keeps every occurrence of a read key, in order, so the last one wins there too.
"""

from __future__ import annotations

import gzip
import json

import orjson
import pytest
from helpers import CONFORMANCE, DATA, MISTAKES, SAMPLES, generate, pure_module
from hypothesis import HealthCheck, example, find, given, settings
from hypothesis import strategies as st

from recombee_cli.mapping.reads import STOPS, reads_table
from recombee_cli.sources import scan

# (hypothesis finds the repr of the sampled numbers long)
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

scan_pure = pure_module(scan)

# The module the build runs and the .py as it is (the same module in the pure build).
SCANNERS = {"built": scan.restrict, "pure": scan_pure.restrict}

# What the presets read (mapping/reads.LOOP_PATHS and the presets' programs and triggers), and
# a few more paths to reach deeper.
PATHS = [("timestamp",), ("originalTimestamp",), ("receivedAt",), ("sentAt",), ("messageId",), ("type",),
         ("event",), ("name",), ("userId",), ("anonymousId",), ("previousId",),
         ("properties", "product_id"), ("properties", "sku"), ("properties", "products"),
         ("properties", "timestamp"), ("properties", "recomm_id"), ("properties", "content_asset_ids", "0"),
         ("context", "page", "url"), ("context", "traits", "email"), ("a",), ("b", "a"), ("b", "b", "a"),
         ("é",), ("x" * 70,), ("b", "x" * 70, "a")]
READS = reads_table(PATHS)


def _tree(paths):
    tree: dict = {}
    for path in sorted(set(paths), key=len):
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
            if node is None:
                break
        else:
            node[path[-1]] = None
    return tree


TREE = _tree(PATHS)


def project(value, tree):
    """The members of a decoded event that the paths read (the reference for what restrict keeps)."""
    out = {}
    for key, child in tree.items():
        if key in value:
            inner = value[key]
            out[key] = project(inner, child) if child is not None and type(inner) is dict else inner
    return out


def full_decode(line: bytes):
    """What a replay decoded before: the line whole, or None where orjson refuses it."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return None


def check_line(restrict, line: bytes, reads=READS, tree=TREE) -> bool:
    """The rule, for one line: True where the restricted text was given (and agrees)."""
    text = restrict(line, reads)
    whole = full_decode(line)
    if text is None:
        return False
    assert type(whole) is dict, line[:200]
    assert not any(stop in whole for stop in STOPS), line[:200]
    part = orjson.loads(text)
    assert project(part, tree) == project(whole, tree), line[:200]
    # nothing that is not read is kept at the top (below, an escaped key may be kept as written)
    assert set(part) <= set(tree), line[:200]
    return True


def _lines(data: bytes) -> list[bytes]:
    return [line for line in data.split(b"\n") if line]


def corpus() -> dict[str, list[bytes]]:
    """Every line we have: the exports in tests/data (clean, with Segment's own lines, dirty),
    the samples with and without mistakes, the conformance vectors' events, generated browser
    and server events."""
    found: dict[str, list[bytes]] = {}
    for path in sorted(DATA.glob("*.gz")):
        found[path.name] = _lines(gzip.decompress(path.read_bytes()))
    for folder in (SAMPLES, MISTAKES):
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                found[str(path.relative_to(folder.parent))] = _lines(
                    gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
    vectors = json.loads((CONFORMANCE / "destination.json").read_text())
    found["conformance"] = [orjson.dumps(case["event"]) for key in ("unit_test_replays", "preset_vectors")
                            for case in vectors[key]]
    for mix in ("browser", "server"):
        found[f"generated-{mix}"] = [orjson.dumps(e) for e in generate(3000, seed=11, mix=mix)]
    return found


CORPUS = corpus()


def test_the_corpus_is_every_one_we_have():
    assert len(CORPUS) >= 10
    assert sum(map(len, CORPUS.values())) > 65_000
    invalid = sum(full_decode(line) is None for lines in CORPUS.values() for line in lines)
    assert invalid > 50   # the dirty export and the samples with mistakes hold broken lines


def test_the_built_scanner_agrees_with_a_full_decode_on_every_line():
    taken = {}
    for name, lines in CORPUS.items():
        taken[name] = sum(check_line(scan.restrict, line) for line in lines)
    # the restricted decode is the common case, not a rare one: every plain event of the clean
    # exports and of the generated ones
    for name in ("segment-export-20k.ndjson.gz", "generated-browser", "generated-server"):
        plain = sum(type(v := full_decode(line)) is dict and not any(s in v for s in STOPS)
                    for line in CORPUS[name])
        assert taken[name] == plain, name


def test_the_pure_scanner_is_the_reference_and_gives_the_same_bytes():
    # (the pure scanner is slow: every line of the small corpora, every 20th of the large ones,
    # and every line orjson refuses)
    for lines in CORPUS.values():
        step = 1 if len(lines) < 3000 else 20
        for i, line in enumerate(lines):
            if i % step == 0 or full_decode(line) is None:
                assert scan_pure.restrict(line, READS) == scan.restrict(line, READS), line[:200]
                check_line(scan_pure.restrict, line)


@pytest.mark.parametrize("name", sorted(SCANNERS))
@pytest.mark.parametrize("line, restricted", [
    (b'{"a":1,"z":2}', b'{"a":1}'),
    (b' {"z" : [1,{"a":2}], "a" : "x\\"y" }\r', b'{"a" : "x\\"y"}'),
    (b'{"b":{"q":1,"a":[1],"b":{"a":null,"c":2}},"c":{}}', b'{"b":{"a":[1],"b":{"a":null}}}'),
    (b'{"b":"not an object","a":true}', b'{"b":"not an object","a":true}'),
    (b'{"a":1,"z":0,"a":2}', b'{"a":1,"a":2}'),                                  # the last wins, both ways
    (b'{"b":{"x\\u0062":1,"q":2}}', b'{"b":{"x\\u0062":1}}'),                      # an escaped key below: kept
    (b'{"z":"\\ud83d\\ude00 \\u00e9 \xc3\xa9 \\n","a":-0.0e-5}', b'{"a":-0.0e-5}'),
    (b'{"z":1.7e307,"a":18446744073709551616}', b'{"a":18446744073709551616}'),
    (b'{"\xc3\xa9":1,"e":2}', b'{"\xc3\xa9":1}'),
    (b'{"z":' + b"[" * 100 + b"]" * 100 + b',"a":0}', b'{"a":0}'),
    (b'{}', b'{}'),
    # None: decoded whole
    (b'{"batch":[{"a":1}]}', None),                        # an envelope
    (b'{"a":1,"recombee_cli_reject":1}', None),            # a rejects record
    (b'{"\\u0061":1}', None),                              # an escaped key at the top
    (b'{"z":"\\ud800"}', None),                            # a lone surrogate
    (b'{"z":"\\udc00\\ud800"}', None),
    (b'{"z":"\\udc00\\udc00"}', None),                    # a low surrogate first
    (b'{"z":"\xed\xa0\x80"}', None),                       # a surrogate in UTF-8
    (b'{"z":"\xc0\x80"}', None),                           # an overlong form
    (b'{"z":"\xf4\x90\x80\x80"}', None),                   # past U+10FFFF
    (b'{"z":"\x01"}', None),                               # a control character in a string
    (b'{"z":1e309}', None), (b'{"z":1.8e308}', None),     # infinite as a double (orjson refuses)
    (b'{"z":1e308}', None),                                # finite, but too near: left to orjson
    (b'{"z":' + b"1" * 400 + b'}', None),
    (b'{"z":01}', None), (b'{"z":1.}', None), (b'{"z":.5}', None), (b'{"z":+1}', None), (b'{"z":-}', None),
    (b'{"z":' + b"[" * 200 + b"]" * 200 + b'}', None),   # deeper than MAX_DEPTH: left to orjson
    (b'{"z":[1,]}', None), (b'{"z":1,}', None), (b'{"z" 1}', None), (b'{"z":1}}', None),
    (b'{"z":tru}', None), (b'{"z":nul}', None), (b'{"z":NaN}', None),
    (b'\xef\xbb\xbf{"a":1}', None),                        # a byte order mark: the full decode strips it
    (b'{"a":1}\x0c', None),                                # whitespace orjson does not take
    (b'[1]', None), (b'"a"', None), (b'', None), (b'   ', None),
])
def test_edge_cases(name, line, restricted):
    restrict = SCANNERS[name]
    assert restrict(line, READS) == restricted
    check_line(restrict, line)


# -- the fuzzer ---------------------------------------------------------------------------------

_KEYS = st.sampled_from(["a", "b", "z", "é", "x" * 70, "type", "properties", "batch", "a\u0000", ""])
_NUMBERS = st.sampled_from([
    "0", "-0", "1", "-1", "0.5", "1e5", "1E+5", "1e-5", "-0.0e-0", "18446744073709551615",
    "18446744073709551616", "-9223372036854775809", "1" * 308, "1" * 309, "1e308", "9.9e307", "1.7976931348623157e308",
    "1.8e308", "1e309", "-1e400", "1e-400", "0." + "0" * 120 + "1", "1e0000007"])
_STRING_PARTS = st.sampled_from([
    "a", "é", "\U0001f600", "\\n", "\\\\", '\\"', "\\/", "\\u00e9", "\\u0000", "\\ud83d\\ude00", "\\ud800",
    "\\udc00", "\\udfff", "\\ud800\\u0041", "\\x", "\\u12", "\t", "\x7f", "\u2028"])


def _string(parts):
    return '"' + "".join(parts) + '"'


def _json_text(depth_limit: int = 6):
    scalar = st.one_of(_NUMBERS, st.sampled_from(["true", "false", "null"]),
                       st.lists(_STRING_PARTS, max_size=4).map(_string))

    def containers(inner):
        space = st.sampled_from(["", " ", "\n", "\t", "\r\n"])
        member = st.tuples(_KEYS, space, inner).map(lambda m: json.dumps(m[0], ensure_ascii=False) + ":" + m[1] + m[2])
        return st.one_of(st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
                         st.lists(member, max_size=5).map(lambda ms: "{" + ", ".join(ms) + "}"))

    return st.recursive(scalar, containers, max_leaves=20)


def _top(members):
    return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + v for k, v in members) + "}"


_LINES = st.lists(st.tuples(_KEYS, _json_text()), max_size=6).map(_top).map(lambda s: s.encode("utf-8"))


@st.composite
def _damaged(draw):
    """A line, maybe with a byte changed, inserted or removed, or deeply nested."""
    line = draw(_LINES)
    how = draw(st.sampled_from(["as is", "as is", "change", "insert", "remove", "deep"]))
    if how == "deep":
        depth = draw(st.sampled_from([100, 127, 128, 129, 1023, 1024, 1025]))
        return b'{"b":{"a":' + b"[" * depth + b"]" * depth + b"}}"
    if how == "as is" or not line:
        return line
    at = draw(st.integers(0, len(line) - 1))
    byte = bytes([draw(st.sampled_from([0, 9, 10, 13, 32, 34, 44, 48, 58, 91, 92, 93, 117, 123, 125, 0x80, 0xC3,
                                          0xED, 0xF4, 0xFF]))])
    if how == "change":
        return line[:at] + byte + line[at + 1:]
    if how == "insert":
        return line[:at] + byte + line[at:]
    return line[:at] + line[at + 1:]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_damaged())
@example(b'{"a":1,"a":{"x":2},"b":{"a":3},"b":4,"b":{"b":{"a":5}}}')   # repeated keys: the last wins
@example(b'{"b":{"a":1},"b":{"z":2}}')
@example(b'{"z":"\\ud83d\\ude00","a":"\\ud83d"}')
def test_fuzzed_lines_agree_with_a_full_decode(line):
    taken = check_line(scan.restrict, line)
    assert scan_pure.restrict(line, READS) == scan.restrict(line, READS)
    if taken:
        assert check_line(scan_pure.restrict, line)


@pytest.mark.parametrize("what", [
    lambda line: b"\\u" in line,                          # an escape in a value
    lambda line: b"\xf0" in line,                          # a character past the BMP, as UTF-8
    lambda line: line.count(b'"a":') >= 2,                  # a repeated key that is read
    lambda line: b'"b":{' in line and b'"z"' in line,       # an object read in part
])
def test_the_fuzzer_reaches_the_restricted_decode(what):
    # (not vacuous: lines of each kind are restricted, not only sent to the full decode)
    found = find(_LINES, lambda line: what(line) and check_line(scan.restrict, line),
                 settings=settings(max_examples=5000, database=None))
    assert check_line(scan.restrict, found)


@pytest.mark.parametrize("stop", [b'\\"', b"\\\\", b"\\n", b"\\u00e9", b"\x1f", b"\x7f", b"\xc3\xa9", b"\x80",
                                  b"\xed\xa0\x80", b"\xf0\x9f\x98\x80", b'"'])
def test_a_stop_at_every_place_of_a_word_is_seen(stop):
    """Whatever byte of the scanner's 16- and 4-byte steps a stop falls on (a quote, an escape, a
    control or non-ASCII byte, valid or not), the line is restricted only where orjson decodes it,
    to the same value (strings of 0 to 40 plain bytes before the stop, and some after: two whole
    16-byte steps and every place of the third; the second string ends 2 bytes before the line)."""
    for before in range(41):
        for after in (0, 3, 8, 17):
            line = b'{"z":"' + b"x" * before + stop + b"y" * after + b'","a":"' + b"w" * before + b'"}'
            check_line(scan.restrict, line)
            assert scan_pure.restrict(line, READS) == scan.restrict(line, READS), line


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=70))
@example("userId")
@example("\ud800")    # a lone surrogate: orjson cannot write it
@example("k" * 65)    # longer than orjson keeps
def test_a_decoded_key_is_the_key_and_orjsons_own_object_where_it_keeps_one(key):
    """The mapping programs look up an event's members with these keys: each must equal the key
    it stands for, whatever the text; where orjson keeps its key objects (short keys) it is the
    very object a decoded event holds, so that the lookup is found by identity."""
    found = scan.decoded_key(key)
    assert found == key and type(found) is str
    if key == "userId":
        event = orjson.loads(b'{"type":"track","userId":"u1"}')
        assert [k for k in event if k == "userId"][0] is found
