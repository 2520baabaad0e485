"""The floor: the least a Python replay of an NDJSON export has to do, measured on the same file.

Modes (one per run, so that run.py can time each in its own process and read its peak RSS):

  orjson        read lines from a plain file, orjson.loads + orjson.dumps each, write to --out
  orjson-gzip   the same through the standard library's gzip module
  json          the same with the standard library's json (reference only)
  gunzip        decompression alone, standard library gzip, 1 MiB reads, nothing else
  gunzip-isal   decompression alone, isal.igzip (ISA-L), 1 MiB reads

    python bench/floor.py orjson events.ndjson          # one mode: prints one JSON line
    python bench/floor.py all events.ndjson events.ndjson.gz   # every mode, a small table

The JSON line is {"mode", "events", "bytes" (uncompressed), "seconds" (inside the process)}.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time

import orjson

LINE_MODES = ("orjson", "orjson-gzip", "json")
READ_MODES = ("gunzip", "gunzip-isal")
MODES = LINE_MODES + READ_MODES
CHUNK = 1 << 20


def _open_lines(mode: str, path: str):
    if mode == "orjson-gzip":
        return gzip.open(path, "rb")
    return open(path, "rb", buffering=CHUNK)


def translate_floor(mode: str, path: str, out_path: str) -> tuple[int, int]:
    """loads + dumps per line; returns (events, uncompressed bytes)."""
    loads, dumps = (json.loads, lambda v: json.dumps(v).encode()) if mode == "json" \
        else (orjson.loads, orjson.dumps)
    events = size = 0
    with _open_lines(mode, path) as src, open(out_path, "wb", buffering=CHUNK) as out:
        write = out.write
        for line in src:
            size += len(line)
            if line.isspace():
                continue
            write(dumps(loads(line)) + b"\n")
            events += 1
    return events, size


def decompress_only(mode: str, path: str) -> tuple[int, int]:
    """Decompression alone; returns (0, uncompressed bytes)."""
    if mode == "gunzip-isal":
        from isal import igzip
        opener = igzip.open
    else:
        opener = gzip.open
    size = 0
    with opener(path, "rb") as src:
        while chunk := src.read(CHUNK):
            size += len(chunk)
    return 0, size


def run(mode: str, path: str, out_path: str = os.devnull) -> dict:
    start = time.perf_counter()
    if mode in LINE_MODES:
        events, size = translate_floor(mode, path, out_path)
    else:
        events, size = decompress_only(mode, path)
    return {"mode": mode, "events": events, "bytes": size, "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=(*MODES, "all"))
    parser.add_argument("plain", help="plain NDJSON file (for the gzip modes: the .gz file)")
    parser.add_argument("gz", nargs="?", help="with 'all': the gzip file of the same events")
    parser.add_argument("--out", default=os.devnull, help="where the line modes write (default /dev/null)")
    args = parser.parse_args()
    if args.mode != "all":
        print(json.dumps(run(args.mode, args.plain, args.out)))
        return
    if not args.gz:
        parser.error("'all' needs the plain file and the .gz file")
    for mode in MODES:
        result = run(mode, args.plain if mode in ("orjson", "json") else args.gz, args.out)
        rate = f"{result['events'] / result['seconds']:>10,.0f} ev/s" if result["events"] else " " * 15
        print(f"{mode:<12} {rate} {result['bytes'] / result['seconds'] / 1e6:8.1f} MB/s "
              f"{result['seconds']:7.2f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
