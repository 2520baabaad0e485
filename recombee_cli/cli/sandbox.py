"""`recombee-cli sandbox`: the local Recombee emulator, to try everything offline."""

from __future__ import annotations

import ipaddress
import signal
import subprocess
import sys
from typing import Any

import click

from recombee_cli.cli.common import check_writable
from recombee_cli.cli.environment import Command, Environment, say
from recombee_cli.cli.exits import Abort, ExitCode, Terminated

DEFAULT_TOKEN = "sandbox-token"

EXAMPLES = """
recombee-cli sandbox --store sandbox.sqlite &                # keep what was sent in a file
RECOMBEE_PRIVATE_TOKEN=sandbox-token recombee-cli replay \\
    --base-uri http://127.0.0.1:8910 --allow-http --database-id demo sample_events/
RECOMBEE_PRIVATE_TOKEN=sandbox-token recombee-cli show user alice@example.com \\
    --base-uri http://127.0.0.1:8910 --allow-http --database-id demo   # what arrived
recombee-cli sandbox --port 0 --p-5xx 0.1 --latency-ms 50    # a flaky, slow Recombee on a free port
"""


@click.command(cls=Command, examples=EXAMPLES,
               short_help="Run a local Recombee emulator, to try everything offline.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8910, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: a free one, printed when ready).")
@click.option("--database-id", default="demo", show_default=True,
              help="The one database it serves: replay's --database-id must name it.")
@click.option("--token", default=DEFAULT_TOKEN, show_default=True,
              help="The private token the sandbox accepts (a throwaway, not a real one).")
@click.option("--store", type=click.Path(dir_okay=False),
              help="SQLite file to keep what was sent (default: in memory).")
@click.option("--fast", is_flag=True, help="Accept and count only, store nothing (benchmarks).")
@click.option("--latency-ms", type=click.FloatRange(0, 600_000), default=0.0,
              help="Delay every HTTP call by this much.")
@click.option("--p-5xx", type=click.FloatRange(0, 1), default=0.0, help="Probability of a 503 per call.")
@click.option("--p-429", type=click.FloatRange(0, 1), default=0.0, help="Probability of a 429 per call.")
@click.option("--p-drop", type=click.FloatRange(0, 1), default=0.0,
              help="Probability of dropping the connection mid-reply (after executing).")
@click.option("--tls", is_flag=True,
              help="Serve https with a throwaway self-signed certificate, whose path is printed "
                   "(REQUESTS_CA_BUNDLE=PATH lets the official SDK, Batch included, work unmodified). "
                   "Needs the `cryptography` package (pip install 'recombee-cli[sandbox]') or the "
                   "openssl command.")
@click.pass_obj
def sandbox(env: Environment, host, port, database_id, token, store, fast, latency_ms, p_5xx, p_429,
            p_drop, tls) -> None:
    """Run a local Recombee emulator to try everything offline.

    It checks signatures as Recombee does, executes Batch calls request by request (409 for a
    duplicate, 404 without cascadeCreate, faults on demand), stores users, items, their properties
    (with types) and interactions, and answers the official SDK's reads and `recombee-cli show`:
    GetUserValues, ListUsers, ListUserDetailViews, ListItemProperties...
    """
    from recombee_cli.recombee.emulator import Emulator, Faults

    if not database_id or not all(c.isalnum() or c in "-_" for c in database_id):
        raise Abort(f"--database-id {database_id!r}: use letters, digits, - and _", ExitCode.USAGE)
    if not token:
        raise Abort("--token must not be empty", ExitCode.USAGE)
    if p_5xx + p_429 > 1:
        raise Abort("--p-5xx and --p-429 together must not exceed 1", ExitCode.USAGE)
    if store:
        check_writable(store, "--store")
    if token == DEFAULT_TOKEN and not _loopback(host):
        say(env, "warning", f"--host {host} lets other machines reach the sandbox, and its token is the "
                            f"default one, which anyone can read in --help: pass --token with a secret of "
                            f"your own, or keep --host 127.0.0.1")
    faults = Faults(p_503=p_5xx, p_429=p_429, p_drop=p_drop)
    emulator = Emulator(database_id, token, store_path=store, fast=fast, faults=faults, host=host,
                        port=port, latency=latency_ms, tls=tls)

    def ready(emu) -> None:
        env.stderr.write(f"Recombee emulator on {emu.base_uri} (database {database_id!r}, "
                         f"store {store or 'in memory'}); Ctrl-C to stop\n")
        if emu.cert_path:
            env.stderr.write(f"TLS certificate: {emu.cert_path}\n"
                             f"  official SDK: REQUESTS_CA_BUNDLE={emu.cert_path}, "
                             f"options={{'base_uri': '{emu.host_port}'}}\n")
        env.stderr.flush()

    terminated = []

    def stop(signum: int, frame: Any) -> None:
        terminated.append(signum)
        raise Terminated   # serve_forever stops like after Ctrl-C: its temporary key is removed

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        emulator.serve_forever(on_ready=ready)
    except (ImportError, FileNotFoundError, subprocess.CalledProcessError) as exc:
        raise Abort(f"--tls cannot make a certificate ({exc}): install the cryptography package "
                    f"(pip install 'recombee-cli[sandbox]') or the openssl command", ExitCode.USAGE) from None
    except OSError as exc:
        raise Abort(f"cannot listen on {host}:{port}: {exc.strerror or exc}", ExitCode.USAGE) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    if terminated:
        sys.exit(int(ExitCode.TERMINATED))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False   # a name: it may resolve to anything
