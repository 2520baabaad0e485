"""A lighter install: python-liquid is the `liquid` extra. Where it is not installed, everything but
@liquid works, and a mapping that uses @liquid is refused in one line saying what to install.
(Its absence is made real in a subprocess: `sys.modules["liquid"] = None` makes every import of
it fail, as on an install without the extra.)"""

from __future__ import annotations

import subprocess
import sys
import tomllib

from helpers import ROOT, SAMPLES

WITHOUT_LIQUID = "import sys; sys.modules['liquid'] = None\n"


def _cli(*args: str) -> subprocess.CompletedProcess:
    code = WITHOUT_LIQUID + "from recombee_cli.cli.main import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_the_base_install_does_not_pull_python_liquid_nor_the_dev_extra_moto_server():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("python-liquid") for d in project["dependencies"])
    assert project["optional-dependencies"]["liquid"] == ["python-liquid>=2.0"]
    dev = project["optional-dependencies"]["dev"]
    assert "python-liquid>=2.0" in dev and not any(d.startswith("moto[server]") for d in dev)


def test_without_python_liquid_a_mapping_with_liquid_is_refused_in_one_line_naming_the_extra():
    result = _cli("validate", "--config", "mappings.example.toml")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == ("recombee-cli: error: mappings.example.toml:67, mapping 'Product Rated', field "
                                     "'rating': @liquid needs python-liquid, which this install does not have: "
                                     "pip install 'recombee-cli[liquid]'")


def test_without_python_liquid_everything_else_works_as_before():
    without = _cli("replay", "--dry-run", str(SAMPLES))
    with_it = subprocess.run([sys.executable, "-m", "recombee_cli", "replay", "--dry-run", str(SAMPLES)],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert without.returncode == with_it.returncode == 0, without.stderr
    assert without.stdout == with_it.stdout and without.stdout


def test_without_python_liquid_the_python_api_raises_a_mapping_error_and_doctor_says_it():
    code = WITHOUT_LIQUID + (
        "import recombee_cli\n"
        "try:\n    recombee_cli.resolve_mapping({'@liquid': '{{ a }}'}, {'a': 1})\n"
        "except recombee_cli.MappingError as exc:\n    print('refused:', exc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "refused: @liquid needs python-liquid, which this install does not have: " \
                                  "pip install 'recombee-cli[liquid]'"
    doctor = _cli("doctor", "--config", "mappings.example.toml", "--json")
    assert "not installed: liquid (the @liquid directive)" in doctor.stdout
    assert "pip install 'recombee-cli[liquid]'" in doctor.stdout


def test_with_python_liquid_the_example_configs_liquid_mapping_builds():
    result = subprocess.run([sys.executable, "-m", "recombee_cli", "validate", "--config", "mappings.example.toml"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
