"""`recombee-cli show user|item ID`: what Recombee holds for one user or item, read back."""

from __future__ import annotations

import datetime
import sys

import click
import orjson

from recombee_cli.cli.common import address_options, config_option, find_config
from recombee_cli.cli.environment import Command, Environment, say, text_stdout
from recombee_cli.cli.exits import ExitCode, exit_codes_help

SHOW_EXIT_CODES_HELP = exit_codes_help({
    ExitCode.OK: "found: its values and interactions are printed",
    ExitCode.FINISHED_WITH_ERRORS: "Recombee has no such user or item",
    ExitCode.USAGE: "usage or configuration error (no database id, no token, an ID Recombee never holds)",
    ExitCode.ABORTED: "Recombee refused the credentials (401/403), did not answer, or answered an error",
})

EXAMPLES = """
export RECOMBEE_PRIVATE_TOKEN=...                   # (never on the command line)
recombee-cli show user alice@example.com --database-id shop-prod --region us-west
recombee-cli show item sku-1001 --database-id shop-prod --json | jq '.interactions.purchases[0]'
RECOMBEE_PRIVATE_TOKEN=sandbox-token recombee-cli show user alice@example.com \\
    --base-uri http://127.0.0.1:8910 --allow-http --database-id demo   # what a sandbox run sent
"""

_SAID_ELSEWHERE = {"userId", "itemId", "timestamp"}


def _when(stamp) -> str:
    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
        moment = datetime.datetime.fromtimestamp(stamp, datetime.UTC)
        return moment.strftime("%Y-%m-%d %H:%M:%S") + "Z"
    return "(no timestamp)"


def _short(value, limit: int = 60) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= limit else text[:limit - 1] + "…"


@click.command(cls=Command, epilog=SHOW_EXIT_CODES_HELP, examples=EXAMPLES,
               short_help="Read back what Recombee holds for a user or an item.")
@click.argument("entity", type=click.Choice(["user", "item"]))
@click.argument("key", metavar="ID")
@config_option
@click.option("--database-id", envvar="RECOMBEE_DATABASE_ID",
              help="Recombee database id (else [recombee] database_id).")
@address_options
@click.option("--limit", type=click.IntRange(min=0), default=10, show_default=True,
              help="Interactions shown per kind, newest first (0: all). --json lists them all.")
@click.option("--json", "as_json", is_flag=True,
              help="Print {values, interactions: {kind: [...]}} as JSON on stdout, every interaction, newest first.")
@click.pass_obj
def show(env: Environment, entity, key, config_path, database_id, region, base_uri, token_file, allow_http,
         limit, as_json) -> None:
    """Show what Recombee holds for user or item ID: its property values and its interactions of
    each kind (detail views, purchases, cart additions, bookmarks, ratings, view portions), newest
    first. Read with signed GETs, as the official SDK reads them, from Recombee or a sandbox.
    """
    from recombee_cli.pipeline.connect import find_target, make_client
    from recombee_cli.pipeline.readback import read_holding

    target = find_target(database_id, token_file=token_file, region=region, base_uri=base_uri,
                         allow_http=allow_http, config=find_config(config_path)[0], environ=env.environ,
                         warn=lambda message: say(env, "warning", message))
    client = make_client(target, concurrency=1)
    try:
        holding = read_holding(client, entity, key)
    finally:
        client.close()
    if as_json:
        env.stdout.write(orjson.dumps({**holding.to_dict(), "database_id": target.database_id},
                                      option=orjson.OPT_INDENT_2) + b"\n")
    elif not holding.found:
        say(env, "error", f"Recombee has no {entity} {key!r} in database {target.database_id!r} "
                          f"({target.base_url})")
    else:
        with text_stdout(env) as out:
            print_holding(out, holding, f"database {target.database_id!r} at {target.base_url}", limit)
    sys.exit(int(ExitCode.OK if holding.found else ExitCode.FINISHED_WITH_ERRORS))


def print_holding(out, holding, where: str, limit: int) -> None:
    other = "itemId" if holding.entity == "user" else "userId"
    out.write(f"{holding.entity} {holding.id} ({where})\n")
    values = holding.values
    out.write(f"values: {'none' if not values else len(values)}\n")
    width = max((len(name) for name in values), default=0)
    for name, value in sorted(values.items()):
        out.write(f"  {name:<{width}}  {_short(value)}\n")
    total = sum(len(rows) for rows in holding.interactions.values())
    out.write(f"interactions: {'none' if not total else f'{total:,}, newest first'}\n")
    for kind, rows in holding.interactions.items():
        if not rows:
            continue
        out.write(f"  {kind}: {len(rows):,}\n")
        for row in rows[:limit or None]:
            rest = ", ".join(f"{k} {_short(v)}" for k, v in row.items() if k not in _SAID_ELSEWHERE)
            out.write(f"    {_when(row.get('timestamp'))}  {other} {row.get(other)}" + (f"  {rest}" if rest else "")
                      + "\n")
        if limit and len(rows) > limit:
            out.write(f"    ... and {len(rows) - limit:,} more (--limit 0 shows all)\n")
