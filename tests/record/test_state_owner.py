"""A state file belongs to one database at one address: a run for another is refused before
anything is sent, the default state file of each database id is its own, a database id that
would change the request's path is refused, and a state file that was emptied is not taken for
a new one. Real runs into the emulator over 127.0.0.1."""

from __future__ import annotations

import json

import pytest
from helpers import SAMPLES, invoke

from recombee_cli.recombee.emulator import Emulator
from recombee_cli.record.state import StateStore, default_state_path

TOKEN = "owner-test-token-3b7e"


def _send(emu: Emulator, database_id: str, *extra: str, inputs=(str(SAMPLES),)):
    return invoke(["replay", "--base-uri", emu.base_uri, "--allow-http", "--database-id", database_id,
                   "--quiet", *extra, *inputs], env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})


def test_a_state_file_used_for_another_database_is_refused_and_that_database_gets_nothing_wrong(tmp_path):
    state = str(tmp_path / "st.sqlite")
    with Emulator("demo", TOKEN) as demo, Emulator("other", TOKEN) as other:
        first = _send(demo, "demo", "--state", state)
        assert first.exit_code == 0, first.stderr
        second = _send(other, "other", "--state", state)
        assert second.exit_code == 2
        assert "belongs to database 'demo'" in second.stderr and "'other'" in second.stderr
        assert "already done" not in second.stderr
        assert other.stats.http_calls == 0 and not any(other.snapshot().values())
        # the same state for its own database still works: everything is done there
        again = _send(demo, "demo", "--state", state)
        assert again.exit_code == 0 and "Traceback" not in again.stderr
    status = invoke(["status", "--state", state, "--json"])
    assert json.loads(status.stdout)["database_id"] == "demo"


def test_the_same_database_id_at_another_address_is_another_database(tmp_path):
    state = str(tmp_path / "st.sqlite")
    with Emulator("demo", TOKEN) as here, Emulator("demo", TOKEN) as there:
        assert _send(here, "demo", "--state", state).exit_code == 0
        moved = _send(there, "demo", "--state", state)
        assert moved.exit_code == 2 and here.base_uri in moved.stderr and there.base_uri in moved.stderr
        assert there.stats.http_calls == 0


def test_each_database_id_has_its_own_default_state_file(tmp_path):
    """`shop_prod` and `shop:prod` are two databases: the second is not told its files are done."""
    with Emulator("shop_prod", TOKEN) as one, Emulator("shop:prod", TOKEN) as two:
        assert _send(one, "shop_prod").exit_code == 0
        result = _send(two, "shop:prod")
        assert result.exit_code == 0, result.stderr
        assert two.snapshot() == one.snapshot() and any(two.snapshot().values())
    assert default_state_path("shop_prod") != default_state_path("shop:prod")
    assert default_state_path("shop/prod") != default_state_path("shop_prod")


@pytest.mark.parametrize("where", ["option", "config"])
@pytest.mark.parametrize("database_id", ["a/../b", "..", ".", "shop prod", "a?b"])
def test_a_database_id_that_would_change_the_request_path_is_refused(tmp_path, where, database_id):
    args = ["replay", "--base-uri", "http://127.0.0.1:9", "--allow-http", str(SAMPLES)]
    if where == "option":
        args += ["--database-id", database_id]
    else:
        config = tmp_path / "c.toml"
        config.write_text(f'[recombee]\ndatabase_id = {json.dumps(database_id)}\n')
        args += ["--config", str(config)]
    result = invoke(args, env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
    assert result.exit_code == 2, result.stderr
    assert "is not a Recombee database id" in result.stderr
    if where == "config":
        assert f"{tmp_path / 'c.toml'}:2" in result.stderr
    assert invoke(["status", "--database-id", database_id]).exit_code == 2


def test_an_empty_state_file_is_said_and_one_that_was_emptied_is_refused(tmp_path):
    state = tmp_path / "st.sqlite"
    state.touch()   # e.g. `--state "$(mktemp)"`: nothing was ever recorded in it
    with Emulator("demo", TOKEN) as demo, Emulator("demo", TOKEN) as again:
        fresh = invoke(["replay", "--base-uri", demo.base_uri, "--allow-http", "--database-id", "demo",
                        "--state", str(state), str(SAMPLES)], env={"RECOMBEE_PRIVATE_TOKEN": TOKEN})
        assert fresh.exit_code == 0, fresh.stderr
        assert f"the state file {state} is empty" in fresh.stderr
        state.write_bytes(b"")   # truncated since (a restore gone wrong, `> st.sqlite`, a full disk)
        emptied = _send(again, "demo", "--state", str(state))
        assert emptied.exit_code == 2
        assert "is empty, but runs have used it before" in emptied.stderr
        assert again.stats.http_calls == 0   # nothing was sent again


def test_a_state_file_from_before_it_knew_its_database_is_bound_by_its_next_run(tmp_path):
    state = str(tmp_path / "st.sqlite")
    StateStore(state).close()   # as an older version left it: no database recorded
    with Emulator("demo", TOKEN) as demo:
        assert _send(demo, "demo", "--state", state).exit_code == 0
        address = demo.base_uri
    store = StateStore(state)
    try:
        assert store.owner() == ("demo", address)
    finally:
        store.close()
