import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFORMANCE = ROOT / "tests" / "conformance"
DATA = ROOT / "tests" / "data"
SAMPLES = ROOT / "sample_events"
MISTAKES = ROOT / "sample_events_with_mistakes"

# The tests must never depend on the developer's shell: no real token, no config from the env.
for name in ("RECOMBEE_PRIVATE_TOKEN", "RECOMBEE_CLI_CONFIG", "RECOMBEE_DATABASE_ID", "RECOMBEE_REGION",
             "RECOMBEE_BASE_URI", "RAPI_URI"):
    os.environ.pop(name, None)


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture(autouse=True)
def _private_state_dir(tmp_path, monkeypatch):
    """Each test gets its own default state directory: no test sees another's state file."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state-home"))
