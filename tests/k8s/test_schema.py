"""Offline validation of faultline's Kubernetes artifacts: rung 2 (schema) of the issue's ladder.

No kube-apiserver can run on these machines (none is installable from the package registries
here), so nothing in tests/k8s talks to a cluster. The operator's proof climbs a ladder instead:

1. pure builders, snapshot-tested (Rust, operator crate);
2. schema (this file): every file in examples/ validates against the committed CRD's
   openAPIV3Schema as the API server would apply it (defaults filled, unknown fields rejected,
   list-map keys unique, CEL `x-kubernetes-validations` evaluated, transition rules on edits);
   every object that `faultline-operator render -f` prints for each example, and every object
   the chart installs, validates strictly with `kubernetes-validate` against the Kubernetes
   1.32 and 1.37 schemas (the oldest and newest it ships; none older than 1.32 exist there);
3. chart: rendered and linted with helm-python-sdk, checkov findings all explained
   (test_chart.py);
4.-6. wire contract, convergence and the controller loop (Rust, operator crate).

Every test in this file proves rung 2. The operator binary is taken from $FAULTLINE_OPERATOR_BIN
or built with `cargo build -p faultline-operator`; when it cannot be built the suite fails, it
never skips.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

import crd_schema
from conftest import (EXAMPLES, KUBE_VERSIONS, VALUE_SETS, example_documents, example_files,
                      load_all, run_operator, strict_errors)

ERROR_TRACKER = "ErrorTracker"
BACKUP = "Backup"
PROJECT = "FaultlineProject"
# Kinds the operator's CRDs define (validated against those, not against Kubernetes' schemas).
CUSTOM_KINDS = (ERROR_TRACKER, BACKUP, PROJECT)


def tracker_documents() -> list[tuple[str, dict[str, Any]]]:
    return [(i, d) for i, d in example_documents() if d.get("kind") == ERROR_TRACKER]


def test_examples_named_in_the_docs_exist():
    names = {p.name for p in example_files()}
    assert {"minimal.yaml", "s3-retention-backup.yaml", "multi-tenant.yaml",
            "backup-restore.yaml", "oidc.yaml", "shared-tracker.yaml"} <= names


def test_multi_tenant_example_has_two_trackers_in_two_namespaces():
    docs = load_all((EXAMPLES / "multi-tenant.yaml").read_text())
    trackers = [d for d in docs if d["kind"] == ERROR_TRACKER]
    namespaces = {d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"}
    assert len(trackers) == 2
    assert {t["metadata"]["namespace"] for t in trackers} == namespaces
    assert len(namespaces) == 2


def test_s3_example_shows_credentials_retention_and_backups():
    spec = s3()["spec"]
    assert spec["storage"]["objectStore"]["s3"]["credentialsSecret"]["name"]
    assert spec["retention"]["defaultDays"]
    assert any("retentionDays" in p for p in spec["projects"])
    assert {"schedule", "destination"} <= spec["backup"].keys()
    assert {"keepLast", "keepDays"} & spec["backup"].keys()


def test_backup_example_backs_up_a_tracker_and_restores_one():
    docs = load_all((EXAMPLES / "backup-restore.yaml").read_text())
    [backup] = [d for d in docs if d["kind"] == BACKUP]
    [restored] = [d for d in docs if d["kind"] == ERROR_TRACKER]
    assert backup["spec"]["tracker"] == s3()["metadata"]["name"]
    assert backup["metadata"]["namespace"] == s3()["metadata"]["namespace"]
    source = restored["spec"]["bootstrap"]["backup"]["source"]["s3"]
    assert source["bucket"] == s3()["spec"]["backup"]["destination"]["s3"]["bucket"]


def test_committed_crds_are_what_the_operator_prints(operator_bin, crd, backup_crd, project_crd):
    printed = load_all(run_operator(operator_bin, "crd"))
    assert printed == [crd, backup_crd, project_crd], (
        "crds/ is stale: faultline-operator crd --out-dir crds")


@pytest.mark.parametrize("ident,doc", [(i, d) for i, d in example_documents() if d.get("kind") == BACKUP],
                         ids=[i for i, d in example_documents() if d.get("kind") == BACKUP])
def test_example_backup_validates_against_its_crd(backup_crd, ident, doc):
    assert crd_schema.validate(backup_crd, doc) == []
    assert crd_schema.cel_errors(backup_crd, doc) == []


def project_documents() -> list[tuple[str, dict[str, Any]]]:
    return [(i, d) for i, d in example_documents() if d.get("kind") == PROJECT]


@pytest.mark.parametrize("ident,doc", project_documents(), ids=[i for i, _ in project_documents()])
def test_example_project_validates_against_its_crd(project_crd, ident, doc):
    assert crd_schema.validate(project_crd, doc) == []
    assert crd_schema.cel_errors(project_crd, doc) == []


def test_shared_tracker_example_selects_tenant_namespaces():
    docs = load_all((EXAMPLES / "shared-tracker.yaml").read_text())
    [tracker] = [d for d in docs if d["kind"] == ERROR_TRACKER]
    selector = tracker["spec"]["projectNamespaceSelector"]["matchLabels"]
    label = tracker["spec"]["organizationLabel"]
    namespaces = {d["metadata"]["name"]: d["metadata"].get("labels", {})
                  for d in docs if d["kind"] == "Namespace"}
    served = {n for n, labels in namespaces.items() if selector.items() <= labels.items()}
    ref = f'{tracker["metadata"]["namespace"]}/{tracker["metadata"]["name"]}'
    projects = [d for d in docs if d["kind"] == PROJECT]
    assert all(p["spec"]["tracker"] == ref for p in projects)
    # two projects in served namespaces of one organization, one in a namespace that is not
    assert [namespaces[p["metadata"]["namespace"]].get(label) for p in projects
            if p["metadata"]["namespace"] in served] == ["shop", "shop"]
    assert [p["metadata"]["namespace"] for p in projects
            if p["metadata"]["namespace"] not in served] == ["sandbox"]


def project() -> dict[str, Any]:
    docs = load_all((EXAMPLES / "shared-tracker.yaml").read_text())
    return copy.deepcopy(next(d for d in docs if d["kind"] == PROJECT))


def test_project_crd_rejects_bad_fields(project_crd):
    for path, value, words in [
        ("spec.tracker", "errors", "does not match"),
        ("spec.project", "Shop_API", "does not match"),
        ("spec.retentionDays", 0, "minimum"),
        ("spec.deletionPolicy", "Erase", "Retain"),
    ]:
        errors = crd_schema.validate(project_crd, _set(project(), path, value))
        assert any(words in e for e in errors), (path, errors)
    twice = _set(project(), "spec.keys", [{"name": "web"}, {"name": "web"}])
    assert any("each name must be unique" in e for e in crd_schema.cel_errors(project_crd, twice))


def test_project_tracker_and_name_cannot_change(project_crd):
    old = project()
    for path, value, words in [("spec.tracker", "other/errors", "tracker is immutable"),
                               ("spec.project", "renamed", "project is immutable")]:
        new = _set(project(), path, value)
        assert crd_schema.cel_errors(project_crd, new) == []
        assert any(words in e for e in crd_schema.cel_errors(project_crd, new, old=old)), path
    changed = _set(project(), "spec.retentionDays", 7)
    assert crd_schema.cel_errors(project_crd, changed, old=old) == []


@pytest.mark.parametrize("ident,doc", tracker_documents(), ids=[i for i, _ in tracker_documents()])
def test_example_validates_against_the_crd_schema(crd, ident, doc):
    assert crd_schema.validate(crd, doc) == []
    assert crd_schema.cel_errors(crd, doc) == []


@pytest.mark.parametrize(
    "ident,doc",
    [(i, d) for i, d in example_documents() if d.get("kind") not in CUSTOM_KINDS],
    ids=[i for i, d in example_documents() if d.get("kind") not in CUSTOM_KINDS],
)
@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_example_builtin_objects_validate_strictly(ident, doc, version):
    assert strict_errors(doc, version) == []


def minimal() -> dict[str, Any]:
    return copy.deepcopy(load_all((EXAMPLES / "minimal.yaml").read_text())[0])


def s3() -> dict[str, Any]:
    return copy.deepcopy(load_all((EXAMPLES / "s3-retention-backup.yaml").read_text())[0])


def restored() -> dict[str, Any]:
    docs = load_all((EXAMPLES / "backup-restore.yaml").read_text())
    return copy.deepcopy(next(d for d in docs if d["kind"] == ERROR_TRACKER))


def backup() -> dict[str, Any]:
    docs = load_all((EXAMPLES / "backup-restore.yaml").read_text())
    return copy.deepcopy(next(d for d in docs if d["kind"] == BACKUP))


def oidc() -> dict[str, Any]:
    return copy.deepcopy(load_all((EXAMPLES / "oidc.yaml").read_text())[0])


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = path.split(".")
    node = doc
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return doc


def _without(doc: dict[str, Any], path: str) -> dict[str, Any]:
    *parents, last = path.split(".")
    node = doc
    for part in parents:
        node = node[part]
    del node[last]
    return doc


# Specs a user could write that the API server must refuse, with the words its answer contains.
# They prove the validation above is able to fail, and that the committed CRD carries the rules.
REJECTED = {
    "typo in a field name": (lambda: _set(minimal(), "spec.replica", 2), "replica"),
    "uppercase project name": (
        lambda: _set(minimal(), "spec.projects", [{"name": "Backend"}]), "does not match"),
    "replicas above the maximum": (lambda: _set(minimal(), "spec.replicas", 1000), "maximum"),
    "several replicas on a local volume": (
        lambda: _set(minimal(), "spec.replicas", 2), "replicas above 1 need storage.objectStore.s3"),
    "both local and s3": (
        lambda: _set(s3(), "spec.storage.objectStore.local", {"size": "1Gi"}), "either local or s3"),
    "duplicate project names": (
        lambda: _set(minimal(), "spec.projects", [{"name": "web"}, {"name": "web"}]),
        "each name must be unique"),
    "backup that is never pruned": (
        lambda: _without(_without(s3(), "spec.backup.keepLast"), "spec.backup.keepDays"),
        "keepLast or keepDays"),
    "name too long for the objects it prefixes": (
        lambda: _set(minimal(), "metadata.name", "a" * 41), "at most 40 characters"),
    "s3 without credentials": (
        lambda: _without(s3(), "spec.storage.objectStore.s3.credentialsSecret"), "credentialsSecret"),
    "backup destination both in s3 and on a volume": (
        lambda: _set(s3(), "spec.backup.destination.volume", {"claimName": "backups"}),
        "set exactly one of s3 or volume"),
    "backup destination in s3 without credentials": (
        lambda: _without(s3(), "spec.backup.destination.s3.credentialsSecret"), "credentialsSecret"),
    "bootstrap from nowhere": (
        lambda: _set(restored(), "spec.bootstrap.backup.source", {}),
        "bootstrap.backup.source: set exactly one of s3 or volume"),
    "bootstrap until a time that is not RFC 3339": (
        lambda: _set(restored(), "spec.bootstrap.backup.until", "yesterday"), "does not match"),
    "OIDC issuer over plain http to another host": (
        lambda: _set(oidc(), "spec.auth.oidc.issuer", "http://login.example.com"),
        "auth.oidc.issuer must be an https:// URL (http:// only for localhost or 127.0.0.1)"),
    "OIDC issuer that is no URL": (
        lambda: _set(oidc(), "spec.auth.oidc.issuer", "login.example.com"), "does not match"),
    "OIDC without a client id": (
        lambda: _without(oidc(), "spec.auth.oidc.clientId"), "clientId"),
    "OIDC client secret without a Secret name": (
        lambda: _without(oidc(), "spec.auth.oidc.clientSecretRef.name"), "name"),
    "OIDC default role Sentry does not have": (
        lambda: _set(oidc(), "spec.auth.oidc.defaultRole", "superuser"), "does not match"),
    "session lifetime in words": (
        lambda: _set(oidc(), "spec.auth.sessionIdleTimeout", "2 hours"), "does not match"),
    "no login failure allowed": (
        lambda: _set(oidc(), "spec.auth.loginMaxFailures", 0), "minimum"),
    "password login off without single sign-on": (
        lambda: _set(minimal(), "spec.auth", {"passwordLogin": False}),
        "auth.passwordLogin: false needs auth.oidc"),
}


def test_local_http_issuers_are_accepted(crd):
    for issuer in ("http://localhost:5556/dex", "http://127.0.0.1", "https://login.example.com"):
        doc = _set(oidc(), "spec.auth.oidc.issuer", issuer)
        assert crd_schema.validate(crd, doc) == [], issuer
        assert crd_schema.cel_errors(crd, doc) == [], issuer


def test_oidc_example_mounts_the_client_secret_and_keeps_it_out_of_the_config(rendered_examples):
    objects = next(objs for ident, objs in rendered_examples.items() if "oidc.yaml" in ident)
    config = next(o for o in objects if o["kind"] == "ConfigMap")["data"]["faultline.toml"]
    assert 'client_secret_file = "/etc/faultline-oidc/client-secret"' in config
    assert "password_login = false" in config and "require_mfa = true" in config
    pod = next(o for o in objects if o["kind"] == "StatefulSet")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "oidc-client-secret")
    assert volume["secret"] == {"secretName": "faultline-oidc", "optional": False,
                                "defaultMode": 0o440,
                                "items": [{"key": "clientSecret", "path": "client-secret"}]}
    mount = next(m for m in pod["containers"][0]["volumeMounts"]
                 if m["name"] == "oidc-client-secret")
    assert mount == {"name": "oidc-client-secret", "mountPath": "/etc/faultline-oidc",
                     "readOnly": True}


def test_crd_rejects_a_backup_of_an_invalid_tracker_name(backup_crd):
    errors = crd_schema.validate(backup_crd, _set(backup(), "spec.tracker", "Errors_1"))
    assert any("does not match" in e for e in errors), errors
    errors = crd_schema.validate(backup_crd, _without(backup(), "spec.tracker"))
    assert any("tracker" in e for e in errors), errors


def test_backup_spec_cannot_change(backup_crd):
    old = backup()
    new = _set(backup(), "spec.tracker", "other")
    assert crd_schema.cel_errors(backup_crd, new) == []
    assert any("spec is immutable" in e for e in crd_schema.cel_errors(backup_crd, new, old=old))
    assert crd_schema.cel_errors(backup_crd, old, old=old) == []


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_crd_rejects_invalid_spec(crd, case):
    build, words = REJECTED[case]
    doc = build()
    errors = crd_schema.validate(crd, doc)
    if not errors:
        errors = crd_schema.cel_errors(crd, doc)
    assert errors, f"{case}: accepted"
    assert any(words in e for e in errors), errors


# Edits of an existing tracker (old -> new) the API server must refuse, and some it must allow.
UPDATES = {
    "resizing the WAL volume": (minimal, lambda d: _set(d, "spec.storage.wal", {"size": "50Gi"}),
                                "storage.wal is immutable"),
    "moving from local to s3": (
        minimal, lambda d: _set(d, "spec.storage.objectStore",
                                s3()["spec"]["storage"]["objectStore"]),
        "cannot switch between local and s3"),
    "resizing the local object store": (
        minimal, lambda d: _set(d, "spec.storage.objectStore.local", {"size": "99Gi"}),
        "storage.objectStore.local is immutable"),
    "adding a project": (minimal, lambda d: _set(d, "spec.projects", [{"name": "backend"},
                                                                     {"name": "web"}]), None),
    "changing the retention": (s3, lambda d: _set(d, "spec.retention.defaultDays", 7), None),
    "moving to another bucket": (
        s3, lambda d: _set(d, "spec.storage.objectStore.s3.bucket", "other-bucket"), None),
    "bootstrapping a running tracker": (
        minimal, lambda d: _set(d, "spec.bootstrap", restored()["spec"]["bootstrap"]),
        "bootstrap is immutable"),
    "changing the restore's point in time": (
        restored, lambda d: _set(d, "spec.bootstrap.backup.until", "2026-11-25T00:00:00Z"),
        "bootstrap is immutable"),
    "dropping the bootstrap": (
        restored, lambda d: _without(d, "spec.bootstrap"), "bootstrap is immutable"),
    "changing a restored tracker's retention": (
        restored, lambda d: _set(d, "spec.retention.defaultDays", 7), None),
}


@pytest.mark.parametrize("case", sorted(UPDATES))
def test_crd_transition_rules_on_update(crd, case):
    start, edit, words = UPDATES[case]
    old = start()
    new = edit(start())
    assert crd_schema.validate(crd, new) == []
    assert crd_schema.cel_errors(crd, new) == [], "the edited spec is valid on create"
    errors = crd_schema.cel_errors(crd, new, old=old)
    if words is None:
        assert errors == []
    else:
        assert any(words in e for e in errors), errors


def test_crd_defaults_fill_an_empty_spec(crd):
    schema = crd_schema.served_version(crd, "faultline.dev/v1alpha1")["schema"]["openAPIV3Schema"]
    doc = crd_schema.apply_defaults(schema, {"apiVersion": "faultline.dev/v1alpha1",
                                             "kind": ERROR_TRACKER, "metadata": {"name": "x"},
                                             "spec": {}})
    spec = doc["spec"]
    assert spec["replicas"] == 1
    assert spec["retention"]["defaultDays"] == 90
    assert spec["security"]["readOnlyRootFilesystem"] is True
    assert spec["networkPolicy"]["enabled"] is True


def test_crd_is_structural_and_served(crd):
    """The shape a structural schema needs: every node typed, and one storage version."""
    versions = crd["spec"]["versions"]
    assert [v["name"] for v in versions if v["storage"]] == ["v1alpha1"]
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["metadata"]["name"] == "errortrackers.faultline.dev"

    def untyped(schema: dict[str, Any], path: str) -> list[str]:
        found = []
        if "type" not in schema and not schema.get("x-kubernetes-int-or-string") \
                and not schema.get("x-kubernetes-preserve-unknown-fields") and path:
            found.append(path)
        for name, sub in schema.get("properties", {}).items():
            found += untyped(sub, f"{path}.{name}")
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                found += untyped(schema[key], f"{path}.{key}")
        return found

    assert untyped(versions[0]["schema"]["openAPIV3Schema"], "") == []
    assert "status" in versions[0]["subresources"]


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_rendered_objects_validate_strictly(rendered_examples, version):
    errors = [e for objects in rendered_examples.values() for o in objects
              for e in strict_errors(o, version)]
    assert errors == []


def test_render_prints_the_objects_of_each_tracker(rendered_examples):
    for ident, objects in rendered_examples.items():
        kinds = {o["kind"] for o in objects}
        assert {"ServiceAccount", "ConfigMap", "Service", "StatefulSet",
                "PodDisruptionBudget"} <= kinds, (ident, kinds)
        tracker = next(d for i, d in example_documents() if i == ident)
        secrets = {o["metadata"]["name"] for o in objects if o["kind"] == "Secret"}
        expected = {f"{tracker['metadata']['name']}-dsn-{p['name']}"
                    for p in tracker["spec"].get("projects", [])}
        assert expected <= secrets, (ident, secrets)
        ingress = [o for o in objects if o["kind"] == "Ingress"]
        assert len(ingress) == (1 if "ingress" in tracker["spec"] else 0), ident


@pytest.mark.parametrize("values", sorted(VALUE_SETS))
@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_chart_objects_validate_strictly(chart_objects, values, version):
    objects = chart_objects[values]
    assert {"CustomResourceDefinition", "Deployment", "ClusterRole"} <= {o["kind"] for o in objects}
    assert [e for o in objects for e in strict_errors(o, version)] == []


def test_strict_validation_rejects_an_unknown_field(chart_objects):
    """Strictness is what catches a misspelt field that the API server would silently drop."""
    deployment = copy.deepcopy(next(o for o in chart_objects["default"] if o["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}
    for version in KUBE_VERSIONS:
        [error] = strict_errors(deployment, version)
        assert "securityContex" in error
