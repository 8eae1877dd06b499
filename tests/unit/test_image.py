"""The image: its lock covers what refdesk needs at run time (and what builds it), with
hashes; one version, pyproject's, read by everything that says one; the Containerfile
builds without pip in the final image and ships `refdesk-admin`."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from shared.version import DISTRIBUTION, VERSION

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK = (ROOT / "requirements.lock").read_text()
CONTAINERFILE = (ROOT / "deploy" / "Containerfile").read_text()


def locked() -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)", LOCK, re.MULTILINE)
    return {canonicalize_name(name): pinned for name, pinned in pins}


def test_the_lock_pins_every_runtime_dependency_within_its_range():
    pins = locked()
    for line in PYPROJECT["project"]["dependencies"]:
        wanted = Requirement(line)
        name = canonicalize_name(wanted.name)
        assert name in pins, f"{wanted.name} is not in requirements.lock: run make lock"
        assert wanted.specifier.contains(pins[name]), f"{name}=={pins[name]} breaks {wanted}"
    build = Requirement(PYPROJECT["build-system"]["requires"][0])
    assert build.specifier.contains(pins[canonicalize_name(build.name)])


def test_every_pin_carries_a_hash_and_no_machine_path():
    blocks = re.split(r"\n(?=[A-Za-z0-9])", LOCK)[1:]
    assert len(blocks) == len(locked())
    for block in blocks:
        assert "--hash=sha256:" in block, f"no hash for {block.splitlines()[0]}"
    assert "--find-links" not in LOCK and "--index-url" not in LOCK


def test_one_version_in_one_place():
    assert PYPROJECT["project"]["name"] == DISTRIBUTION
    assert VERSION == PYPROJECT["project"]["version"] == version(DISTRIBUTION)
    for service in ROOT.glob("services/*/__main__.py"):
        assert not re.search(r'VERSION = "', service.read_text()), service


def test_the_image_installs_by_hash_and_runs_without_pip():
    build, final = CONTAINERFILE.split("\nFROM ${PYTHON_IMAGE}\n")
    assert "--require-hashes" in build and "requirements.lock" in build
    assert "pip uninstall --yes setuptools pip" in build
    assert "pip install" not in final and "uninstall --yes pip" in final
    assert 'org.opencontainers.image.version="${VERSION}"' in final
    assert PYPROJECT["project"]["scripts"]["refdesk-admin"] == "refdesk.admin.__main__:main"
