"""The package installs as documented: CLI, versions, environment.yml in step with pyproject."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!\[ ;]", req, maxsplit=1)[0].strip().lower()


def _spec(req: str) -> str:
    return re.sub(r"^[A-Za-z0-9_.\-]+(\[[^\]]*\])?", "", req).replace(" ", "")


def test_environment_yml_agrees_with_pyproject():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    want = {_name(r): _spec(r) for r in py["dependencies"] + py["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    have = {}
    for d in env:
        for r in (d["pip"] if isinstance(d, dict) else [d]):
            have[_name(r)] = _spec(r)
    have.pop("python"), have.pop("pip")
    assert have == want


def test_cli_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "m1lib", "--help"], capture_output=True, text=True, check=True).stdout
    for cmd in ("validate", "synth", "measure", "report"):
        assert cmd in out
    for cmd in ("validate", "synth", "measure", "report"):
        sub = subprocess.run([sys.executable, "-m", "m1lib", cmd, "--help"], capture_output=True, text=True)
        assert sub.returncode == 0 and "usage: m1lib " + cmd in sub.stdout


def test_version():
    out = subprocess.run([sys.executable, "-m", "m1lib", "--version"], capture_output=True, text=True, check=True)
    assert re.match(r"m1lib \d+\.\d+", out.stdout)


def test_ci_calls_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make test" in ci
