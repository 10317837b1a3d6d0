"""The ops dashboard and the pipeline-health alerts against a real Prometheus scraping real
processes: every PromQL expression in deploy/grafana/dashboards/monitor.json must return data,
deploy/prometheus/alerts.yml must evaluate without errors (and the alerts the run provokes must
fire), and /metrics must pass `promtool check metrics`.

The embedded runtime (`monitor run`) feeds every panel except those marked "Kafka runtime only"
in their description; those get a `monitor worker` on the local broker. Nothing is faked: the
run reads the bundled sample feeds (file:// URLs, re-read every 10 s), some of which appear only
after Prometheus has scraped the run once, so that its counters move while Prometheus watches;
email goes to a closed port (delivery errors, dead letters); a rule file is broken and then
fixed under the running process (reload error, reload ok).

promtool and prometheus come from Debian's `prometheus` package (.ci/run installs it); missing,
they fail the tests under CI and skip them elsewhere."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, RULES, unavailable
from tests.integration.kafka_support import Deployment, wait_for
from tests.integration.test_rules_reload import ZEPPELIN_RULE

DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "monitor.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
SAMPLES = REPO / "monitor" / "samples"
KAFKA_ONLY = "Kafka runtime only"

# Grafana's variables, as concrete values. $__rate_interval and $__range span the whole run.
VARIABLES = {"__rate_interval": "2m", "__interval": "15s", "__range": "5m", "feed": ".*"}

# Feeds present from the start / appearing once Prometheus has scraped the run.
EARLY = ["eastern-ledger", "daily-courier", "metro-digest"]
LATE = ["global-wire", "harbour-times", "capital-observer"]


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} not found (Debian/Ubuntu: apt-get install prometheus)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode("utf-8"))


def until(
    condition: Callable[[], bool], timeout: float, what: str, logs: Callable[[], str]
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (OSError, urllib.error.URLError):
            pass  # not listening yet
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs()}")


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"({path.name}: no output)"
    return f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# ------------------------------------------------------------------------------ Prometheus


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[str]
    log: Path

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        body = json.loads(http_get(f"{self.url}/api/v1/{path}?{query}"))
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])


@dataclass
class Target:
    job: str
    address: str
    labels: dict[str, str]


def start_prometheus(root: Path, targets: list[Target]) -> Prometheus:
    """A real Prometheus scraping ``targets`` every second, with the repository's alerts."""
    binary = tool("prometheus")
    root.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {
                "job_name": t.job,
                "static_configs": [{"targets": [t.address], "labels": t.labels}],
            }
            for t in targets
        ],
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    log = root / "prometheus.log"
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    prometheus = Prometheus(f"http://127.0.0.1:{port}", proc, log)

    def ready() -> bool:
        assert proc.poll() is None, f"prometheus exited {proc.returncode}\n{tail(log)}"
        return "Ready" in http_get(f"{prometheus.url}/-/ready", timeout=1)

    until(ready, 30, "Prometheus to be ready", lambda: tail(log))
    return prometheus


# ------------------------------------------------------------------------------- dashboard


@dataclass(frozen=True)
class Query:
    panel: str
    expr: str  # as in the dashboard
    kafka_only: bool

    @property
    def promql(self) -> str:
        """With Grafana's variables replaced by concrete values; an unknown one is a KeyError."""
        return re.sub(r"\$\{?(\w+)\}?", lambda m: VARIABLES[m[1]], self.expr)


def dashboard_queries() -> list[Query]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    out = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            walk(panel.get("panels", []))  # panels inside collapsed rows
            kafka = KAFKA_ONLY in panel.get("description", "")
            for target in panel.get("targets", []):
                out.append(Query(panel["title"], target["expr"], kafka))

    walk(dashboard["panels"])
    # template variables: label_values(metric, label) as the PromQL that returns those values
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", text)
            assert m, f"variable {variable['name']}: unexpected query {text!r}"
            out.append(Query(f"${variable['name']}", f"count by ({m[2]}) ({m[1]})", False))
    assert out
    return out


def lacking(prometheus: Prometheus, queries: list[Query]) -> dict[str, str]:
    """Queries without data, each with why: no series, or only NaN / infinite values."""
    missing = {}
    for q in queries:
        result = prometheus.query(q.promql)
        values = [float(r["value"][1]) for r in result]
        if not values:
            missing[f"{q.panel}: {q.promql}"] = "no series"
        elif not any(math.isfinite(v) for v in values):
            missing[f"{q.panel}: {q.promql}"] = f"only {values}"
    return missing


def check_metrics(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
    )


# ------------------------------------------------------------------------ embedded runtime


@dataclass
class EmbeddedStack:
    root: Path
    metrics_url: str
    run: subprocess.Popen[str]
    prometheus: Prometheus

    def logs(self) -> str:
        return "\n".join(tail(p) for p in (self.root / "run.log", self.prometheus.log))

    def metrics(self) -> str:
        return http_get(self.metrics_url)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    tool("prometheus")
    tool("promtool")
    root = tmp_path_factory.mktemp("observability")
    feeds_dir = root / "feeds"
    feeds_dir.mkdir()
    for name in EARLY:
        shutil.copy(SAMPLES / f"{name}.xml", feeds_dir)
    sample = yaml.safe_load((SAMPLES / "feeds.yaml").read_text(encoding="utf-8"))
    feeds = [
        {**f, "url": (feeds_dir / f"{f['name']}.xml").as_uri(), "interval": "10s"}
        for f in sample["feeds"]
    ]
    assert {f["name"] for f in feeds} == {*EARLY, *LATE}
    (root / "feeds.yaml").write_text(yaml.safe_dump({"feeds": feeds}), encoding="utf-8")
    rules = root / "rules"
    shutil.copytree(RULES, rules)
    (rules / "routes.yaml").write_text(
        "routes:\n"
        "  - {name: archive, sink: jsonl, min_level: low}\n"
        "  - {name: desk-email, sink: email, min_level: low}\n",
        encoding="utf-8",
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env |= {
        "MONITOR_LOG_FORMAT": "json",
        "MONITOR_RULES_RELOAD_INTERVAL": "0.5",
        # email to a port nobody listens on: each alert fails at once and is set aside
        "MONITOR_SMTP_HOST": "127.0.0.1",
        "MONITOR_SMTP_PORT": str(free_port()),
        "MONITOR_SMTP_SECURITY": "none",
        "MONITOR_EMAIL_FROM": "monitor@example.org",
        "MONITOR_EMAIL_TO": "desk@example.org",
        "MONITOR_DELIVERY_ATTEMPTS": "1",
    }
    prometheus = start_prometheus(
        root / "prometheus", [Target("monitor-run", f"127.0.0.1:{port}", {})]
    )
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monitor.cli",
            "run",
            "--feeds",
            str(root / "feeds.yaml"),
            "--rules",
            str(rules),
            "--state",
            str(root / "state.db"),
            "--jsonl",
            str(root / "alerts.jsonl"),
            "--metrics-port",
            str(port),
        ],
        cwd=REPO,
        env=env,
        stdout=(root / "run.log").open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    stack = EmbeddedStack(root, f"http://127.0.0.1:{port}/metrics", run, prometheus)
    try:

        def running(condition: Callable[[], bool]) -> Callable[[], bool]:
            def check() -> bool:
                assert run.poll() is None, f"monitor run exited {run.returncode}\n{stack.logs()}"
                return condition()

            return check

        # Prometheus has seen the first round (late feeds failing) before anything else happens
        until(
            running(lambda: bool(prometheus.query('monitor_feed_polls_total{outcome="error"}'))),
            30,
            "Prometheus to scrape the first polling round",
            stack.logs,
        )
        for name in LATE:  # picked up by the next round, 10 s after the first
            shutil.copy(SAMPLES / f"{name}.xml", feeds_dir)
        (rules / "zz-extra.yaml").write_text("rules: [\n", encoding="utf-8")  # broken YAML
        until(
            running(lambda: 'monitor_rule_reloads_total{outcome="error"} 1.0' in stack.metrics()),
            15,
            "the broken rule file to be rejected",
            stack.logs,
        )
        (rules / "zz-extra.yaml").write_text(ZEPPELIN_RULE, encoding="utf-8")
        until(
            running(lambda: 'monitor_rule_reloads_total{outcome="ok"} 1.0' in stack.metrics()),
            15,
            "the fixed rule file to be loaded",
            stack.logs,
        )
        yield stack
    finally:
        stop(run)
        stop(prometheus.proc)


def test_every_dashboard_query_returns_data_from_the_embedded_runtime(
    embedded: EmbeddedStack,
) -> None:
    queries = [q for q in dashboard_queries() if not q.kafka_only]
    assert len(queries) >= 25

    def fed() -> set[str]:
        found = embedded.prometheus.query("monitor_feed_last_success_timestamp_seconds")
        return {r["metric"]["feed"] for r in found}

    # the second polling round: every feed there (the late ones failed in the first)
    until(lambda: fed() == {*EARLY, *LATE}, 45, "a round with every feed", embedded.logs)
    # then until its articles, alerts and deliveries have been scraped
    deadline = time.monotonic() + 30
    while (missing := lacking(embedded.prometheus, queries)) and time.monotonic() < deadline:
        assert embedded.run.poll() is None, embedded.logs()
        time.sleep(1)
    assert not missing, "\n".join(f"{k}  ->  {v}" for k, v in missing.items())


def test_kafka_only_panels_are_empty_under_the_embedded_runtime(embedded: EmbeddedStack) -> None:
    """The "Kafka runtime only" mark is accurate (the test below gives those panels data)."""
    kafka = [q for q in dashboard_queries() if q.kafka_only]
    assert kafka
    for q in kafka:
        assert embedded.prometheus.query(q.promql) == [], q


def test_the_alert_rules_evaluate_and_the_provoked_alerts_fire(embedded: EmbeddedStack) -> None:
    prometheus = embedded.prometheus

    def alert_states() -> dict[tuple[str, str], str]:
        return {
            (a["labels"]["alertname"], a["labels"].get("sink") or a["labels"].get("stage", "")): a[
                "state"
            ]
            for a in prometheus.api("alerts")["alerts"]
        }

    expected = {
        ("DeadLettersGrowing", "deliver"): "firing",  # email refused every alert
        ("RuleReloadFailed", ""): "firing",  # the broken rule file
        ("DeliveriesFailing", "email"): "pending",  # 100% failing, `for: 10m` not yet over
    }
    # Pending at first, by design, and cleared by the second round: no articles seen increasing
    # yet, and the late feeds failing since the start.
    quiet = {"NoArticlesIngested", "FeedStale", "FeedFailingSinceStart", "MonitorTargetDown"}

    def settled() -> bool:
        states = alert_states()
        return expected.items() <= states.items() and not quiet & {n for n, _ in states}

    until(settled, 30, f"alerts {expected}, none of {quiet}", lambda: f"{alert_states()}")
    groups = prometheus.api("rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    names = {r["name"] for r in rules}
    assert names == set(re.findall(r"^\s*- alert: (\w+)$", ALERTS.read_text(), re.M))
    for rule in rules:  # e.g. no "many-to-many matching" at evaluation time
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))


def test_metrics_pass_promtool_check_metrics(embedded: EmbeddedStack) -> None:
    text = embedded.metrics()
    # every family the code defines is in there (labelled ones once they have a child)
    for name in ("monitor_deliveries_total", "monitor_dead_letters_total", "monitor_duplicates"):
        assert name in text
    done = check_metrics(text)
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), (
        done.stdout + done.stderr
    )


# ------------------------------------------------------------------------------ Kafka worker


def test_kafka_only_panels_return_data_from_a_worker(deployment: Deployment) -> None:
    tool("prometheus")
    tool("promtool")
    queries = [q for q in dashboard_queries() if q.kafka_only]
    port = free_port()
    prometheus = start_prometheus(
        deployment.root / "prometheus",
        [Target("monitor-worker", f"127.0.0.1:{port}", {"component": "worker"})],
    )
    try:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "monitor.cli",
                "worker",
                "--jsonl",
                str(deployment.jsonl),
                "--data-dir",
                str(deployment.root / "w1"),
                "--metrics-port",
                str(port),
            ],
            cwd=REPO,
            env=deployment.env,
            stdout=(deployment.root / "w1.log").open("w"),
            stderr=subprocess.STDOUT,
            text=True,
        )
        deployment.workers.append(worker)
        published = deployment.poll_once()  # the sample feeds, onto news.articles
        assert published.returncode == 0, published.stdout + published.stderr
        wait_for(
            lambda: not lacking(prometheus, queries),
            60,
            f"data for {[q.promql for q in queries]} (the worker's consumer-lag gauge)",
            deployment,
        )
        # one gauge per source partition the worker owns, under this deployment's topic names
        [lag] = [q for q in queries if "monitor_consumer_lag" in q.expr]
        topics = {r["metric"]["topic"] for r in prometheus.query(lag.promql)}
        assert deployment.topic("news.articles") in topics, topics
        done = check_metrics(http_get(f"http://127.0.0.1:{port}/metrics"))
        assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), (
            done.stdout + done.stderr
        )
    finally:
        deployment.stop()
        stop(prometheus.proc)
