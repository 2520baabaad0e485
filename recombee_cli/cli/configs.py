"""`presets` and `import-segment`: configurations to start from, written as TOML."""

from __future__ import annotations

import os

import click

from recombee_cli.cli.environment import Command, Environment
from recombee_cli.cli.tomlout import mappings_toml, value
from recombee_cli.mapping.compile import compile_mapping
from recombee_cli.mapping.config import MappingSpec, load_segment_subscriptions
from recombee_cli.recombee.service import DEFAULT_REGION, REGIONS
from recombee_cli.segment.presets import OPT_IN_PRESETS, OPT_IN_TYPES, PRESETS

PRESETS_EXAMPLES = """
recombee-cli presets > recombee-cli.toml                     # found in the current directory, no --config
recombee-cli presets --all > recombee-cli.toml               # with the opt-in users' and items' presets
recombee-cli validate                                        # then check what you edited
"""

IMPORT_EXAMPLES = """
recombee-cli import-segment subscriptions.json > recombee-cli.toml   # Segment's Public API answer, or a list
recombee-cli validate --config recombee-cli.toml segment-logs/SRC123/   # then see what it does with events
"""


@click.command(cls=Command, examples=PRESETS_EXAMPLES,
               short_help="Print Segment's 14 presets as a TOML config to start from.")
@click.option("--all", "show_all", is_flag=True,
              help="Also print the opt-in presets (users' traits, items' properties) and their types.")
@click.pass_obj
def presets(env: Environment, show_all) -> None:
    """Print Segment's 14 built-in presets as a TOML configuration to start from."""
    specs = [MappingSpec(p.name, p.trigger, p.action, p.mapping()) for p in PRESETS]
    if show_all:
        specs += [MappingSpec(p.name, p.trigger, p.action, p.mapping()) for p in OPT_IN_PRESETS]
    header = ("# recombee-cli configuration: Segment's Recombee (Actions) presets, written out.\n"
              "# Edit a mapping, delete the ones you do not want, add your own [[mappings]].\n"
              "# Short forms: \"$.a.b\" reads a path, [\"$.a\", \"$.b\"] the first that exists\n"
              "# (docs/configuration.md, \"Mapping-kit values and short forms\").\n\n"
              f"[recombee]\n# database_id = \"my-database\"\n# region = \"{DEFAULT_REGION}\"   "
              f"# {', '.join(REGIONS)}; or base_uri = \"...\"\n"
              "# The private token comes from RECOMBEE_PRIVATE_TOKEN or token_file, not from here.")
    text = mappings_toml(specs, header, presets=False, short=True)
    if show_all:   # the opt-in presets' declared types, as tables the config reads
        text += ("\n# Property types (int, double, string, boolean, timestamp, set, image, imageList);\n"
                 "# others are inferred from their first value (docs/configuration.md).\n")
        for section, entity in (("user_properties", "users"), ("item_properties", "items")):
            text += f"[{section}]\n"
            for tables in OPT_IN_TYPES.values():
                for name, kind in tables.get(entity, {}).items():
                    text += f"{name} = {value(kind)}\n"
            text += "\n"
    env.stdout.write(text.encode())


@click.command("import-segment", cls=Command, examples=IMPORT_EXAMPLES,
               short_help="Turn Segment subscriptions JSON into a TOML config.")
@click.argument("subscriptions", type=click.Path(exists=True, dir_okay=False))
@click.pass_obj
def import_segment(env: Environment, subscriptions) -> None:
    """Convert Segment subscriptions JSON (Public API or runtime shape) into a TOML config."""
    specs = load_segment_subscriptions(subscriptions)
    for spec in specs:  # fail now, not at the first replay
        compile_mapping(spec)
    header = (f"# Imported from {os.path.basename(subscriptions)} by recombee-cli import-segment.\n"
              "# Each mapping is Segment's, verbatim.")
    env.stdout.write(mappings_toml(specs, header, presets=False).encode())
