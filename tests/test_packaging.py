"""The package installs as documented: CLI, versions, environment.yml in step with pyproject."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
import yaml

from m1lib import cli

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
        assert "--" + hint.split("--")[1].split()[0] in subprocess.run(
            [sys.executable, "-m", "m1lib", cmd, "--help"], capture_output=True, text=True).stdout


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
def test_a_regular_wheel_install_runs_every_notebook_outside_the_repository(tmp_path, measured_report):
    """Build the wheel, install it (not editable) into a fresh venv, run the report elsewhere."""
    manifest, _ = measured_report
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    "-w", str(dist), str(ROOT)], check=True, capture_output=True)
    wheel = next(dist.glob("m1lib-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    # the new venv's own pip (never this environment's: it would uninstall our editable m1lib)
    subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "--no-compile", "-q", str(wheel)],
                   check=True, capture_output=True)
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # dependencies come from this environment (no download), after the wheel's m1lib on sys.path
    deps = Path(sysconfig.get_paths()["purelib"])
    (site / "zz_m1lib_test_deps.pth").write_text(f"{deps}\n")
    where = subprocess.run([str(py), "-c", "import m1lib, m1lib.execute as e; "
                            "print(m1lib.__file__); print(e.packaged_notebooks())"],
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout.split()
    assert all(Path(w).is_relative_to(venv) for w in where), where
    assert Path(where[1]).parts[-2:] == ("m1lib", "notebooks"), where
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "my.yaml").write_text(f"dataset: {manifest.parent}\nsettings:\n  n_bootstrap: 200\n")
    # ... and so do their data files (nbconvert's templates), but not our own kernelspec
    shared = tmp_path / "jupyter"
    shared.mkdir()
    (shared / "nbconvert").symlink_to(Path(sys.prefix) / "share" / "jupyter" / "nbconvert")
    run = subprocess.run([str(venv / "bin" / "m1lib"), "report", "--manifest", "my.yaml", "--out", "my_report"],
                         cwd=work, capture_output=True, text=True, env={**os.environ, "JUPYTER_PATH": str(shared)})
    assert run.returncode == 0, run.stderr[-3000:]
    prov = json.loads((work / "my_report" / "provenance.json").read_text())
    assert prov["interpreter"] == str(py) and prov["git"]["commit"] is None
    assert sorted(prov["notebooks"]) == sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert all(v["status"] == "ok" for v in prov["notebooks"].values())
