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
from datetime import UTC, datetime
from pathlib import Path

from recombee_cli.recombee.batching import DEFAULT_CONCURRENCY
from recombee_cli.recombee.emulator import Emulator

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = sys.executable
DATABASE, TOKEN = "bench", "bench-token"
CLI_EXIT_OK = (0, 1)           # 1: the generated exports hold invalid events on purpose ('Home Page')
SECTIONS = ("floor", "dryrun", "workers", "config", "memory", "e2e", "latency", "client", "sweep", "instructions",
            "startup", "dask")
MIXES = ("server", "browser")   # bench/generate.py --mix
TIMEOUT = 3 * 3600             # per process; a hung run is killed (its process group only)

# The targets of the performance issue (#16). Ratios of rates measured in the same run.
# The dry run's are issue 28's (cheaper requests): one process, of the orjson floor (CPU time).
TARGET_DRY_OF_FLOOR = {"browser": 1.10, "server": 0.80}
TARGET_DRY_STRETCH = {"server": 0.75}
TARGET_WORKERS_OF_CAPACITY = 0.9     # --workers N speed-up >= 0.9 x what N floor loops at once get
TARGET_SEND_SDK = 2.0                # replay -> emulator (defaults) vs the official-SDK script, 0 ms
TARGET_LATENCY_HIDDEN = 0.95         # rate at --latency ms >= 0.95 x rate at 0 ms, same input
TARGET_RSS_SEND_MB = 150
TARGET_RSS_DRY_MB = 60
TARGET_RSS_GROWTH = 0.10             # 1x -> 10x events, streamed
TARGET_CONFIG = 0.10                 # 50 extra mappings: instructions per event (callgrind)
TARGET_TRIGGERS = 0.15               # 50 property-comparison triggers: instructions per event (callgrind)
TARGET_INSTRUCTIONS_FEWER = 0.35     # instructions per event of a dry run vs --baseline-rev
TARGET_INSTRUCTIONS_MIX = "server"
# The targets of "merges exactly once" (#21), on the server mix with its aliases.
TARGET_LATENCY_HIDDEN_SLOW = 0.90    # rate at --latency-slow ms >= 0.90 x rate at 0 ms
TARGET_SEND_SDK_LATENCY = 4.0        # replay -> emulator at --latency ms vs the SDK script at the same latency
TARGET_BATCH_CALLS = 1.15            # Batch calls <= 1.15 x ceil(requests / batch size)
TARGET_STARTUP_INSTRUCTIONS = 415e6  # `recombee-cli --version`, whole process (about 830 M at f34c24e)
TARGET_CLIENT_CPU = 1.5              # client CPU per request <= 1.5 x a minimal sequential httpx sender's
# The targets of "a cluster that scales" (#28, item 4).
TARGET_DASK_OF_CAPACITY = 0.8        # --dask local:2 vs local:1 (the runs' own rates) >= 0.8 x capacity, 8 files
TARGET_DASK_WORKER_RSS_MB = 300      # peak RSS of each Dask worker process, --dask local:2 on one big file
PARALLEL_JUDGED = 1.2                # a parallel row is judged only where N processes get >= 1.2x one
STARTUP_BASELINE = "f34c24e"         # the revision the start-up row is shown beside


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
    cpu_seconds: float | None = None   # user + system CPU from wait4: this process and its waited-for children
    child_rss_kb: int | None = None    # sampled peak VmRSS of the largest single process below it (sample_tree)
    root_rss_kb: int | None = None     # sampled peak VmRSS of the process itself, without its children (sample_tree)


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


def _tree_rss_kb(pid: int, below: dict[int, int] | None = None) -> int:
    """The sum of VmRSS over the process tree; `below` keeps each process's peak."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        rss = _vm_rss_kb(p)
        total += rss
        if below is not None and rss > below.get(p, 0):
            below[p] = rss
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
        below: dict[int, int] = {}
        sampler = None
        if sample_tree:
            def sample() -> None:
                while not done.wait(0.02):
                    tree_peak[0] = max(tree_peak[0], _tree_rss_kb(proc.pid, below))
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
                    lines[0] if stdout == "hash" else None, usage.ru_utime + usage.ru_stime,
                    max((v for p, v in below.items() if p != proc.pid), default=0) or None,
                    below.get(proc.pid))


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
    seconds: float | None = None   # best run (wall)
    cpu_seconds: float | None = None   # least CPU time (user + system, the process and its workers) of the runs
    rss_kb: int | None = None      # worst run
    tree_rss_kb: int | None = None
    child_rss_kb: int | None = None   # worst run: the largest process below the measured one
    error: str | None = None
    info: dict = field(default_factory=dict)
    runs: list[float] = field(default_factory=list)
    cpu_runs: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        return self.events / self.seconds if self.events and self.seconds and not self.error else None

    @property
    def cpu_rate(self) -> float | None:
        """events per CPU-second: what the process costs, which moves much less with the machine's load
        than its wall time (for a process that waits, e.g. on the network, it is not a speed)."""
        return self.events / self.cpu_seconds if self.events and self.cpu_seconds and not self.error else None

    @property
    def mbps(self) -> float | None:
        return self.size / self.seconds / 1e6 if self.size and self.seconds and not self.error else None

    def add(self, proc: Proc) -> None:
        self.runs.append(proc.seconds)
        self.seconds = min(self.runs)
        if proc.cpu_seconds:
            self.cpu_runs.append(proc.cpu_seconds)
            self.cpu_seconds = min(self.cpu_runs)
        self.rss_kb = max(self.rss_kb or 0, proc.rss_kb)
        if proc.tree_rss_kb:
            self.tree_rss_kb = max(self.tree_rss_kb or 0, proc.tree_rss_kb)
        if proc.child_rss_kb:
            self.child_rss_kb = max(self.child_rss_kb or 0, proc.child_rss_kb)


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


def input_name(count: int, seed: int, mix: str = "server") -> str:
    return f"{'events' if mix == 'server' else mix}-{count}-s{seed}.ndjson"


def ensure_input(workdir: Path, count: int, seed: int, gz: bool = False, mix: str = "server") -> Path:
    """events-N-sS.ndjson[.gz] (server mix) or browser-N-sS.ndjson[.gz] in workdir, generated by
    bench/generate.py unless already there with the size recorded when it was made (and the same
    generator)."""
    plain = workdir / input_name(count, seed, mix)
    path = plain.with_name(plain.name + ".gz") if gz else plain
    meta_path = path.with_name(path.name + ".meta.json")
    meta = {"count": count, "seed": seed, "mix": mix, "generator": _generator_id()}
    if path.exists() and meta_path.exists():
        known = json.loads(meta_path.read_text())
        if {k: known.get(k) for k in meta} == meta and known.get("size") == path.stat().st_size:
            return path
    partial = path.with_name(path.name + ".part")
    started = time.perf_counter()
    if gz:
        source = ensure_input(workdir, count, seed, mix=mix)
        # mtime=0 and no file name: the same events give the same bytes (stdlib zlib, level 6 like gzip -6)
        with open(source, "rb") as src, open(partial, "wb") as raw, \
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as out:
            shutil.copyfileobj(src, out, 1 << 20)
    else:
        with open(partial, "wb") as out:
            subprocess.run([PYTHON, str(BENCH / "generate.py"), str(count), "--seed", str(seed), "--mix", mix],
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


# The conditions of trigger_mappings_toml, by turns: numbers, a string, contains() and a path the
# events do not have, none of them true of the generated events.
TRIGGER_CONDITIONS = ("properties.price > {big}", "properties.quantity >= {n}000", 'properties.category = "Category {n}"',
                      'contains(properties.name, "zz{n}")', "properties.discount.amount > {n}")


def trigger_mappings_toml(path: Path, count: int = 50) -> Path:
    """Presets plus `count` custom mappings on every track event whose triggers compare a property
    (none of them true of the generated events: the cost measured is the triggers', every one of
    which is asked about every track event)."""
    parts = ["# recombee-cli benchmark: the presets plus mappings with property triggers\n[replay]\npresets = true\n"]
    for n in range(1, count + 1):
        condition = TRIGGER_CONDITIONS[(n - 1) % len(TRIGGER_CONDITIONS)].format(n=n, big=1000000 + n)
        parts.append(f'\n[[mappings]]\nname = "Trigger {n}"\n'
                     f"trigger = 'type = \"track\" and {condition}'\n"
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
        self.mixes: list[str] = list(args.mixes)
        self.mix: str = self.mixes[0]                   # the mix being measured
        self.inputs: dict[str, dict] = {}
        self.results: dict[str, Result] = {}
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.timings: dict[str, float] = {}
        self.others: dict[str, float] = {}       # per section: cores used by other processes
        self.code_before = source_fingerprint()
        self.code_after = self.code_before
        self.workers_available = "--workers" in self._help()
        # Which build runs ("compiled: cython ..." or "pure Python ..."): a compiled build also gets
        # its pure-Python build measured (RECOMBEE_CLI_PURE=1, the same install) beside it.
        self.build = self._build()
        self.compiled = self.build.startswith("compiled")
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

    def _build(self) -> str:
        done = subprocess.run(self.cli + ["--version"], capture_output=True, text=True, cwd=ROOT)
        text = done.stdout.strip()
        return text[text.find("(") + 1:-1] if text.endswith(")") else "pure Python"

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
        return cmd + (self.one_process(extra) if dry_run else []) + list(extra) + inputs

    def one_process(self, extra: tuple[str, ...] | list[str] = ()) -> list[str]:
        """`--workers 1` for a dry run that asks for no workers or cluster: a one-process row must
        stay one process now that `--workers auto` (the default) forks workers for inputs of 32 MB
        or more (the browser mix's 20k events are 42 MB), which callgrind would not count and the
        floor's one loop would be compared with. Sending rows keep the defaults they are named for."""
        chosen = "--workers" in extra or "--dask" in extra
        return ["--workers", "1"] if self.workers_available and not chosen else []

    def run_cli(self, result: Result, cmd_for, *, expect_events: int | None, stdout: str = "devnull",
                feeder: list[str] | None = None, sample_tree: bool = False, env: dict | None = None) -> Proc | None:
        """One run of recombee-cli: cmd_for(report_path) -> argv. Checks exit code and event count."""
        report = self.report_path()
        proc = run_process(cmd_for(report), feeder=feeder, stdout=stdout, env=env or self.env, sample_tree=sample_tree)
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
        """Keep a result of the mix being measured (results of both mixes live side by side)."""
        self.results[f"{self.mix}:{key}"] = result
        return result

    def got(self, key: str) -> Result | None:
        return self.results.get(f"{self.mix}:{key}")

    def section(self, title: str) -> None:
        self.rows.append(Row(section=f"[{self.mix} mix] {title}"))

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
        pure = None
        if self.compiled:
            pure = self.keep("dry-pure", Result("replay --dry-run, plain file, pure-Python build", events, size))
        # The floor beside the rows it judges, run for run: a floor measured in an earlier section saw
        # another moment of the machine's weather.
        floor = self.keep("floor-beside", Result("floor: orjson loads+dumps, plain (interleaved with these rows)",
                                                 events, size))
        for _ in range(self.args.repeat):
            if not floor.error:
                proc = run_process([PYTHON, str(BENCH / "floor.py"), "orjson", str(plain)], stdout="capture")
                if proc.returncode != 0:
                    floor.error = fail_text(proc, "floor.py")
                else:
                    floor.add(proc)
            if not single.error:
                self.run_cli(single, lambda r: self.replay([str(plain)], report=r), expect_events=events)
            if pure and not pure.error:
                self.run_cli(pure, lambda r: self.replay([str(plain)], report=r), expect_events=events,
                             env=dict(self.env, RECOMBEE_CLI_PURE="1"))
            if custom and not custom.error:
                self.run_cli(custom, lambda r: self.replay([str(plain)], "--config", str(toml), report=r),
                             expect_events=events)
            if not zipped.error:
                self.run_cli(zipped, lambda r: self.replay([str(gz)], report=r), expect_events=events)
        self.rows.append(Row(floor))
        target = TARGET_DRY_OF_FLOOR[self.mix]
        for result, goal in ((single, target), (zipped, None)):
            cpu, wall = _ratio(result.cpu_rate, floor and floor.cpu_rate), _ratio(result.rate, floor and floor.rate)
            text = f"{cpu:.1%} of floor (wall {wall:.1%})" if cpu and wall else ""
            self.rows.append(Row(result, ratio=text,
                                 target="" if goal is None else f">= {goal:.0%} of plain floor (CPU, issue 28's dry-run target)",
                                 verdict="ERROR" if result.error else
                                 ("" if goal is None else verdict(None if cpu is None else cpu >= goal))))
        if pure:
            cpu, wall = _ratio(pure.cpu_rate, floor and floor.cpu_rate), _ratio(pure.rate, floor and floor.rate)
            gain = _ratio(single.cpu_rate, pure.cpu_rate)
            text = f"{cpu:.1%} of floor (wall {wall:.1%})" if cpu and wall else ""
            if gain:
                text += f"; compiled {gain:.2f}x its CPU rate"
            self.rows.append(Row(pure, ratio=text, verdict="ERROR" if pure.error else ""))
        stretch = TARGET_DRY_STRETCH.get(self.mix)
        if stretch:
            cpu = _ratio(single.cpu_rate, floor and floor.cpu_rate)
            self.rows.append(Row(label="  stretch (issue 16): the same row", ratio=f"{cpu:.1%}" if cpu else "",
                                 target=f">= {stretch:.0%} of plain floor (CPU)",
                                 verdict="ERROR" if single.error else verdict(None if cpu is None else cpu >= stretch)))
        if custom:
            base = single.info.get("report", {}).get("requests", {}).get("sent")
            got = custom.info.get("report", {}).get("requests", {}).get("sent")
            if base is not None and got is not None and base != got:
                self.notes.append(f"[{self.mix}] config cost: presets alone built {base:,} requests, presets + 50 "
                                  f"custom {got:,} (the custom events are not in the input; they should be equal)")

    def config_rows(self) -> None:
        custom, single = self.got("dry-custom"), self.got("dry-plain")
        if not custom:
            return
        self.section("Cost of configuration: 50 custom mappings besides the presets (same input)")
        ok = not (custom.error or single is None or single.error)
        extra = custom.cpu_seconds / single.cpu_seconds - 1 if ok and custom.cpu_seconds and single.cpu_seconds else None
        wall = custom.seconds / single.seconds - 1 if ok and custom.seconds and single.seconds else None
        # The target is judged on instructions per event (the `instructions` section): one run's CPU
        # time moved by more than the 10 % this compares with, while the counts do not move.
        self.rows.append(Row(custom, ratio="" if extra is None else f"{extra:+.1%} CPU time (wall {wall:+.1%})",
                             target="(target: see instructions)",
                             verdict="ERROR" if custom.error else ""))

    # -- 2. both cores ---------------------------------------------------------------------------

    def workers(self, plain: Path, events: int, size: int) -> None:
        """The machine's parallel capacity (the floor loop alone, then N copies started together,
        aggregate events/s) and replay in one process and with --workers N, all interleaved: what
        --workers gains is compared with what N CPU-bound processes get from this machine at the
        same time. Virtual cores are not always whole cores: seen here from 1.15x to 1.77x for two.
        Beside them, not judged, N one-process replays at once: what the machine gives the tool's own
        work, of which the --workers row says what share the pool keeps."""
        n = self.args.workers
        self.section(f"Both cores: replay --dry-run --workers {n} beside the machine's parallel capacity (plain file)")
        one = self.keep("floor-one", Result("floor: orjson, one process", events, size))
        many = self.keep("floor-many", Result(f"floor: orjson, {n} processes at once (aggregate)", n * events, n * size))
        single = self.keep("dry-single-w", Result("replay --dry-run, one process", events, size))
        # What N replays of one process each get at once: the machine's capacity for this tool's work
        # (more memory touched an event than the floor's loop), beside the --workers row; not judged.
        copies = self.keep("dry-copies", Result(f"replay --dry-run, {n} one-process runs at once (aggregate)",
                                                n * events, n * size))
        label = f"replay --dry-run --workers {n}, plain file"
        result = self.keep("dry-workers", Result(label, events, size))
        if not self.workers_available:
            result.error = "not available (`recombee-cli replay --help` does not mention --workers)"
        cmd = [PYTHON, str(BENCH / "floor.py"), "orjson", str(plain)]
        for _ in range(self.args.repeat):
            proc = run_process(cmd, stdout="capture")
            if proc.returncode != 0:
                one.error = fail_text(proc, "floor.py")
                break
            one.add(proc)
            together = run_together(cmd, n)
            if isinstance(together, str):
                many.error = together
                break
            many.add(together)
            if not single.error:
                self.run_cli(single, lambda r: self.replay([str(plain)], report=r), expect_events=events)
            if not copies.error:
                together = run_together(self.replay([str(plain)]), n, env=self.env, ok=CLI_EXIT_OK)
                if isinstance(together, str):
                    copies.error = together
                else:
                    copies.add(together)
            if not result.error:
                self.run_cli(result, lambda r: self.replay([str(plain)], "--workers", str(n), report=r),
                             expect_events=events, sample_tree=True)
        capacity = _ratio(many.rate, one.rate)
        own = _ratio(copies.rate, single.rate)
        self.rows.append(Row(one))
        self.rows.append(Row(many, ratio=f"{capacity:.2f}x one process (capacity)" if capacity else ""))
        self.rows.append(Row(single))
        self.rows.append(Row(copies, ratio=f"{own:.2f}x one process (not judged: the tool's own work, "
                                           f"{n} at once)" if own else "",
                             verdict="ERROR" if copies.error else ""))
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
                self.notes.append(f"[{self.mix}] --workers {n} output: {'identical' if same else 'DIFFERENT'} "
                                  f"(sha256 {outputs[0][0][:12]}… vs {outputs[1][0][:12]}…, "
                                  f"{outputs[0][1]:,} vs {outputs[1][1]:,} lines; outcomes "
                                  f"{'equal' if outputs[0][2:] == outputs[1][2:] else 'differ'})")
        speedup = _ratio(result.rate, single.rate)
        goal = TARGET_WORKERS_OF_CAPACITY * capacity if capacity else None
        ok = None if speedup is None or same is None or goal is None else (speedup >= goal and same)
        judged = capacity is not None and capacity >= PARALLEL_JUDGED
        of_copies = f" ({speedup / own:.2f} of {n} one-process runs)" if speedup and own else ""
        self.rows.append(Row(result, ratio=f"{speedup:.2f}x one process{of_copies}" if speedup else "",
                             target=f">= {TARGET_WORKERS_OF_CAPACITY:g} x capacity"
                                    + (f" = {goal:.2f}x" if goal else "") + ", same output",
                             verdict="ERROR" if result.error else verdict(ok) if judged else
                             f"not judged (capacity {capacity:.2f}x < {PARALLEL_JUDGED:g})" if capacity else "n/a"))

    # -- cluster mode ----------------------------------------------------------------------------

    def parallel_capacity(self, plain: Path, events: int, size: int, n: int) -> float | None:
        """What N CPU-bound processes get from this machine: the floor loop once, then N copies at
        once (aggregate events/s), interleaved; for sections that need it beside their own rows."""
        one = self.keep("capacity-one", Result("floor: orjson, one process (beside the next rows)", events, size))
        many = self.keep("capacity-many", Result(f"floor: orjson, {n} processes at once (aggregate)",
                                                 n * events, n * size))
        cmd = [PYTHON, str(BENCH / "floor.py"), "orjson", str(plain)]
        for _ in range(self.args.repeat):
            proc = run_process(cmd, stdout="capture")
            if proc.returncode != 0:
                one.error = fail_text(proc, "floor.py")
                return None
            one.add(proc)
            together = run_together(cmd, n)
            if isinstance(together, str):
                many.error = together
                return None
            many.add(together)
        capacity = _ratio(many.rate, one.rate)
        self.rows.append(Row(one))
        self.rows.append(Row(many, ratio=f"{capacity:.2f}x one process (capacity)" if capacity else ""))
        return capacity

    def dask(self, plain: Path, events: int, size: int, files: int = 8) -> None:
        """1 vs 2 Dask workers (a LocalCluster of worker processes on this machine) beside the
        machine's parallel capacity and one process, measured in the same section, interleaved.
        The input is cut into `files` files. Wall clock includes starting the LocalCluster (about
        3 s here), so the rows judged compare the runs' own rates (the report's elapsed time, from
        the first file listed to the summary). Then the whole input as one file with local:2: the
        peak RSS of each worker process (a file is streamed in segments, so it should not depend
        on the file's size)."""
        self.section(f"Cluster mode: replay --dry-run --dask local:1 vs local:2 ({files} files), one big file")
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
        single = self.keep("dask-single", Result(f"replay --dry-run --workers 1, {files} files", events, size))
        results = {n: self.keep(f"dask-{n}", Result(f"replay --dry-run --dask local:{n}, {files} files", events, size))
                   for n in (1, 2)}

        def own(result: Result) -> None:
            rate = result.info["report"]["events_per_second"]
            result.info["own_rate"] = max(result.info.get("own_rate", 0), rate)

        for _ in range(self.args.repeat):
            if self.run_cli(single, lambda r: self.replay([str(folder)], "--workers", "1", report=r),
                            expect_events=events) is not None:
                own(single)
            for n, result in results.items():
                if result.error:
                    continue
                if self.run_cli(result, lambda r, n=n: self.replay([str(folder)], "--dask", f"local:{n}", report=r),
                                expect_events=events, sample_tree=True) is not None:
                    own(result)
        one, two = results[1], results[2]
        self.rows.append(Row(single))
        self.rows.append(Row(one))
        self.rows.append(Row(two, ratio=f"{two.rate / one.rate:.2f}x local:1 (wall)" if one.rate and two.rate else ""))
        judged = capacity is not None and capacity >= PARALLEL_JUDGED
        not_judged = f"not judged (capacity {capacity:.2f}x < {PARALLEL_JUDGED:g})" if capacity else "n/a"
        rates = [r.info.get("own_rate") for r in (single, one, two)]
        if all(rates):
            s_rate, o_rate, t_rate = rates
            speedup = t_rate / o_rate
            goal = TARGET_DASK_OF_CAPACITY * capacity if capacity else None
            self.rows.append(Row(label=f"--dask local:2 vs local:1, {files} files (the runs' own rates)",
                                 ratio=f"{speedup:.2f}x",
                                 target=f">= {TARGET_DASK_OF_CAPACITY:g} x capacity" + (f" = {goal:.2f}x" if goal else ""),
                                 verdict=verdict(speedup >= goal) if judged and goal else not_judged))
            self.rows.append(Row(label=f"--dask local:2 vs one process, {files} files (own rates)",
                                 ratio=f"{t_rate / s_rate:.2f}x", target=">= 1.0x (not slower)",
                                 verdict=verdict(t_rate >= s_rate) if judged else not_judged))
            self.notes.append(f"--dask without the cluster's start: one process {s_rate:,.0f} events/s, local:1 "
                              f"{o_rate:,.0f}, local:2 {t_rate:,.0f} events/s; parallel capacity "
                              + (f"{capacity:.2f}x" if capacity else "n/a"))
        else:
            self.rows.append(Row(label="--dask local:2 vs local:1 and one process", verdict="ERROR"))
        big = self.keep("dask-big", Result(f"replay --dry-run --dask local:2, one {size / 1e6:,.0f} MB file", events, size))
        proc = self.run_cli(big, lambda r: self.replay([str(plain)], "--dask", "local:2", report=r),
                            expect_events=events, sample_tree=True)
        self.rows.append(Row(big))
        if proc is not None and proc.child_rss_kb:
            worker = proc.child_rss_kb / 1024
            self.rows.append(Row(label=f"peak RSS per Dask worker, one {size / 1e6:,.0f} MB file",
                                 ratio=f"{worker:.0f} MB (driver {(proc.root_rss_kb or 0) / 1024:.0f} MB)",
                                 target=f"<= {TARGET_DASK_WORKER_RSS_MB} MB (a 700 MB file)",
                                 verdict=verdict(worker <= TARGET_DASK_WORKER_RSS_MB)))
            if size < 600e6:
                self.notes.append(f"--dask worker RSS measured on a {size / 1e6:,.0f} MB file, not 700 MB: a file is "
                                  "read in segments, so it should not grow with the size; run with --events 1000000 "
                                  "(745 MB) to measure it there")
        else:
            self.rows.append(Row(label="peak RSS per Dask worker", verdict="ERROR"))

    # -- 4. memory -------------------------------------------------------------------------------

    def memory(self, small: int, big: int) -> None:
        self.section("Memory: python bench/generate.py N | replay --dry-run --quiet - (RSS of replay only)")
        found = {}
        for count in (small, big):
            result = self.keep(f"mem-{count}", Result(f"replay --dry-run - <- generate.py {_short(count)}", count))
            feeder = [PYTHON, str(BENCH / "generate.py"), str(count), "--seed", str(self.args.seed), "--mix", self.mix]
            self.run_cli(result, lambda r: self.replay(["-"], report=r), expect_events=count, feeder=feeder)
            found[count] = result
            self.rows.append(Row(result, verdict="ERROR" if result.error else ""))
        a, b = found[small], found[big]
        if a.rss_kb and b.rss_kb and not (a.error or b.error):
            dry = [r for r in (a, b, self.got("dry-plain"), self.got("dry-gz")) if r and r.rss_kb and not r.error]
            peak = max(r.rss_kb for r in dry) / 1024
            growth = b.rss_kb / a.rss_kb - 1
            self.rows.append(Row(label=f"peak RSS of the one-process dry runs ({len(dry)} rows)",
                                 ratio=f"{peak:.0f} MB", target=f"<= {TARGET_RSS_DRY_MB} MB",
                                 verdict=verdict(peak <= TARGET_RSS_DRY_MB)))
            self.rows.append(Row(label=f"RSS growth {_short(small)} -> {_short(big)}", ratio=f"{growth:+.1%}",
                                 target=f"<= +{TARGET_RSS_GROWTH:.0%}", verdict=verdict(growth <= TARGET_RSS_GROWTH)))
        else:
            self.rows.append(Row(label="peak RSS and growth", verdict="ERROR"))
        if "generator's pace" not in " ".join(self.notes):
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

    def send_modes(self, key: str, events: int, size: int, what: str) -> tuple[Result, list[tuple[Result, tuple]]]:
        sdk = self.keep(f"{key}-sdk", Result(f"official-SDK script -> emulator{what}", events, size))
        modes = [(self.keep(f"{key}-cli", Result(f"replay -> emulator{what} (defaults)", events, size)), ()),
                 (self.keep(f"{key}-cli-workers", Result(f"replay -> emulator{what}, --workers {self.args.workers}",
                                                          events, size)), ("--workers", str(self.args.workers)))]
        return sdk, modes

    def e2e(self, plain: Path, events: int, size: int, with_latency: bool) -> None:
        """The SDK script, replay with its defaults and replay --workers N, at 0 ms per HTTP call and,
        on the same input, at --latency and --latency-slow ms: all interleaved (the emulator's
        latency is changed between runs), so that every ratio compares runs that saw the same
        machine weather. Each row says how many requests its side sent, in how many calls."""
        ms, slow = self.args.latency, self.args.latency_slow
        self.section("End to end into the local emulator (fast mode, 127.0.0.1, in the benchmark process)")
        settings = [(0.0, "e2e", "")]
        if with_latency:
            settings += [(ms, "lat", f", {ms:g} ms latency"), (slow, "slow", f", {slow:g} ms latency")]
        groups = {key: self.send_modes(key, events, size, what) for _, key, what in settings}
        with Emulator(DATABASE, TOKEN, fast=True) as emu:
            try:
                for _ in range(self.args.repeat):
                    for latency, key, _what in settings:
                        emu.latency = latency
                        sdk, modes = groups[key]
                        if not sdk.error:
                            self.sdk_run(emu, sdk, plain)
                        for cli, extra in modes:
                            if not cli.error:
                                self.cli_send(emu, cli, plain, events, *extra)
            finally:
                emu.latency = 0.0
        sdk, modes = groups["e2e"]
        self.rows.append(Row(sdk, ratio=self._sent(sdk)))
        for n, (cli, _) in enumerate(modes):
            speedup = _ratio(cli.rate, sdk.rate)
            goal = TARGET_SEND_SDK if n == 0 else None
            self.rows.append(Row(cli, ratio=(f"{speedup:.2f}x SDK; " if speedup else "") + self._sent(cli),
                                 target=f">= {goal:g}x SDK" if goal else "",
                                 verdict="ERROR" if cli.error else
                                 ("" if goal is None else verdict(None if speedup is None else speedup >= goal))))
        self.batch_calls_row(modes[0][0])
        sending = [cli for cli, _ in modes]
        for latency, key, _what in settings[1:]:
            hidden_goal = TARGET_LATENCY_HIDDEN if key == "lat" else TARGET_LATENCY_HIDDEN_SLOW
            self.section(f"The same input with {latency:g} ms per HTTP call (interleaved with the rows above)")
            slow_sdk, slow_modes = groups[key]
            hidden = _ratio(slow_sdk.rate, sdk.rate)
            self.rows.append(Row(slow_sdk, ratio=(f"{hidden:.1%} of its 0 ms rate; " if hidden else "")
                                 + self._sent(slow_sdk)))
            for n, ((cli, _), (fast, _)) in enumerate(zip(slow_modes, modes)):
                hidden, speedup = _ratio(cli.rate, fast.rate), _ratio(cli.rate, slow_sdk.rate)
                text = (f"latency hidden {hidden:.1%}" if hidden else "") + \
                    (f" ({speedup:.2f}x SDK)" if speedup else "") + "; " + self._sent(cli)
                judged = n == 0   # the defaults are judged; --workers is for reference
                self.rows.append(Row(cli, ratio=text,
                                     target=f">= {hidden_goal:.0%} of its 0 ms row" if judged else "",
                                     verdict="ERROR" if cli.error or fast.error else
                                     (verdict(None if hidden is None else hidden >= hidden_goal) if judged else "")))
                if judged and key == "lat":
                    self.rows.append(Row(label=f"  the same row against the SDK script at {latency:g} ms",
                                         ratio=f"{speedup:.2f}x SDK" if speedup else "",
                                         target=f">= {TARGET_SEND_SDK_LATENCY:g}x SDK",
                                         verdict="ERROR" if cli.error or slow_sdk.error else
                                         verdict(None if speedup is None else speedup >= TARGET_SEND_SDK_LATENCY)))
            sending += [cli for cli, _ in slow_modes]
        measured = [r for r in sending if r.rss_kb and not r.error]
        if measured:
            peak = max(r.rss_kb for r in measured) / 1024
            self.rows.append(Row(label=f"peak RSS sending (max of {len(measured)} rows above)", ratio=f"{peak:.0f} MB",
                                 target=f"<= {TARGET_RSS_SEND_MB} MB", verdict=verdict(peak <= TARGET_RSS_SEND_MB)))

    @staticmethod
    def _sent(result: Result) -> str:
        """What a sending row sent, as the emulator counted it: requests and Batch calls; and for
        recombee-cli, how many requests waited for an answer about their user (its --report)."""
        if result.error:
            return ""
        info = result.info.get("sdk") or result.info
        requests, calls = info.get("emulator_sub_requests"), info.get("emulator_calls")
        held = (result.info.get("report") or {}).get("held_back")   # (recombee-cli's rows only)
        return (f"{_n(requests)} requests in {_n(calls)} calls" if requests is not None else "") + \
            (f", {_n(held)} held back for an answer" if held else "")

    def batch_calls_row(self, cli: Result) -> None:
        """Full Batches: the defaults' Batch calls against the least that could carry their requests."""
        calls, requests = cli.info.get("emulator_calls"), cli.info.get("emulator_sub_requests")
        size = 1000   # the default --batch-size
        ideal = -(-requests // size) if requests else None
        ratio = calls / ideal if calls and ideal else None
        judged = self.mix == "server"
        self.rows.append(Row(label="  Batch calls of the defaults row / ceil(requests / batch size)",
                             ratio=f"{ratio:.2f} ({_n(calls)} calls, {_n(ideal)} at least)" if ratio else "",
                             target=f"<= {TARGET_BATCH_CALLS:g}" if judged else "",
                             verdict="ERROR" if cli.error else
                             (verdict(None if ratio is None else ratio <= TARGET_BATCH_CALLS) if judged else "")))

    def client(self, plain: Path, events: int, size: int) -> None:
        """The client's CPU per request (bench/client_path.py): recombee-cli's sender against a minimal
        sequential httpx sender, the same requests (a dry run's) to the same emulator, interleaved."""
        self.section("Client path: CPU per request, recombee-cli's sender vs a minimal sequential httpx sender")
        requests_file = self.scratch / f"requests-{self.mix}.ndjson"
        with open(requests_file, "wb") as out:
            done = subprocess.run(self.replay([str(plain)]), stdout=out, stderr=subprocess.PIPE, cwd=ROOT,
                                  env=self.env)
        results = {mode: self.keep(f"client-{mode}", Result(f"{label}: CPU per request")) for mode, label in
                   (("minimal", "minimal sequential httpx sender"),
                    ("threads", f"the same, on {DEFAULT_CONCURRENCY} threads (reference, not a target)"),
                    ("sender", "recombee-cli's RecombeeSender"))}
        if done.returncode not in CLI_EXIT_OK:
            results["sender"].error = f"the dry run for its requests exited {done.returncode}"
            self.rows.append(Row(results["sender"]))
            return
        best: dict[str, float] = {}
        with Emulator(DATABASE, TOKEN, fast=True) as emu:
            for _ in range(self.args.repeat):
                for mode, result in results.items():
                    if result.error:
                        continue
                    proc = run_process([PYTHON, str(BENCH / "client_path.py"), mode, "--base-uri", emu.base_uri,
                                        "--database-id", DATABASE, "--token", TOKEN, str(requests_file)],
                                       stdout="capture", env=self.env)
                    if proc.returncode != 0:
                        result.error = fail_text(proc, "client_path.py")
                        continue
                    data = json.loads(proc.stdout)
                    best[mode] = min(best.get(mode, float("inf")), data["us_per_request"])
                    result.info.update(data)
        ratio = _ratio(best.get("sender"), best.get("minimal"))
        for mode, result in results.items():
            text = f"{best[mode]:.2f} us/request" if mode in best else ""
            if mode == "sender" and ratio:
                text += f", {ratio:.2f}x the minimal sender's"
            elif mode == "threads" and _ratio(best.get(mode), best.get("minimal")):
                # what many calls in flight cost here by themselves, before any ordering
                text += f", {_ratio(best[mode], best['minimal']):.2f}x the sequential one's"
            self.rows.append(Row(result, ratio=text,
                                 target=f"<= {TARGET_CLIENT_CPU:g}x minimal" if mode == "sender" else "",
                                 verdict="ERROR" if result.error else
                                 (verdict(None if ratio is None else ratio <= TARGET_CLIENT_CPU)
                                  if mode == "sender" else "")))

    def startup(self) -> None:
        """Instructions of a whole `recombee-cli --version` under callgrind (interpreter start and
        imports: what every command pays), for this checkout and STARTUP_BASELINE."""
        self.section("Start-up: instructions of `recombee-cli --version` (callgrind, whole process)")
        if not shutil.which("valgrind"):
            self.rows.append(Row(label="start-up instructions: valgrind not found", verdict="n/a"))
            return
        env = dict(self.env, PYTHONHASHSEED="0")
        neutral = self.scratch / "cwd"
        neutral.mkdir(exist_ok=True)
        programs = [("this checkout", dict(env, PYTHONPATH=str(ROOT)))]
        try:
            base = export_revision(STARTUP_BASELINE, self.scratch / "startup-base")
            programs.append((f"git {STARTUP_BASELINE}", dict(env, PYTHONPATH=str(base))))
        except (subprocess.CalledProcessError, OSError) as e:
            self.notes.append(f"start-up baseline {STARTUP_BASELINE}: could not export ({e})")
        counts = {}
        for label, penv in programs:
            counts[label] = callgrind_count([PYTHON, "-m", "recombee_cli", "--version"], penv, neutral)
        mine = counts["this checkout"]
        base_count = counts.get(f"git {STARTUP_BASELINE}")
        for label, count in counts.items():
            judged = label == "this checkout"
            text = f"{count / 1e6:,.0f} M instructions" if isinstance(count, int) else str(count)
            if judged and isinstance(mine, int) and isinstance(base_count, int):
                text += f" ({mine / base_count:.0%} of {STARTUP_BASELINE}'s)"
            self.rows.append(Row(label=f"recombee-cli --version, {label}", ratio=text,
                                 target=f"<= {TARGET_STARTUP_INSTRUCTIONS / 1e6:,.0f} M" if judged else "",
                                 verdict=("ERROR" if not isinstance(count, int) else
                                          verdict(count <= TARGET_STARTUP_INSTRUCTIONS)) if judged else ""))

    def sweep(self, path: Path, events: int, size: int) -> None:
        self.section(f"Sweep (extra, {_short(events)} events, best of {self.args.sweep_repeat}): "
                     "replay -> emulator (fast), one option changed")
        settings = [("default (--concurrency 8 --batch-size 1000)", ())] + \
            [(f"--concurrency {c}", ("--concurrency", str(c))) for c in (1, 16)] + \
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
                rel = _ratio(result.rate, base.rate)
                calls = result.info.get("emulator_calls")
                if calls:
                    result.label += f" ({calls:,} calls)"
                self.rows.append(Row(result, ratio=f"{rel:.2f}x default" if rel and result is not base else "",
                                     verdict="ERROR" if result.error else ""))

    # -- 6. instructions -------------------------------------------------------------------------

    def instructions(self, mixes: list[str]) -> None:
        """Instructions per event of a dry run under callgrind: the figure that does not move with
        the machine's load. Each program runs on the first --instructions-events events and on the
        first half of them; (I(N) - I(N/2)) / (N - N/2) is the cost per event without what every run
        pays once: its start-up, and the summary printed at its end (rich imported, a table drawn:
        about 130 M instructions on the server mix, which a run of the first event alone, valid,
        never printed, so an earlier I(N) - I(1) counted it as 6.4k an event of 20k). Measured
        for this checkout, for --baseline-rev (its recombee_cli/ exported into a temporary directory)
        and for the floor's loop; runs go --workers at a time (the counts do not depend on that)."""
        a = self.args
        if not shutil.which("valgrind"):
            self.section("Instructions per event (callgrind)")
            self.rows.append(Row(label="instructions per event: valgrind not found", verdict="n/a"))
            return
        count = a.instructions_events
        programs: list[tuple[str, str, list[str], dict]] = []     # (key, label, argv before the file, env)
        env = dict(self.env, PYTHONHASHSEED="0")
        env.pop("PYTHONPATH", None)
        programs.append(("floor", "floor: orjson loads+dumps", [PYTHON, str(BENCH / "floor.py"), "orjson"], env))
        dry_run = [PYTHON, "-m", "recombee_cli", "replay", "--dry-run", "--quiet", *self.one_process()]
        programs.append(("head", f"this checkout ({self.code_before.split(',')[0]})",
                         dry_run, dict(env, PYTHONPATH=str(ROOT))))
        custom = custom_mappings_toml(self.scratch / "custom-50.toml")
        programs.append(("custom", "this checkout, presets + 50 custom mappings (--config)",
                         [*dry_run, "--config", str(custom)], dict(env, PYTHONPATH=str(ROOT))))
        triggers = trigger_mappings_toml(self.scratch / "triggers-50.toml")
        programs.append(("triggers", "this checkout, presets + 50 property-comparison triggers (--config)",
                         [*dry_run, "--config", str(triggers)], dict(env, PYTHONPATH=str(ROOT))))
        if self.compiled:
            programs.append(("pure", "this checkout, pure-Python build (RECOMBEE_CLI_PURE=1)",
                             dry_run, dict(env, PYTHONPATH=str(ROOT), RECOMBEE_CLI_PURE="1")))
        baseline = None
        if a.baseline_rev:
            try:
                baseline = export_revision(a.baseline_rev, self.scratch / "baseline")
            except (subprocess.CalledProcessError, OSError) as e:
                self.notes.append(f"baseline {a.baseline_rev}: could not export ({e})")
            if baseline:
                # One process there too, where that revision has --workers (an older one has no auto).
                has_workers = any('"--workers"' in f.read_text(errors="replace")
                                  for f in (baseline / "recombee_cli").rglob("*.py"))
                programs.append(("base", f"baseline git {a.baseline_rev}",
                                 [PYTHON, "-m", "recombee_cli", "replay", "--dry-run", "--quiet",
                                  *(["--workers", "1"] if has_workers else [])],
                                 dict(env, PYTHONPATH=str(baseline))))
        jobs = []
        for mix in mixes:
            big = ensure_input(self.workdir, count, a.seed, mix=mix)
            half = self.scratch / f"first-half-{mix}.ndjson"
            with open(big, "rb") as f:
                half.write_bytes(b"".join(f.readline() for _ in range(count // 2)))
            for key, _label, argv, penv in programs:
                for n, path in ((count, big), (count // 2, half)):
                    jobs.append(((mix, key, n), argv + [str(path)], penv))
        neutral = self.scratch / "cwd"      # not the checkout: '' on sys.path would shadow PYTHONPATH
        neutral.mkdir(exist_ok=True)
        counted: dict[tuple, int | str] = {}

        def work(job) -> None:
            name, argv, penv = job
            counted[name] = callgrind_count(argv, penv, neutral)

        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(max(1, a.workers)) as pool:
            list(pool.map(work, jobs))
        for mix in mixes:
            self.mix = mix
            self.section(f"Instructions per event (callgrind, dry run of the first {_short(count)} events minus "
                         f"a run of the first {_short(count // 2)}; does not move with the machine's load)")
            per: dict[str, float | None] = {}
            for key, label, _argv, _env in programs:
                whole, start = counted.get((mix, key, count)), counted.get((mix, key, count // 2))
                if isinstance(whole, int) and isinstance(start, int):
                    per[key] = (whole - start) / (count - count // 2)
                else:
                    per[key] = None
                    err = whole if isinstance(whole, str) else start
                    self.notes.append(f"[{mix}] instructions, {label}: {err}")
                self.results[f"{mix}:instr-{key}"] = Result(label, info={"per_event": per[key], "total": whole,
                                                                         "start": start})
            floor = per.get("floor")
            for key, label, _argv, _env in programs:
                value = per.get(key)
                text = f"{value:,.0f} instr/event" if value else "ERROR"
                if value and floor and key != "floor":
                    text += f" (floor {floor / value:.1%})"
                target, result = "", ""
                if key == "head" and per.get("pure") and value:
                    text += f", {1 - value / per['pure']:.1%} fewer than pure Python"
                if key == "custom" and per.get("head") and value:
                    extra = value / per["head"] - 1
                    text += f", {extra:+.1%} per event vs the presets alone"
                    target = f"<= +{TARGET_CONFIG:.0%} per event vs no config"
                    result = verdict(extra <= TARGET_CONFIG)
                if key == "triggers" and per.get("head") and value:
                    extra = value / per["head"] - 1
                    text += f", {extra:+.1%} per event vs the presets alone"
                    target = f"<= +{TARGET_TRIGGERS:.0%} per event vs no config"
                    result = verdict(extra <= TARGET_TRIGGERS)
                if key == "head" and "base" in per:
                    base = per["base"]
                    fewer = 1 - value / base if value and base else None
                    if fewer is not None:
                        text += f", {abs(fewer):.1%} {'fewer' if fewer >= 0 else 'more'} than {a.baseline_rev}"
                    if mix == TARGET_INSTRUCTIONS_MIX:
                        target = f">= {TARGET_INSTRUCTIONS_FEWER:.0%} fewer than {a.baseline_rev}"
                        result = verdict(None if fewer is None else fewer >= TARGET_INSTRUCTIONS_FEWER)
                self.rows.append(Row(label=f"instructions: {label}", ratio=text, target=target,
                                     verdict="ERROR" if not value else result))

    # -- all -------------------------------------------------------------------------------------

    def run(self) -> None:
        a, only = self.args, set(self.args.only)
        print("preparing inputs in", self.workdir, file=sys.stderr)
        self.inputs = {}
        if only & {"floor", "dryrun", "workers", "config", "e2e", "latency", "client", "dask"}:
            for mix in self.mixes:
                plain = ensure_input(self.workdir, a.events, a.seed, mix=mix)
                gz = ensure_input(self.workdir, a.events, a.seed, gz=True, mix=mix)
                self.inputs[mix] = {"plain": (plain, plain.stat().st_size), "gz": (gz, gz.stat().st_size)}

        def main_input(mix: str) -> tuple[Path, Path, int, int]:
            (plain, size), (gz, _) = self.inputs[mix]["plain"], self.inputs[mix]["gz"]
            return plain, gz, a.events, size

        steps = [
            ("floor", lambda mix: self.floor(*main_input(mix))),
            ("dryrun", lambda mix: self.dryrun(*main_input(mix), with_config="config" in only)),
            ("workers", lambda mix: self.workers(main_input(mix)[0], a.events, main_input(mix)[3])),
            ("config", lambda mix: self.config_rows()),
            ("memory", lambda mix: self.memory(a.events, a.memory_events)),
            ("e2e", lambda mix: self.e2e(main_input(mix)[0], a.events, main_input(mix)[3],
                                         with_latency="latency" in only)),
            ("client", lambda mix: self.client(main_input(mix)[0], a.events, main_input(mix)[3])),
            ("sweep", lambda mix: self.sweep(*self._sized(a.sweep_events, mix))),
            ("instructions", None),
            ("startup", "once"),
            ("dask", lambda mix: self.dask(main_input(mix)[0], a.events, main_input(mix)[3])),
        ]
        for name, step in steps:
            wanted = name in only or (name == "dryrun" and "config" in only) or (name == "e2e" and "latency" in only)
            if not wanted:
                continue
            mixes = self.mixes
            started, meter = time.perf_counter(), LoadMeter()
            print(f"[{time.strftime('%H:%M:%S')}] {name} ...", file=sys.stderr, flush=True)
            try:
                if step is None:
                    self.instructions(mixes)
                elif step == "once":
                    self.startup()
                else:
                    for mix in mixes:
                        self.mix = mix
                        print(f"[{time.strftime('%H:%M:%S')}]   {mix} mix", file=sys.stderr, flush=True)
                        here = LoadMeter()
                        step(mix)
                        self.load_row(here.others())
            except Exception as e:  # noqa: BLE001 - one broken section should not lose the others
                self.rows.append(Row(label=f"{name}: {type(e).__name__}: {e}"[:120], verdict="ERROR"))
                print(f"  {name} failed: {type(e).__name__}: {e}", file=sys.stderr)
            self.timings[name] = time.perf_counter() - started
            self.others[name] = meter.others()
        self.code_after = source_fingerprint()

    def load_row(self, load: float) -> None:
        """Each section says whether other processes used the CPU while it ran."""
        seen = load >= 0.15
        self.rows.append(Row(label="  other load during this section",
                             ratio=f"{load:.2f} cores" + (": these figures are disturbed" if seen else " (none seen)"),
                             verdict="WARNING" if seen else ""))

    def _sized(self, count: int, mix: str) -> tuple[Path, int, int]:
        count = min(count, self.args.events)
        path = ensure_input(self.workdir, count, self.args.seed, mix=mix)
        return path, count, path.stat().st_size

    def cleanup(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


def run_together(cmd: list[str], n: int, env: dict | None = None, ok: tuple[int, ...] = (0,)) -> Proc | str:
    """N copies of a command started together: one Proc for the lot (wall time until the last
    ends, the largest RSS, the CPU time of all), or why it failed (an exit code not in `ok`)."""
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=env)
             for _ in range(n)]
    waited = [os.wait4(p.pid, 0) for p in procs]
    seconds = time.perf_counter() - start
    for p in procs:
        p.returncode = 0      # reaped by wait4 above
    codes = [os.waitstatus_to_exitcode(status) for _, status, _ in waited]
    if any(code not in ok for code in codes):
        return f"{cmd[1] if len(cmd) > 1 else cmd[0]} exited {codes}"
    return Proc(seconds, max(u.ru_maxrss for *_, u in waited), None, 0, b"", b"",
                cpu_seconds=sum(u.ru_utime + u.ru_stime for *_, u in waited))


def _default_cli() -> list[str]:
    script = Path(PYTHON).parent / "recombee-cli"
    return [str(script)] if script.exists() else [PYTHON, "-m", "recombee_cli"]


def _n(value) -> str:
    return f"{value:,}" if isinstance(value, int) else "?"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


# ----------------------------------------------------------------------------------------------
# Instructions (callgrind) and other revisions
# ----------------------------------------------------------------------------------------------

def parse_callgrind(stderr: str) -> int:
    """The total instruction count valgrind's callgrind prints at exit: "==PID== Collected : N" (the
    "I   refs:" line as a fallback; both are in valgrind 3.x)."""
    import re
    found = re.findall(r"^==\d+==\s+Collected\s*:\s*([\d,]+)\s*$", stderr, re.M) or \
        re.findall(r"^==\d+==\s+I\s+refs:\s*([\d,]+)\s*$", stderr, re.M)
    if not found:
        raise ValueError("no 'Collected :' or 'I refs:' line in valgrind's output")
    return int(found[-1].replace(",", ""))


def callgrind_count(argv: list[str], env: dict, cwd: Path, timeout: float = TIMEOUT) -> int | str:
    """Instructions executed by ``argv`` under callgrind (its stdout thrown away; children not
    traced), or a one-line error. recombee-cli's exit codes 0 and 1 are accepted."""
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv]
    try:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env=env, cwd=cwd, timeout=timeout, text=True, errors="replace")
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{type(e).__name__}: {e}"
    if done.returncode not in CLI_EXIT_OK:
        tail = [l for l in done.stderr.splitlines() if not l.startswith("==")][-2:]
        return f"exited {done.returncode}: " + " | ".join(tail)
    try:
        return parse_callgrind(done.stderr)
    except ValueError as e:
        return str(e)


def export_revision(rev: str, into: Path) -> Path:
    """recombee_cli/ as of git ``rev``, exported into ``into`` (a directory for PYTHONPATH) and
    compiled to bytecode, so that its start-up costs what an installed copy's does."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", "--format=tar", rev, "recombee_cli"], cwd=ROOT,
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(into / "recombee_cli")], check=True,
                   stdout=subprocess.DEVNULL)
    return into


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
    a = bench.args
    inputs = [f"input   : {mix}: {a.events:,} events (seed {a.seed}), {d['plain'][1] / 1e6:,.0f} MB plain, "
              f"{d['gz'][1] / 1e6:,.0f} MB .gz; {d['plain'][1] / a.events:.0f} bytes/event"
              for mix, d in bench.inputs.items()]
    return [
        f"recombee-cli benchmark, {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"machine : {cpu}, {os.cpu_count()} cores ({usable} usable){mem}, {platform.system()} {platform.release()}",
        f"python  : {platform.python_implementation()} {platform.python_version()}; orjson {version('orjson')}, "
        f"httpx {version('httpx')}, isal {version('isal')}, recombee-cli {version('recombee-cli')}, "
        f"recombee-api-client {version('recombee-api-client')}",
        f"code    : {bench.code_before}" + _code_change(bench.code_before, bench.code_after),
        f"build   : {bench.build}" + ("; pure-Python rows: the same install with RECOMBEE_CLI_PURE=1"
                                     if bench.compiled else ""),
    ] + inputs + [
        f"runs    : best of {a.repeat} runs (wall and CPU time each); --workers "
        f"{'available' if bench.workers_available else 'not available'}",
        "RSS     : ru_maxrss of the measured process from os.wait4 (kernel peak); Σ = sampled sum over its process tree",
        "CPU     : events per CPU-second, user + system from os.wait4 (the process and its waited-for workers);"
        " the ratios of one-process dry runs use it, those of parallel and sending rows use wall time",
    ] + _disturbance(bench)


def _code_change(before: str, after: str) -> str:
    """Only a change of recombee_cli/ sources matters; a commit of other files only moves HEAD."""
    if after == before:
        return ""
    if after.split(", ")[1] == before.split(", ")[1]:
        return f" (HEAD moved to {after.split(',')[0][4:]} during the run; recombee_cli/ unchanged)"
    return f" -> CHANGED DURING THE RUN to {after}"


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
    head = ("measurement", "events/s", "CPU ev/s", "MB/s", "peak RSS", "ratio", "target", "result")
    table = []
    for row in bench.rows:
        if row.section:
            table.append(row.section)
            continue
        r = row.result
        label = row.label or (r.label if r else "")
        if r and r.error:
            table.append((label, "error", "", "", "", "", row.target, "ERROR"))
            continue
        rate = f"{r.rate:,.0f}" if r and r.rate else (row.ratio if row.ratio == "not available" else "")
        ratio = "" if row.ratio == "not available" else row.ratio
        cpu = f"{r.cpu_rate:,.0f}" if r and r.cpu_rate else ""
        table.append((label, rate, cpu, f"{r.mbps:,.1f}" if r and r.mbps else "", _fmt_rss(r), ratio, row.target,
                      row.verdict))
    widths = [max(len(head[i]), *(len(t[i]) for t in table if isinstance(t, tuple))) for i in range(len(head))]
    right = {1, 2, 3, 4}

    def line(cells) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = machine_header(bench) + ["", line(head), line(["-" * w for w in widths])]
    for t in table:
        out.append(f"-- {t}" if isinstance(t, str) else line(t))
    errors = [(key.split(":")[0], r.label, r.error) for key, r in bench.results.items() if r.error]
    verdicts = [row.verdict for row in bench.rows if row.verdict in ("MET", "NOT MET", "ERROR")]
    out.append("")
    out.append(f"targets: {verdicts.count('MET')} met, {verdicts.count('NOT MET')} not met"
               + (f", {verdicts.count('ERROR')} errors" if "ERROR" in verdicts else ""))
    if bench.notes or errors:
        out.append("")
        out += [f"note: {n}" for n in bench.notes]
        out += [f"error: [{mix}] {label}: {e}" for mix, label, e in errors]
    spent = sum(bench.timings.values())
    out.append("")
    out.append("time per section (other load, cores): " + ", ".join(
        f"{k} {v:.0f}s ({bench.others.get(k, 0):.2f})" for k, v in bench.timings.items()) + f"; total {spent / 60:.1f} min")
    return "\n".join(out)


def to_json(bench: Bench) -> dict:
    return {"header": machine_header(bench), "timings": bench.timings, "other_load": bench.others,
            "notes": bench.notes,
            "results": {k: {"label": r.label, "events": r.events, "bytes": r.size, "seconds": r.seconds,
                            "runs": r.runs, "cpu_seconds": r.cpu_seconds, "cpu_runs": r.cpu_runs,
                            "events_per_s": r.rate, "events_per_cpu_s": r.cpu_rate, "mb_per_s": r.mbps,
                            "peak_rss_kb": r.rss_kb, "tree_rss_kb": r.tree_rss_kb,
                            "child_rss_kb": r.child_rss_kb, "error": r.error,
                            **({"instructions": r.info} if k.split(":", 1)[1].startswith("instr-") else {})}
                        for k, r in bench.results.items()},
            "rows": [{"section": section, "label": row.label or (row.result.label if row.result else ""),
                      "ratio": row.ratio, "target": row.target, "result": row.verdict}
                     for section, row in _with_sections(bench.rows) if not row.section]}


def _with_sections(rows: list[Row]):
    section = ""
    for row in rows:
        section = row.section or section
        yield section, row


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Sections: " + ", ".join(SECTIONS))
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the main input (default 1M)")
    parser.add_argument("--quick", action="store_true",
                        help="200k events (memory case 2M, sweep 50k)")
    parser.add_argument("--mix", choices=(*MIXES, "both"), default="both",
                        help="event mix of the inputs: server (analytics-python, ~745 B/event), browser "
                             "(analytics.js, ~2.1 KB/event) or both (default; every ratio for each)")
    parser.add_argument("--memory-events", type=int, help="the large streamed memory case (default 10x --events)")
    parser.add_argument("--latency", type=float, default=50.0,
                        help="ms injected per HTTP call in the latency rows, on the same input as the 0 ms "
                             "rows (default 50)")
    parser.add_argument("--latency-slow", type=float, default=150.0,
                        help="ms per HTTP call in the second latency rows (default 150)")
    parser.add_argument("--sweep-events", type=int,
                        help="input of the sweep rows (default 200k; with --quick 50k)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement, best kept (default 2)")
    parser.add_argument("--sweep-repeat", type=int, default=1, help="runs per sweep row (default 1)")
    parser.add_argument("--workers", type=int,
                        default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                        help="N for --workers N (default: usable cores)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections to run")
    parser.add_argument("--instructions", action="store_true",
                        help="only the instructions section (the same as --only instructions)")
    parser.add_argument("--instructions-events", type=int, default=20_000,
                        help="events in the callgrind runs (default 20k; ~40 s each under callgrind)")
    parser.add_argument("--baseline-rev", default="2eddf24",
                        help="git revision whose instructions per event the target compares with (default "
                             "2eddf24: main when the second performance issue was filed); '' for none")
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "recombee-cli-bench"),
                        help="where inputs are generated and kept for the next run")
    parser.add_argument("--cli", help="command to run instead of the venv's recombee-cli (e.g. another checkout)")
    parser.add_argument("--json", dest="json_path", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.events = 200_000 if args.events == 1_000_000 else args.events
    args.memory_events = args.memory_events or 10 * args.events
    args.sweep_events = args.sweep_events or (50_000 if args.quick else 200_000)
    args.mixes = list(MIXES) if args.mix == "both" else [args.mix]
    if args.instructions:
        args.only = "instructions"
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
