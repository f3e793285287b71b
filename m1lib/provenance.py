"""What a report records about how it was made: code, interpreter, packages, git."""
from __future__ import annotations

import hashlib
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGES = ("numpy", "scipy", "pandas", "statsmodels", "nibabel", "isal", "matplotlib", "seaborn",
            "papermill", "nbconvert", "nbclient", "ipykernel", "pydantic", "PyYAML")
PACKAGE_DIR = Path(__file__).resolve().parent


def package_fingerprint() -> str:
    """Hash of m1lib's own source, so a code change re-runs the notebooks."""
    h = hashlib.sha256()
    for p in sorted(PACKAGE_DIR.rglob("*.py")):
        h.update(str(p.relative_to(PACKAGE_DIR)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def git_state(repo: Path = PACKAGE_DIR.parent) -> dict:
    """Commit and dirty flag of the source tree m1lib runs from (None when not a clone)."""
    if not (repo / ".git").exists():
        return {"commit": None, "dirty": None}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                    capture_output=True, text=True, check=True).stdout.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out
