"""The package installs as documented: CLI, versions, environment.yml in step with pyproject."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_checked
from m1lib import cli


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


def _help(argv: list[str], capsys) -> str:
    """``m1lib ARGV --help`` in this process (the entry point itself: test_cli_help_lists_subcommands)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        cli.main([*argv, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


def test_cli_help_lists_subcommands(capsys):
    out = subprocess.run([sys.executable, "-m", "m1lib", "--help"], capture_output=True, text=True, check=True).stdout
    for cmd in ("validate", "synth", "measure", "report"):
        assert cmd in out
    for cmd in ("validate", "synth", "measure", "report"):
        assert "usage: m1lib " + cmd in _help([cmd], capsys)


def test_version():
    out = subprocess.run([sys.executable, "-m", "m1lib", "--version"], capture_output=True, text=True, check=True)
    assert re.match(r"m1lib \d+\.\d+", out.stdout)


def test_ci_calls_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make test" in ci


# --------------------------------------------------------------------------- options, hints
@pytest.mark.parametrize("argv, message", [
    (["synth", "--out", "x", "--seed", "-1"], "--seed: must be >= 0, got -1"),
    (["synth", "--out", "x", "--n-als", "1"], "--n-als: must be >= 2, got 1"),
    (["measure", "--jobs", "-1"], "--jobs: must be >= 1, got -1"),
    (["report", "--jobs", "zero"], "--jobs: expected an integer, got 'zero'"),
])
def test_every_numeric_option_is_range_checked(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and "Traceback" not in err


def test_manifest_settings_are_range_checked(tmp_path, capsys):
    m = tmp_path / "m.yaml"
    m.write_text("dataset: .\nsettings:\n  seed: -5\n  n_bootstrap: 10\n")
    assert cli.main(["validate", str(m)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert any("settings.seed: Input should be greater than or equal to 0" in e for e in err)
    assert any("settings.n_bootstrap" in e for e in err) and len(err) == 2


def test_validate_hint_names_commands_that_exist(tmp_path, capsys):
    m = tmp_path / "m.yaml"
    m.write_text("dataset: rep\nreplica:\n  seed: 5\n")
    assert cli.main(["validate", str(m)]) == 2
    err = capsys.readouterr().err
    assert "--manifest" not in err.split("m1lib synth")[1]
    assert f"m1lib synth --out {tmp_path / 'rep'} --seed 5 --n-als 22 --n-hs 14" in err
    for hint in ("m1lib report --manifest", "m1lib synth --out"):
        cmd = hint.split()[1]
        assert "--" + hint.split("--")[1].split()[0] in _help([cmd], capsys)


# --------------------------------------------------------------------------- any install
def test_notebooks_are_package_data():
    from m1lib.execute import notebooks, packaged_notebooks

    assert packaged_notebooks().resolve() == (ROOT / "notebooks").resolve()
    assert [p.name for p in notebooks()] == sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert conf["package-dir"]["m1lib.notebooks"] == "notebooks" and "m1lib.notebooks" in conf["packages"]


def test_every_subpackage_is_listed_for_a_regular_install():
    """pyproject lists packages explicitly (the notebooks live outside m1lib/): a
    subpackage left off the list would be missing from a wheel."""
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {"m1lib." + ".".join(p.parent.relative_to(ROOT / "m1lib").parts)
             for p in (ROOT / "m1lib").rglob("__init__.py") if p.parent != ROOT / "m1lib"}
    assert found <= set(conf["packages"]), sorted(found - set(conf["packages"]))


@pytest.mark.slow
def test_a_regular_wheel_install_runs_every_notebook_outside_the_repository(wheel_venv, measured_report):
    """The wheel, installed (not editable) into a venv of its own, ran the shared measured report
    (tests/conftest.py) from a folder outside the repository: every notebook, from its package."""
    py = wheel_venv / "bin" / "python"
    where = run_checked([py, "-c", "import m1lib, m1lib.execute as e; print(m1lib.__file__); "
                         "print(e.packaged_notebooks())"], cwd=wheel_venv.parent).stdout.split()
    assert all(Path(w).is_relative_to(wheel_venv) for w in where), where
    assert Path(where[1]).parts[-2:] == ("m1lib", "notebooks"), where
    manifest, out = measured_report
    assert not manifest.is_relative_to(ROOT)
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["interpreter"] == str(py) and prov["git"]["commit"] is None
    assert sorted(prov["notebooks"]) == sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert all(v["status"] == "ok" for v in prov["notebooks"].values())


@pytest.mark.slow
def test_the_wheel_dependencies_resolve_offline_to_what_it_runs_with(wheel_venv, tmp_path):
    """The wheel was installed with --no-deps, so check its declared dependencies apart: pip's
    resolver, offline, in a venv that sees only .venv's packages, must find every one there and
    have nothing to install but m1lib itself (without those packages it finds none)."""
    wheel = next((wheel_venv.parent / "dist").glob("m1lib-*.whl"))
    venv = tmp_path / "deps-only"
    run_checked([sys.executable, "-m", "venv", "--without-pip", venv])
    pth = next(wheel_venv.glob("lib/python*/site-packages/zz_m1lib_test_deps.pth"))
    dry = [sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--dry-run",
           "--no-index", "--report", "-", "-q", wheel]
    bare = subprocess.run([str(c) for c in dry], capture_output=True, text=True)
    assert bare.returncode != 0 and "No matching distribution found" in bare.stderr   # the check can fail
    site = next(venv.glob("lib/python*/site-packages"))
    (site / pth.name).write_bytes(pth.read_bytes())
    report = json.loads(run_checked(dry).stdout)
    assert [i["metadata"]["name"] for i in report["install"]] == ["m1lib"]
    declared = report["install"][0]["metadata"]["requires_dist"]
    assert {_name(r) for r in declared if "extra ==" not in r} == \
        {_name(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
