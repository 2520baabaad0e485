"""The benchmark of recombee-cli, in one command: inputs, every measurement, and a table of targets.

    .venv/bin/python bench/run.py                 # 1,000,000 events (memory case: 10,000,000 from stdin)
    .venv/bin/python bench/run.py --quick         # 200,000 events (memory case: 2,000,000)
    .venv/bin/python bench/run.py --only floor,dryrun --repeat 3

Every measurement runs in its own process, timed from start to exit (wall clock, interpreter start
included) and waited for with ``os.wait4``, whose ``ru_maxrss`` is the kernel's peak RSS of exactly
that process (and of any children it waited for: the max, not the sum). For multi-process runs the
sum of VmRSS over the process tree is also sampled every 20 ms. Each figure is the best of
``--repeat`` runs (time) and the worst of them (RSS). See bench/README.md for what each row means.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.metadata
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from recombee_cli.emulator import Emulator

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = sys.executable
DATABASE, TOKEN = "bench", "bench-token"
CLI_EXIT_OK = (0, 1)           # 1: the generated exports hold invalid events on purpose ('Home Page')
SECTIONS = ("floor", "dryrun", "workers", "config", "memory", "e2e", "sweep", "latency", "dask")
TIMEOUT = 3 * 3600             # per process; a hung run is killed (its process group only)


# ----------------------------------------------------------------------------------------------
# Running one process: wall time, peak RSS
# ----------------------------------------------------------------------------------------------

@dataclass
class Proc:
    seconds: float
    rss_kb: int                    # ru_maxrss from wait4: this process (max with its waited-for children)
    tree_rss_kb: int | None        # sampled peak of the sum of VmRSS over the process tree
    returncode: int
    stdout: bytes                  # captured stdout ("capture"), or b"" ("devnull"/"hash")
    stderr: bytes
    digest: str | None = None      # sha256 of stdout ("hash")
    lines: int | None = None       # stdout lines ("hash")


_live: set[int] = set()            # process groups we started and that may still run


def _vm_rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    kids = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids.extend(int(k) for k in f.read().split())
    except OSError:
        pass
    return kids


def _tree_rss_kb(pid: int) -> int:
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += _vm_rss_kb(p)
        todo.extend(_children(p))
    return total


def run_process(cmd: list[str], *, feeder: list[str] | None = None, stdout: str = "devnull",
                env: dict | None = None, sample_tree: bool = False, timeout: float = TIMEOUT) -> Proc:
    """Run ``cmd`` (its stdin: ``feeder``'s stdout, else /dev/null) and measure it alone.

    stdout: "devnull", "capture" (kept, small outputs only) or "hash" (sha256 and line count)."""
    with tempfile.TemporaryFile() as err_file, tempfile.TemporaryFile() as out_file:
        feed = None
        if feeder:
            feed = subprocess.Popen(feeder, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                    start_new_session=True, cwd=ROOT)
            _live.add(feed.pid)
        out_target = {"devnull": subprocess.DEVNULL, "capture": out_file, "hash": subprocess.PIPE}[stdout]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=feed.stdout if feed else subprocess.DEVNULL, stdout=out_target,
                                stderr=err_file, env=env, start_new_session=True, cwd=ROOT)
        _live.add(proc.pid)
        if feed:
            feed.stdout.close()     # the reader holds the only read end: the feeder sees EPIPE if it dies
        done = threading.Event()
        killer = threading.Timer(timeout, _kill_group, (proc.pid,))
        killer.daemon = True
        killer.start()
        tree_peak = [0]
        sampler = None
        if sample_tree:
            def sample() -> None:
                while not done.wait(0.02):
                    tree_peak[0] = max(tree_peak[0], _tree_rss_kb(proc.pid))
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
        hasher, lines, reader = hashlib.sha256(), [0], None
        if stdout == "hash":
            def digest() -> None:
                while chunk := proc.stdout.read(1 << 20):
                    hasher.update(chunk)
                    lines[0] += chunk.count(b"\n")
            reader = threading.Thread(target=digest, daemon=True)
            reader.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        done.set()
        killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        _live.discard(proc.pid)
        if reader:
            reader.join()
            proc.stdout.close()
        if sampler:
            sampler.join()
        if feed:
            feed.wait()
            _live.discard(feed.pid)
        err_file.seek(0)
        out_file.seek(0)
        return Proc(seconds, usage.ru_maxrss, tree_peak[0] or None, proc.returncode, out_file.read(),
                    err_file.read(), hasher.hexdigest() if stdout == "hash" else None,
                    lines[0] if stdout == "hash" else None)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class LoadMeter:
    """CPU used by everything except this benchmark and the processes it started, in cores on
    average since start: the machine's busy time (/proc/stat, steal included) minus our own and our
    waited-for children's (getrusage). Near 0 on an idle machine; more means the figures are disturbed."""

    def __init__(self) -> None:
        self.start = self._read()

    @staticmethod
    def _read() -> tuple[float, float, float]:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
            user, nice, system, _idle, _iowait, irq, softirq, steal = fields
            busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError):
            busy = float("nan")
        own = sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                     resource.getrusage(resource.RUSAGE_CHILDREN)))
        return time.perf_counter(), busy, own

    def others(self) -> float:
        (t0, busy0, own0), (t1, busy1, own1) = self.start, self._read()
        return max(0.0, ((busy1 - busy0) - (own1 - own0)) / (t1 - t0)) if t1 > t0 else 0.0


def source_fingerprint() -> str:
    """git HEAD and a hash of recombee_cli/*.py: the code under test, to notice it changing mid-run."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip() or "-"
    digest = hashlib.sha256()
    for path in sorted((ROOT / "recombee_cli").rglob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"git {commit}, sources {digest.hexdigest()[:10]}"


# ----------------------------------------------------------------------------------------------
# Results and rows
# ----------------------------------------------------------------------------------------------

@dataclass
class Result:
    """Best of several runs of one measurement."""
    label: str
    events: int | None = None      # events in the input (for events/s)
    size: int | None = None        # uncompressed input bytes (for MB/s)
    seconds: float | None = None   # best run
    rss_kb: int | None = None      # worst run
    tree_rss_kb: int | None = None
    error: str | None = None
    info: dict = field(default_factory=dict)
    runs: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        return self.events / self.seconds if self.events and self.seconds and not self.error else None

    @property
    def mbps(self) -> float | None:
        return self.size / self.seconds / 1e6 if self.size and self.seconds and not self.error else None

    def add(self, proc: Proc) -> None:
        self.runs.append(proc.seconds)
        self.seconds = min(self.runs)
        self.rss_kb = max(self.rss_kb or 0, proc.rss_kb)
        if proc.tree_rss_kb:
            self.tree_rss_kb = max(self.tree_rss_kb or 0, proc.tree_rss_kb)


@dataclass
class Row:
    result: Result | None = None
    label: str = ""
    ratio: str = ""
    target: str = ""
    verdict: str = ""              # MET, NOT MET, n/a, ERROR, or "" for reference rows
    section: str | None = None     # a section heading instead of a row


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("MET" if ok else "NOT MET")


def fail_text(proc: Proc, what: str) -> str:
    tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
    return f"{what} exited {proc.returncode}: " + " | ".join(tail)


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------

def _generator_id() -> str:
    return hashlib.sha256((BENCH / "generate.py").read_bytes()).hexdigest()[:16]


def ensure_input(workdir: Path, count: int, seed: int, gz: bool = False) -> Path:
    """events-N.ndjson[.gz] in workdir, generated by bench/generate.py unless already there with the
    size recorded when it was made (and the same generator)."""
    plain = workdir / f"events-{count}-s{seed}.ndjson"
    path = plain.with_name(plain.name + ".gz") if gz else plain
    meta_path = path.with_name(path.name + ".meta.json")
    meta = {"count": count, "seed": seed, "generator": _generator_id()}
    if path.exists() and meta_path.exists():
        known = json.loads(meta_path.read_text())
        if {k: known.get(k) for k in meta} == meta and known.get("size") == path.stat().st_size:
            return path
    partial = path.with_name(path.name + ".part")
    started = time.perf_counter()
    if gz:
        source = ensure_input(workdir, count, seed)
        # mtime=0 and no file name: the same events give the same bytes (stdlib zlib, level 6 like gzip -6)
        with open(source, "rb") as src, open(partial, "wb") as raw, \
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as out:
            shutil.copyfileobj(src, out, 1 << 20)
    else:
        with open(partial, "wb") as out:
            subprocess.run([PYTHON, str(BENCH / "generate.py"), str(count), "--seed", str(seed)],
                           stdout=out, check=True, cwd=ROOT)
    partial.replace(path)
    meta_path.write_text(json.dumps({**meta, "size": path.stat().st_size}))
    print(f"  generated {path.name} ({path.stat().st_size / 1e6:,.0f} MB) in "
          f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
    return path


def custom_mappings_toml(path: Path, count: int = 50) -> Path:
    """Presets plus `count` custom mappings, each for a distinct custom event (none in the input:
    the cost measured is the cost of having them, not of producing more requests)."""
    parts = ["# recombee-cli benchmark: the presets plus custom mappings\n[replay]\npresets = true\n"]
    for n in range(1, count + 1):
        parts.append(f'\n[[mappings]]\nname = "Custom Event {n}"\n'
                     f"trigger = 'type = \"track\" and event = \"Custom Event {n}\"'\n"
                     f'action = "addDetailView"\n[mappings.fields]\nitemId = "$.properties.sku"\n')
    path.write_text("".join(parts))
    return path


# ----------------------------------------------------------------------------------------------
# The benchmark
# ----------------------------------------------------------------------------------------------

class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.workdir = Path(args.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.scratch = Path(tempfile.mkdtemp(prefix="run-", dir=self.workdir))
        self.cli = shlex.split(args.cli) if args.cli else _default_cli()
        self.results: dict[str, Result] = {}
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.timings: dict[str, float] = {}
        self.others: dict[str, float] = {}       # per section: cores used by other processes
        self.code_before = source_fingerprint()
        self.code_after = self.code_before
        self.workers_available = "--workers" in self._help()
        self.env = dict(os.environ, RECOMBEE_PRIVATE_TOKEN=TOKEN)
        self.env.pop("RAPI_URI", None)          # the SDK would prefer it to options["base_uri"]
        # An installed tool starts from compiled bytecode; an editable checkout, or packages
        # installed under PYTHONDONTWRITEBYTECODE (set on some machines), would compile their
        # source at every start: 0.13 s more per run for us (httpx, rich, click), some for the
        # SDK script too. Both sides get what pip gives everyone.
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run([PYTHON, "-m", "compileall", "-q", str(ROOT / "recombee_cli"),
                        *sysconfig.get_paths()["purelib"].split(os.pathsep)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        self._report_n = 0

    def _help(self) -> str:
        done = subprocess.run(self.cli + ["replay", "--help"], capture_output=True, text=True, cwd=ROOT)
        return done.stdout

    # -- helpers ---------------------------------------------------------------------------------

    def report_path(self) -> Path:
        self._report_n += 1
        return self.scratch / f"report-{self._report_n}.json"

    def replay(self, inputs: list[str], *extra: str, dry_run: bool = True, report: Path | None = None) -> list[str]:
        cmd = self.cli + ["replay", "--quiet"] + (["--dry-run"] if dry_run else [])
        if report:
            cmd += ["--report", str(report)]
        return cmd + list(extra) + inputs

    def run_cli(self, result: Result, cmd_for, *, expect_events: int | None, stdout: str = "devnull",
                feeder: list[str] | None = None, sample_tree: bool = False) -> Proc | None:
        """One run of recombee-cli: cmd_for(report_path) -> argv. Checks exit code and event count."""
        report = self.report_path()
        proc = run_process(cmd_for(report), feeder=feeder, stdout=stdout, env=self.env, sample_tree=sample_tree)
        if proc.returncode not in CLI_EXIT_OK:
            result.error = fail_text(proc, "recombee-cli")
            return None
        try:
            data = json.loads(report.read_text())
        except (OSError, ValueError) as e:
            result.error = fail_text(proc, f"no readable --report ({type(e).__name__}); recombee-cli")
            return None
        if expect_events is not None and data.get("events") != expect_events:
            result.error = f"read {data.get('events')} events, expected {expect_events}"
            return None
        result.info["report"] = data
        result.add(proc)
        return proc

    def keep(self, key: str, result: Result) -> Result:
        self.results[key] = result
        return result

    def section(self, title: str) -> None:
        self.rows.append(Row(section=title))

    # -- 1. floor --------------------------------------------------------------------------------

    def floor(self, plain: Path, gz: Path, events: int, size: int) -> None:
        self.section("Floor (reference): the least any Python replay does, same file")
        modes = [("orjson", plain, "floor: orjson loads+dumps per line, plain"),
                 ("orjson-gzip", gz, "floor: orjson loads+dumps, via stdlib gzip"),
                 ("json", plain, "floor: stdlib json loads+dumps, plain"),
                 ("gunzip", gz, "floor: gzip decompression alone, stdlib"),
                 ("gunzip-isal", gz, "floor: gzip decompression alone, isal")]
        for mode, path, label in modes:
            result = self.keep(f"floor-{mode}", Result(label, events, size))
            for _ in range(self.args.repeat):
                proc = run_process([PYTHON, str(BENCH / "floor.py"), mode, str(path)], stdout="capture")
                if proc.returncode != 0:
                    result.error = fail_text(proc, "floor.py")
                    break
                counted = json.loads(proc.stdout)
                if mode in ("orjson", "orjson-gzip", "json") and counted["events"] != events:
                    result.error = f"floor.py counted {counted['events']} events, expected {events}"
                    break
                result.add(proc)
            self.rows.append(Row(result))

    # -- 1. translation, one process; 5. configuration (interleaved with the plain runs) ---------

    def dryrun(self, plain: Path, gz: Path, events: int, size: int, with_config: bool) -> None:
        self.section("Translation: replay --dry-run (built-in presets) > /dev/null, one process")
        single = self.keep("dry-plain", Result("replay --dry-run, plain file", events, size))
        zipped = self.keep("dry-gz", Result("replay --dry-run, .gz file", events, size))
        custom = None
        if with_config:
            toml = custom_mappings_toml(self.scratch / "custom50.toml")
            check = subprocess.run(self.cli + ["validate", "--config", str(toml)], capture_output=True,
                                   text=True, cwd=ROOT)
            custom = self.keep("dry-custom", Result("replay --dry-run --config (presets + 50 custom)", events, size))
            if check.returncode != 0:
                custom.error = f"validate exited {check.returncode}: {check.stderr.strip()[-200:]}"
        for _ in range(self.args.repeat):
            if not single.error:
                self.run_cli(single, lambda r: self.replay([str(plain)], report=r), expect_events=events)
            if custom and not custom.error:
                self.run_cli(custom, lambda r: self.replay([str(plain)], "--config", str(toml), report=r),
                             expect_events=events)
            if not zipped.error:
                self.run_cli(zipped, lambda r: self.replay([str(gz)], report=r), expect_events=events)
        floor = self.results.get("floor-orjson")
        for result, target in ((single, 0.60), (zipped, 0.55)):
            ratio = result.rate / floor.rate if floor and floor.rate and result.rate else None
            self.rows.append(Row(result, ratio=_pct(ratio) + " of floor" if ratio else "",
                                 target=f">= {target:.0%} of plain floor",
                                 verdict="ERROR" if result.error else verdict(None if ratio is None else ratio >= target)))
        if custom:
            base = single.info.get("report", {}).get("requests", {}).get("sent")
            got = custom.info.get("report", {}).get("requests", {}).get("sent")
            if base is not None and got is not None and base != got:
                self.notes.append(f"config cost: presets alone built {base:,} requests, presets + 50 custom {got:,}"
                                  " (the custom events are not in the input; they should be equal)")

    def config_rows(self) -> None:
        custom, single = self.results.get("dry-custom"), self.results.get("dry-plain")
        if not custom:
            return
        self.section("Cost of configuration: 50 custom mappings besides the presets (same input)")
        extra = custom.seconds / single.seconds - 1 if custom.seconds and single and single.seconds \
            and not (custom.error or single.error) else None
        self.rows.append(Row(custom, ratio="" if extra is None else f"{extra:+.1%} time",
                             target="<= +10% time vs no config",
                             verdict="ERROR" if custom.error else verdict(None if extra is None else extra <= 0.10)))

    # -- 2. both cores ---------------------------------------------------------------------------

    def parallel_capacity(self, plain: Path, events: int, size: int, n: int) -> float | None:
        """What N CPU-bound processes get from this machine: the floor loop once, then N copies at
        once (aggregate events/s), interleaved. Virtual cores are not always whole cores: seen
        here from 1.15x to 1.77x for two, which bounds what --workers can show."""
        one = self.keep("floor-one", Result("floor: orjson, one process (beside the next row)", events, size))
        many = self.keep("floor-many", Result(f"floor: orjson, {n} processes at once (aggregate)",
                                              n * events, n * size))
        cmd = [PYTHON, str(BENCH / "floor.py"), "orjson", str(plain)]
        for _ in range(self.args.repeat):
            proc = run_process(cmd, stdout="capture")
            if proc.returncode != 0:
                one.error = fail_text(proc, "floor.py")
                return None
            one.add(proc)
            start = time.perf_counter()
            procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
                     for _ in range(n)]
            codes = [proc.wait(timeout=TIMEOUT) for proc in procs]
            if any(codes):
                many.error = f"floor.py exited {codes}"
                return None
            many.add(Proc(time.perf_counter() - start, 0, None, 0, b"", b""))
        capacity = many.rate / one.rate if many.rate and one.rate else None
        self.rows.append(Row(one))
        self.rows.append(Row(many, ratio=f"{capacity:.2f}x" if capacity else ""))
        return capacity

    def workers(self, plain: Path, events: int, size: int) -> None:
        n = self.args.workers
        self.section(f"Both cores: replay --dry-run --workers {n} (plain file)")
        capacity = self.parallel_capacity(plain, events, size, n)
        if capacity is not None:
            self.notes.append(f"parallel capacity: {n} copies of the floor loop at once ran {capacity:.2f}x as "
                              f"many events/s as one; --workers {n} can at best come near that")
        label = f"replay --dry-run --workers {n}, plain file"
        if not self.workers_available:
            self.rows.append(Row(Result(label), ratio="not available", target=">= 1.6x one process",
                                 verdict="n/a"))
            self.notes.append("--workers: not available (`recombee-cli replay --help` does not mention it)")
            return
        result = self.keep("dry-workers", Result(label, events, size))
        for _ in range(self.args.repeat):
            if self.run_cli(result, lambda r: self.replay([str(plain)], "--workers", str(n), report=r),
                            expect_events=events, sample_tree=True) is None:
                break
        # Identity: one more run of each, output hashed instead of thrown away.
        same = None
        if not result.error:
            outputs = []
            for extra in ((), ("--workers", str(n))):
                probe = Result("identity")
                proc = self.run_cli(probe, lambda r: self.replay([str(plain)], *extra, report=r),
                                    expect_events=events, stdout="hash")
                if proc is None:
                    result.error = f"identity run: {probe.error}"
                    break
                report = probe.info["report"]
                outputs.append((proc.digest, proc.lines, report.get("outcomes"), report.get("requests")))
            if len(outputs) == 2:
                same = outputs[0] == outputs[1]
                self.notes.append(f"--workers {n} output: {'identical' if same else 'DIFFERENT'} "
                                  f"(sha256 {outputs[0][0][:12]}… vs {outputs[1][0][:12]}…, "
                                  f"{outputs[0][1]:,} vs {outputs[1][1]:,} lines; outcomes "
                                  f"{'equal' if outputs[0][2:] == outputs[1][2:] else 'differ'})")
        single = self.results.get("dry-plain")
        speedup = result.rate / single.rate if single and single.rate and result.rate else None
        ok = None if speedup is None or same is None else (speedup >= 1.6 and same)
        self.rows.append(Row(result, ratio=f"{speedup:.2f}x" if speedup else "",
                             target=">= 1.6x one process, same output",
                             verdict="ERROR" if result.error else verdict(ok)))

    # -- cluster mode ----------------------------------------------------------------------------

    def dask(self, plain: Path, events: int, size: int, files: int = 8) -> None:
        """1 vs 2 Dask workers (a LocalCluster of worker processes on this machine) beside the
        machine's parallel capacity, measured in the same section. The unit of work is a file:
        the input is cut into `files` files. Wall clock includes starting the LocalCluster (about
        3 s here); the run's own rate (the report's elapsed time, from the first file listed to
        the summary) is in the notes."""
        self.section(f"Cluster mode: replay --dry-run --dask local:1 vs local:2 ({files} files)")
        try:
            import distributed  # noqa: F401
        except ImportError:
            self.rows.append(Row(Result("replay --dask"), ratio="not available", verdict="n/a"))
            self.notes.append("--dask: the dask extra is not installed (pip install 'recombee-cli[dask]')")
            return
        folder = self.scratch / "dask-input"
        folder.mkdir(exist_ok=True)
        # Streamed, never the whole input in this process: children started later would report
        # its size as their peak RSS (ru_maxrss survives fork and exec).
        step = -(-events // files)
        with open(plain, "rb") as fh:
            for n in range(files):
                with open(folder / f"part-{n:03d}.ndjson", "wb") as part:
                    for _ in range(step):
                        line = fh.readline()
                        if not line:
                            break
                        part.write(line)
        capacity = self.parallel_capacity(plain, events, size, 2)
        results = {}
        for n in (1, 2):
            result = self.keep(f"dask-{n}", Result(f"replay --dry-run --dask local:{n}, {files} files",
                                                   events, size))
            for _ in range(self.args.repeat):
                proc = self.run_cli(result, lambda r: self.replay([str(folder)], "--dask", f"local:{n}", report=r),
                                    expect_events=events, sample_tree=True)
                if proc is None:
                    break
                own = result.info["report"]["events_per_second"]
                result.info["own_rate"] = max(result.info.get("own_rate", 0), own)
            results[n] = result
        one, two = results[1], results[2]
        ratio = two.rate / one.rate if one.rate and two.rate else None
        self.rows.append(Row(one))
        self.rows.append(Row(two, ratio=f"{ratio:.2f}x" if ratio else "",
                             target=f"near the parallel capacity ({capacity:.2f}x)" if capacity else ""))
        if one.info.get("own_rate") and two.info.get("own_rate"):
            self.notes.append(f"--dask without the cluster's start: local:1 {one.info['own_rate']:,.0f} events/s, "
                              f"local:2 {two.info['own_rate']:,.0f} events/s "
                              f"({two.info['own_rate'] / one.info['own_rate']:.2f}x); parallel capacity "
                              f"{capacity:.2f}x" if capacity else "")

    # -- 4. memory -------------------------------------------------------------------------------

    def memory(self, small: int, big: int) -> None:
        self.section("Memory: python bench/generate.py N | replay --dry-run --quiet - (RSS of replay only)")
        found = {}
        for count in (small, big):
            result = self.keep(f"mem-{count}", Result(f"replay --dry-run - <- generate.py {_short(count)}", count))
            feeder = [PYTHON, str(BENCH / "generate.py"), str(count), "--seed", str(self.args.seed)]
            self.run_cli(result, lambda r: self.replay(["-"], report=r), expect_events=count, feeder=feeder)
            found[count] = result
            self.rows.append(Row(result, verdict="ERROR" if result.error else ""))
        a, b = found[small], found[big]
        if a.rss_kb and b.rss_kb and not (a.error or b.error):
            peak = max(a.rss_kb, b.rss_kb) / 1024
            growth = b.rss_kb / a.rss_kb - 1
            self.rows.append(Row(label=f"peak RSS, max of {_short(small)} and {_short(big)}",
                                 ratio=f"{peak:.0f} MB", target="<= 150 MB", verdict=verdict(peak <= 150)))
            self.rows.append(Row(label=f"RSS growth {_short(small)} -> {_short(big)}", ratio=f"{growth:+.1%}",
                                 target="<= +10%", verdict=verdict(growth <= 0.10)))
        else:
            self.rows.append(Row(label="peak RSS <= 150 MB and flat", verdict="ERROR"))
        self.notes.append("memory rows: events/s there is the generator's pace (it feeds the pipe more "
                          "slowly than replay reads), not a replay figure")

    # -- 3. end to end ---------------------------------------------------------------------------

    def sdk_run(self, emu: Emulator, result: Result, path: Path) -> None:
        emu.reset_stats()
        proc = run_process([PYTHON, str(BENCH / "sdk_replay.py"), "--base-uri", emu.host_port,
                            "--database-id", DATABASE, str(path)], stdout="capture", env=self.env)
        if proc.returncode != 0:
            result.error = fail_text(proc, "sdk_replay.py")
            return
        data = json.loads(proc.stdout)
        data["emulator_sub_requests"] = emu.stats.sub_requests
        data["emulator_calls"] = emu.stats.batch_calls
        result.info["sdk"] = data
        result.add(proc)

    def cli_send(self, emu: Emulator, result: Result, path: Path, events: int, *extra: str) -> None:
        emu.reset_stats()
        cmd = lambda r: self.replay([str(path)], "--no-state", "--base-uri", emu.base_uri, "--allow-http",
                                    "--database-id", DATABASE, *extra, dry_run=False, report=r)
        if self.run_cli(result, cmd, expect_events=events):
            result.info["emulator_sub_requests"] = emu.stats.sub_requests
            result.info["emulator_calls"] = emu.stats.batch_calls

    def send_pair(self, key: str, emu: Emulator, path: Path, events: int, size: int, what: str,
                  target: float) -> None:
        """The SDK script, replay with its defaults, and replay --workers N (translation on every
        core), interleaved so that all three see the same machine weather."""
        sdk = self.keep(f"{key}-sdk", Result(f"official-SDK script -> emulator{what}", events, size))
        modes = [(self.keep(f"{key}-cli", Result(f"replay -> emulator{what} (defaults)", events, size)), ()),
                 (self.keep(f"{key}-cli-workers", Result(f"replay -> emulator{what}, --workers {self.args.workers}",
                                                          events, size)), ("--workers", str(self.args.workers)))]
        for _ in range(self.args.repeat):
            if not sdk.error:
                self.sdk_run(emu, sdk, path)
            for cli, extra in modes:
                if not cli.error:
                    self.cli_send(emu, cli, path, events, *extra)
        self.rows.append(Row(sdk))
        for cli, _ in modes:
            speedup = cli.rate / sdk.rate if cli.rate and sdk.rate else None
            self.rows.append(Row(cli, ratio=f"{speedup:.2f}x SDK" if speedup else "", target=f">= {target:g}x SDK",
                                 verdict="ERROR" if cli.error else verdict(None if speedup is None else speedup >= target)))
        self._request_note(what.strip(" ,") or "fast", sdk, modes[0][0])

    def _request_note(self, what: str, sdk: Result, cli: Result) -> None:
        s, c = sdk.info.get("sdk"), cli.info.get("report")
        if not s or not c:
            return
        self.notes.append(
            f"requests ({what}): recombee-cli {_n(c.get('requests', {}).get('sent'))} sent in "
            f"{_n(cli.info.get('emulator_calls'))} Batch calls (emulator counted "
            f"{_n(cli.info.get('emulator_sub_requests'))}; {_n(c.get('outcomes', {}).get('invalid'))} events "
            f"invalid, not sent); SDK script {_n(s.get('requests'))} in {_n(s.get('batches'))} calls "
            f"(emulator counted {_n(s.get('emulator_sub_requests'))}; it validates nothing)")

    def e2e(self, plain: Path, events: int, size: int) -> None:
        self.section("End to end into the local emulator (fast mode, 127.0.0.1, in the benchmark process)")
        with Emulator(DATABASE, TOKEN, fast=True) as emu:
            self.send_pair("e2e", emu, plain, events, size, "", 2.5)

    def sweep(self, path: Path, events: int, size: int) -> None:
        self.section(f"Sweep (extra, {_short(events)} events, best of {self.args.sweep_repeat}): "
                     "replay -> emulator (fast), one option changed")
        settings = [("default (--concurrency 4 --batch-size 1000)", ())] + \
            [(f"--concurrency {c}", ("--concurrency", str(c))) for c in (1, 8)] + \
            [(f"--batch-size {b}", ("--batch-size", str(b))) for b in (100, 5000)] + \
            [("--workers 2", ("--workers", "2"))]
        with Emulator(DATABASE, TOKEN, fast=True) as emu:
            base = None
            for label, extra in settings:
                result = self.keep(f"sweep-{label}", Result(f"replay -> emulator, {label}", events, size))
                for _ in range(self.args.sweep_repeat):
                    if not result.error:
                        self.cli_send(emu, result, path, events, *extra)
                base = base or result
                rel = result.rate / base.rate if result.rate and base.rate else None
                calls = result.info.get("emulator_calls")
                if calls:
                    result.label += f" ({calls:,} calls)"
                self.rows.append(Row(result, ratio=f"{rel:.2f}x default" if rel and result is not base else "",
                                     verdict="ERROR" if result.error else ""))

    def latency(self, path: Path, events: int, size: int) -> None:
        ms = self.args.latency
        self.section(f"End to end with {ms:g} ms per HTTP call injected ({_short(events)} events, both sides)")
        with Emulator(DATABASE, TOKEN, fast=True, latency=ms) as emu:
            self.send_pair("lat", emu, path, events, size, f", {ms:g} ms latency", 10)

    # -- all -------------------------------------------------------------------------------------

    def run(self) -> None:
        a, only = self.args, set(self.args.only)
        print("preparing inputs in", self.workdir, file=sys.stderr)
        plain = ensure_input(self.workdir, a.events, a.seed)
        gz = ensure_input(self.workdir, a.events, a.seed, gz=True)
        size = plain.stat().st_size
        self.inputs = {"plain": (plain, size), "gz": (gz, gz.stat().st_size)}
        steps = [
            ("floor", lambda: self.floor(plain, gz, a.events, size)),
            ("dryrun", lambda: self.dryrun(plain, gz, a.events, size, with_config="config" in only)),
            ("workers", lambda: self.workers(plain, a.events, size)),
            ("config", self.config_rows),
            ("memory", lambda: self.memory(a.events, a.memory_events)),
            ("e2e", lambda: self.e2e(plain, a.events, size)),
            ("sweep", lambda: self.sweep(*self._sized(a.sweep_events))),
            ("latency", lambda: self.latency(*self._sized(a.latency_events))),
            ("dask", lambda: self.dask(plain, a.events, size)),
        ]
        for name, step in steps:
            if name not in only and not (name == "dryrun" and "config" in only):
                continue
            started, meter = time.perf_counter(), LoadMeter()
            print(f"[{time.strftime('%H:%M:%S')}] {name} ...", file=sys.stderr, flush=True)
            try:
                step()
            except Exception as e:  # noqa: BLE001 - one broken section should not lose the others
                self.rows.append(Row(label=f"{name}: {type(e).__name__}: {e}"[:120], verdict="ERROR"))
                print(f"  {name} failed: {type(e).__name__}: {e}", file=sys.stderr)
            self.timings[name] = time.perf_counter() - started
            self.others[name] = meter.others()
        self.code_after = source_fingerprint()

    def _sized(self, count: int) -> tuple[Path, int, int]:
        count = min(count, self.args.events)
        path = ensure_input(self.workdir, count, self.args.seed)
        return path, count, path.stat().st_size

    def cleanup(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


def _default_cli() -> list[str]:
    script = Path(PYTHON).parent / "recombee-cli"
    return [str(script)] if script.exists() else [PYTHON, "-m", "recombee_cli"]


def _n(value) -> str:
    return f"{value:,}" if isinstance(value, int) else "?"


def _pct(ratio: float | None) -> str:
    return "" if ratio is None else f"{ratio:.1%}"


def _short(count: int) -> str:
    return f"{count / 1e6:g}M" if count >= 1_000_000 else f"{count / 1e3:g}k"


# ----------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------

def machine_header(bench: Bench) -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "-"

    mem = ""
    try:
        kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    plain, size = bench.inputs["plain"]
    gz, gz_size = bench.inputs["gz"]
    a = bench.args
    return [
        f"recombee-cli benchmark, {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"machine : {cpu}, {os.cpu_count()} cores ({usable} usable){mem}, {platform.system()} {platform.release()}",
        f"python  : {platform.python_implementation()} {platform.python_version()}; orjson {version('orjson')}, "
        f"httpx {version('httpx')}, isal {version('isal')}, recombee-cli {version('recombee-cli')}, "
        f"recombee-api-client {version('recombee-api-client')}",
        f"code    : {bench.code_before}" + ("" if bench.code_after == bench.code_before else
                                             f" -> CHANGED DURING THE RUN to {bench.code_after}"),
        f"input   : {a.events:,} events (seed {a.seed}), {size / 1e6:,.0f} MB plain, {gz_size / 1e6:,.0f} MB .gz; "
        f"{size / a.events:.0f} bytes/event; best of {a.repeat} runs; --workers "
        f"{'available' if bench.workers_available else 'not available'}",
        "RSS     : ru_maxrss of the measured process from os.wait4 (kernel peak); Σ = sampled sum over its process tree",
    ] + _disturbance(bench)


def _disturbance(bench: Bench) -> list[str]:
    busy = {name: load for name, load in bench.others.items() if load >= 0.15}
    if not busy:
        return ["load    : no other CPU load seen during the run (< 0.15 cores in every section)"]
    return ["WARNING : other processes used CPU during " + ", ".join(f"{n} ({l:.2f} cores)" for n, l in busy.items())
            + ": those figures are disturbed"]


def _fmt_rss(result: Result | None) -> str:
    if not result or not result.rss_kb:
        return ""
    text = f"{result.rss_kb / 1024:.0f} MB"
    if result.tree_rss_kb and result.tree_rss_kb > result.rss_kb * 1.05:
        text += f" (Σ{result.tree_rss_kb / 1024:.0f})"
    return text


def render(bench: Bench) -> str:
    head = ("measurement", "events/s", "MB/s", "peak RSS", "ratio", "target", "result")
    table = []
    for row in bench.rows:
        if row.section:
            table.append(row.section)
            continue
        r = row.result
        label = row.label or (r.label if r else "")
        if r and r.error:
            table.append((label, "error", "", "", "", row.target, "ERROR"))
            continue
        rate = f"{r.rate:,.0f}" if r and r.rate else (row.ratio if row.ratio == "not available" else "")
        ratio = "" if row.ratio == "not available" else row.ratio
        table.append((label, rate, f"{r.mbps:,.1f}" if r and r.mbps else "", _fmt_rss(r), ratio, row.target,
                      row.verdict))
    widths = [max(len(head[i]), *(len(t[i]) for t in table if isinstance(t, tuple))) for i in range(len(head))]
    right = {1, 2, 3, 4}

    def line(cells) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = machine_header(bench) + ["", line(head), line(["-" * w for w in widths])]
    for t in table:
        out.append(f"-- {t}" if isinstance(t, str) else line(t))
    errors = [(r.label, r.error) for r in bench.results.values() if r.error]
    if bench.notes or errors:
        out.append("")
        out += [f"note: {n}" for n in bench.notes]
        out += [f"error: {label}: {e}" for label, e in errors]
    spent = sum(bench.timings.values())
    out.append("")
    out.append("time per section (other load, cores): " + ", ".join(
        f"{k} {v:.0f}s ({bench.others.get(k, 0):.2f})" for k, v in bench.timings.items()) + f"; total {spent / 60:.1f} min")
    return "\n".join(out)


def to_json(bench: Bench) -> dict:
    return {"header": machine_header(bench), "timings": bench.timings, "other_load": bench.others,
            "notes": bench.notes,
            "results": {k: {"label": r.label, "events": r.events, "bytes": r.size, "seconds": r.seconds,
                            "runs": r.runs, "events_per_s": r.rate, "mb_per_s": r.mbps,
                            "peak_rss_kb": r.rss_kb, "tree_rss_kb": r.tree_rss_kb, "error": r.error}
                        for k, r in bench.results.items()},
            "rows": [{"label": row.label or (row.result.label if row.result else ""), "ratio": row.ratio,
                      "target": row.target, "result": row.verdict} for row in bench.rows if not row.section]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Sections: " + ", ".join(SECTIONS))
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the main input (default 1M)")
    parser.add_argument("--quick", action="store_true",
                        help="200k events (memory case 2M, sweep 50k)")
    parser.add_argument("--memory-events", type=int, help="the large streamed memory case (default 10x --events)")
    parser.add_argument("--latency-events", type=int,
                        help="input of the latency case, both sides (default 200k, 50k with --quick: the "
                             "SDK is slow there; below ~200k our start-up is a quarter of the run)")
    parser.add_argument("--latency", type=float, default=50.0, help="ms injected per HTTP call (default 50)")
    parser.add_argument("--sweep-events", type=int,
                        help="input of the sweep rows (default 200k; with --quick 50k)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement, best kept (default 2)")
    parser.add_argument("--sweep-repeat", type=int, default=1, help="runs per sweep row (default 1)")
    parser.add_argument("--workers", type=int,
                        default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                        help="N for --workers N (default: usable cores)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections to run")
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "recombee-cli-bench"),
                        help="where inputs are generated and kept for the next run")
    parser.add_argument("--cli", help="command to run instead of the venv's recombee-cli (e.g. another checkout)")
    parser.add_argument("--json", dest="json_path", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.events = 200_000 if args.events == 1_000_000 else args.events
    args.memory_events = args.memory_events or 10 * args.events
    args.sweep_events = args.sweep_events or (50_000 if args.quick else 200_000)
    args.latency_events = args.latency_events or (50_000 if args.quick else 200_000)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    return args


def main() -> None:
    args = parse_args()
    bench = Bench(args)
    started = time.perf_counter()
    try:
        bench.run()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        for pgid in list(_live):
            _kill_group(pgid)
        sys.exit(130)
    finally:
        bench.cleanup()
    text = render(bench)
    print(text)
    print(f"wall time {(time.perf_counter() - started) / 60:.1f} min", file=sys.stderr)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(to_json(bench), indent=2))


if __name__ == "__main__":
    main()
