"""`recombee-cli status`: what a state file knows (files done or pending, the last runs)."""

from __future__ import annotations

import glob
import os
from urllib.parse import unquote

import click
import orjson

from recombee_cli.cli import ui
from recombee_cli.cli.common import config_option, find_config
from recombee_cli.cli.environment import Command, Environment, text_stdout
from recombee_cli.cli.exits import Abort, ExitCode
from recombee_cli.mapping.config import load_config
from recombee_cli.recombee.service import database_id_problem
from recombee_cli.record.rejects import count_rejects
from recombee_cli.record.state import StateStore, default_state_path

EXAMPLES = """
recombee-cli status                                          # the state files there are, or the one
recombee-cli status --database-id shop-prod                  # files done and pending, rejects kept, runs
recombee-cli status --json --state /var/lib/recombee/shop.sqlite | jq '.files[] | select(.done | not)'
"""


@click.command(cls=Command, examples=EXAMPLES,
               short_help="What the state file knows: files done or pending, rejects kept, last runs.")
@click.option("--state", "state_path", type=click.Path(dir_okay=False),
              help="State file; default: the one for --database-id.")
@click.option("--database-id", envvar="RECOMBEE_DATABASE_ID", help="Picks the default state file.")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON on stdout.")
@click.pass_obj
def status(env: Environment, state_path, database_id, config_path, as_json) -> None:
    """Show what the state file knows: files done or part-done, the last runs, totals.

    Without --state or a database id (--database-id, RECOMBEE_DATABASE_ID, the config), the state
    files in the default folder are found: one is shown, several are listed (pick one with
    --database-id), none is said plainly (exit 0: nothing has been sent yet).
    """
    if not state_path:
        database_id = database_id or load_config(find_config(config_path)[0]).recombee.database_id
        if database_id:
            problem = database_id_problem(database_id)
            if problem:
                raise Abort(problem, ExitCode.USAGE)
            state_path = default_state_path(database_id)
        else:
            folder = os.path.dirname(default_state_path(None))
            found = sorted(glob.glob(os.path.join(glob.escape(folder), "*.sqlite")))
            if len(found) != 1:
                list_state_files(env, folder, found, as_json)
                return
            state_path = found[0]
    if not os.path.exists(state_path):
        raise Abort(f"no state file at {state_path} (nothing has been sent with it yet)", ExitCode.USAGE)
    store = StateStore(state_path)
    try:
        files = store.files()
        runs = store.runs(10)
        rejects_path = store.rejects_path
        owner = store.owner()
    finally:
        store.close()
    kept = count_rejects(rejects_path) or {}
    rejects = {"path": rejects_path, "count": sum(kept.values()), "by_outcome": kept}
    if as_json:
        env.stdout.write(orjson.dumps({
            "state": state_path, "database_id": owner[0], "endpoint": owner[1],
            "files": [{"path": f.path, "done": f.done, "offset": f.offset, "updated": f.updated,
                       "failed": f.failed, "refused": f.refused, "reason": f.reason} for f in files],
            "rejects": rejects,
            "runs": runs}, option=orjson.OPT_INDENT_2) + b"\n")
        return
    with text_stdout(env) as out:
        ui.print_status(out, state_path, files, runs, rejects, owner)


def list_state_files(env: Environment, folder: str, found: list[str], as_json: bool) -> None:
    if as_json:
        env.stdout.write(orjson.dumps({"folder": folder, "state_files": found}, option=orjson.OPT_INDENT_2) + b"\n")
        return
    with text_stdout(env) as out:
        if not found:
            out.write(f"no state file in {folder}: nothing has been sent with a state yet "
                      f"(sending runs keep one per database id there; --state FILE names another)\n")
            return
        out.write(f"{len(found)} state files in {folder}; show one with --database-id ID (or --state FILE):\n")
        for path in found:
            out.write(f"  {unquote(os.path.basename(path)[:-len('.sqlite')])}    {path}\n")
