"""The Dockerfile installs the project as pyproject.toml declares it."""

from __future__ import annotations

import json
import re

from conftest import ROOT
from packaging.requirements import Requirement
from packaging.version import Version

# -- Docker ------------------------------------------------------------------------------------


def _dockerfile() -> str:
    # join continuation lines so each instruction is one line
    return re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())


def test_dockerfile_installs_the_project_not_a_separate_list():
    text = _dockerfile()
    installs = [line for line in text.splitlines() if "pip install" in line]
    assert installs, "the Dockerfile must pip install the project"
    for line in installs:
        args = line.split("pip install", 1)[1].split("&&")[0].split()
        packages = [a for a in args if not a.startswith("-")]
        assert packages == ["."] or packages == [".[cluster]"], f"hand-written requirements in: {line}"
    assert "COPY pyproject.toml" in text
    assert re.search(r'ENTRYPOINT \["python", "src/train.py"\]', text)
    volumes = re.search(r"VOLUME (\[.*\])", text)
    assert volumes and set(json.loads(volumes.group(1))) >= {
        "/workspace/advaug/logs",
        "/workspace/advaug/data",
    }


def test_dockerfile_base_image_torch_satisfies_pyproject():
    base = re.search(
        r"^FROM pytorch/pytorch:(\d+\.\d+\.\d+)-cuda[\d.]+-cudnn\d+-runtime", _dockerfile(), re.M
    )
    assert base, "base image must be an official pytorch/pytorch CUDA runtime tag"
    # (tomllib is 3.11+; the project supports 3.10): the one "torch..." requirement string
    (spec,) = re.findall(r'"(torch\s*[<>=!~][^"]*)"', (ROOT / "pyproject.toml").read_text())
    torch = Requirement(spec)
    assert Version(base.group(1)) in torch.specifier, (base.group(1), str(torch.specifier))


def test_dockerignore_keeps_sources():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert not {"src", "conf", "src/advaug", "**/data"} & set(ignored)
