"""Shared fixtures of the offline Kubernetes suite (see test_schema.py for the ladder).

Everything here runs without a cluster: the operator binary prints the CRD and renders
objects, helm-python-sdk (Helm's Go SDK through a C ABI) renders and lints the chart, and
checkov reads the rendered files. Expensive results are session-scoped so that the whole
suite renders each thing once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "faultline-operator"
EXAMPLES = ROOT / "examples"
CRD_FILE = ROOT / "crds" / "errortracker.yaml"
BACKUP_CRD_FILE = ROOT / "crds" / "backup.yaml"
PROJECT_CRD_FILE = ROOT / "crds" / "faultlineproject.yaml"
# Every CRD `faultline-operator crd` prints, in its order.
CRD_FILES = (CRD_FILE, BACKUP_CRD_FILE, PROJECT_CRD_FILE)
HARDENED_VALUES = Path(__file__).resolve().parent / "values-hardened.yaml"

RELEASE = "faultline-operator"
RELEASE_NAMESPACE = "faultline-system"

# kubernetes-validate ships schemas from 1.32 on; the project supports Kubernetes 1.30+ and
# k8s-openapi is built for 1.32, so every object is checked against the oldest and the newest
# schema set the package has (a field removed or added in between fails one of them).
KUBE_VERSIONS = ("1.32", "1.37")


def load_all(text: str) -> list[dict[str, Any]]:
    """Every non-empty YAML document of a stream."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def strict_errors(obj: dict[str, Any], version: str) -> list[str]:
    """Why `obj` fails strict validation against Kubernetes `version` (empty when it passes).

    A kind without a schema is an error too: everything checked here is a built-in kind.
    """
    ident = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as err:
        path = ".".join(str(p) for p in err.path) or "<root>"
        return [f"{ident} (Kubernetes {err.version}): {path}: {err.message}"]
    except kubernetes_validate.SchemaNotFoundError as err:
        return [f"{ident}: {err.message}"]
    return []


def example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.yaml"))


def example_documents() -> list[tuple[str, dict[str, Any]]]:
    """(id, document) for every document of every example file."""
    out = []
    for path in example_files():
        for index, doc in enumerate(load_all(path.read_text())):
            name = doc.get("metadata", {}).get("name", index)
            out.append((f"{path.name}:{doc.get('kind')}/{name}", doc))
    return out


def _build_operator() -> Path:
    """Builds the operator with cargo and returns the executable cargo reports.

    cargo honours CARGO_TARGET_DIR itself; without it the workspace's `target/` is used.
    """
    env = dict(os.environ)
    env.setdefault("CARGO_TARGET_DIR", str(ROOT / "target"))
    proc = subprocess.run(
        ["cargo", "build", "--locked", "-p", "faultline-operator", "--bin", "faultline-operator",
         "--message-format=json-render-diagnostics"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    if proc.returncode != 0:
        pytest.fail(f"cannot build faultline-operator (cargo exit {proc.returncode}):\n"
                    f"{proc.stderr[-4000:]}", pytrace=False)
    for line in proc.stdout.splitlines():
        message = json.loads(line)
        if (message.get("reason") == "compiler-artifact"
                and message["target"]["name"] == "faultline-operator"
                and message.get("executable")):
            return Path(message["executable"])
    pytest.fail("cargo built faultline-operator but reported no executable", pytrace=False)


@pytest.fixture(scope="session")
def operator_bin() -> Path:
    """The operator binary: $FAULTLINE_OPERATOR_BIN, else built with cargo. Never skipped."""
    given = os.environ.get("FAULTLINE_OPERATOR_BIN")
    if given:
        path = Path(given)
        if not os.access(path, os.X_OK):
            pytest.fail(f"FAULTLINE_OPERATOR_BIN={given} is not an executable file", pytrace=False)
        return path
    return _build_operator()


def run_operator(binary: Path, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run([str(binary), *args], input=stdin, capture_output=True, text=True)
    assert proc.returncode == 0, (
        f"faultline-operator {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
    )
    return proc.stdout


def load_crd(path: Path) -> dict[str, Any]:
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    docs = load_all(path.read_text())
    assert len(docs) == 1 and docs[0]["kind"] == "CustomResourceDefinition", docs
    return docs[0]


@pytest.fixture(scope="session")
def crd() -> dict[str, Any]:
    """The committed ErrorTracker CRD (crds/errortracker.yaml)."""
    return load_crd(CRD_FILE)


@pytest.fixture(scope="session")
def backup_crd() -> dict[str, Any]:
    """The committed Backup CRD (crds/backup.yaml)."""
    return load_crd(BACKUP_CRD_FILE)


@pytest.fixture(scope="session")
def project_crd() -> dict[str, Any]:
    """The committed FaultlineProject CRD (crds/faultlineproject.yaml)."""
    return load_crd(PROJECT_CRD_FILE)


@pytest.fixture(scope="session")
def rendered_examples(operator_bin: Path) -> dict[str, list[dict[str, Any]]]:
    """`faultline-operator render -f -` for every ErrorTracker of every example, by id."""
    out = {}
    for ident, doc in example_documents():
        if doc.get("kind") != "ErrorTracker":
            continue
        text = run_operator(operator_bin, "render", "-f", "-", stdin=yaml.safe_dump(doc))
        objects = load_all(text)
        assert objects, f"render printed no object for {ident}"
        out[ident] = objects
    assert out, "no ErrorTracker found in examples/"
    return out


def hardened_values() -> dict[str, Any]:
    return yaml.safe_load(HARDENED_VALUES.read_text())


# The value sets the chart is rendered, linted and scanned with.
VALUE_SETS = ("default", "hardened")


def values_for(name: str) -> dict[str, Any] | None:
    return hardened_values() if name == "hardened" else None


def render_chart(values: dict[str, Any] | None) -> dict[str, str]:
    """Template path -> rendered text, as `helm template` (install) would print it."""
    with helm.Chart.load(CHART) as chart:
        return chart.render(values, name=RELEASE, namespace=RELEASE_NAMESPACE, is_install=True)


@pytest.fixture(scope="session")
def chart_renders() -> dict[str, dict[str, str]]:
    return {name: render_chart(values_for(name)) for name in VALUE_SETS}


@pytest.fixture(scope="session")
def chart_objects(chart_renders) -> dict[str, list[dict[str, Any]]]:
    """Every object a `helm install` creates, per value set, the CRD included."""
    with helm.Chart.load(CHART) as chart:
        crds = [doc for entry in chart.crds for doc in load_all(entry["data"])]
    out = {}
    for name, rendered in chart_renders.items():
        objects = list(crds)
        for path, text in sorted(rendered.items()):
            if path.endswith(".yaml"):
                objects.extend(load_all(text))
        out[name] = objects
    return out


def python_tool(name: str) -> str:
    """A console script installed next to the running interpreter (the venv's bin/)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.fail(f"{name} is not installed in {path.parent}: pip install -r tests/requirements.txt",
                    pytrace=False)
    return str(path)
