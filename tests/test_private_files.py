"""Nothing exposed: signed requests never travel over plain http unless asked for, however the
scheme is spelled."""

from __future__ import annotations

import pytest
from helpers import invoke

TOKEN = "private-test-token-9a4d"


# -- plain http ----------------------------------------------------------------------------------

@pytest.mark.parametrize("spelling", ["HTTP://", "Http://", "hTTp://", " http://"])
@pytest.mark.parametrize("given", ["option", "environment", "config"])
def test_plain_http_needs_allow_http_however_the_scheme_is_spelled(tmp_path, spelling, given):
    events = tmp_path / "none.ndjson"
    events.write_text("")   # nothing to send: only the address is judged
    uri = f"{spelling}127.0.0.1:9"
    args, env = ["replay", "--database-id", "demo", str(events)], {"RECOMBEE_PRIVATE_TOKEN": TOKEN}
    if given == "option":
        args += ["--base-uri", uri]
    elif given == "environment":
        env["RECOMBEE_BASE_URI"] = uri
    else:
        config = tmp_path / "c.toml"
        config.write_text(f'[recombee]\nbase_uri = "{uri}"\n')
        args += ["--config", str(config)]
    refused = invoke(args, env=env)
    assert refused.exit_code == 2 and "is plain http" in refused.stderr and "--allow-http" in refused.stderr
    assert invoke([*args, "--allow-http", "--no-state"], env=env).exit_code == 0
