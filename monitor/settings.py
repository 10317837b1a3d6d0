"""Settings from ``MONITOR_*`` environment variables (command-line options override them)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    # env_ignore_empty: `FOO=` (an unset secret in compose or k8s) means "not set", not "".
    model_config = SettingsConfigDict(env_prefix="MONITOR_", extra="ignore", env_ignore_empty=True)

    feeds: Path | None = Field(
        default=None, description="Feed list (YAML); default: bundled samples"
    )
    rules: Path = Field(default=Path("alert_rules"), description="Rules directory")
    # `monitor run` reloads the rules directory when it changes (seconds between looks; 0: off)
    rules_reload_interval: float = Field(default=2.0, ge=0)
    state: Path = Field(default=Path(".monitor/state.db"), description="SQLite state file")
    jsonl: Path | None = Field(default=None, description="Append alerts to this JSON-lines file")
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    no_color: bool = False
    log_format: Literal["auto", "console", "json"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Kafka runtime
    kafka_bootstrap: str | None = Field(default=None, description="host:port[,host:port]")
    kafka_partitions: int = Field(default=4, ge=1, le=1024)
    kafka_replication: int = Field(default=1, ge=1, le=7)
    kafka_group: str = Field(default="news-monitor", pattern=r"^[A-Za-z0-9._-]+$")
    kafka_topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")
    data_dir: Path = Field(default=Path(".monitor/worker"), description="Worker table store")
    # Seconds a worker that died without leaving (SIGKILL, a lost host) keeps its partitions
    # before the group hands them to the others: their records wait that long. Shorter means
    # sooner recovery, and a rebalance after any pause that long (a stop-the-world GC, say).
    kafka_session_timeout: float = Field(default=60.0, ge=6, le=300)
    # Email sink (secrets only from the environment; SecretStr keeps them out of logs)
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: Literal["none", "starttls", "tls"] = "starttls"
    email_from: str | None = None
    email_to: str | None = Field(default=None, description="Comma-separated addresses")
    # Slack sink: a bot token (with its channel) threads a story's updates; a webhook cannot
    slack_webhook_url: SecretStr | None = None
    slack_bot_token: SecretStr | None = None
    slack_channel: str | None = None
    slack_api_url: str = "https://slack.com/api/"
    # Every article as it arrived is kept this many days in the state file, for
    # `monitor rules backtest --input state:PATH`; 0 keeps none.
    archive_days: float = Field(default=30, ge=0)
    # Delivery retries: backoff doubles from 1 s up to delivery_max_delay; with the defaults a
    # destination may be down for about two minutes before an alert is set aside as dead.
    delivery_attempts: int = Field(default=8, ge=1, le=50)
    delivery_max_delay: float = Field(default=60.0, gt=0)
    # Fetching feeds: timeouts for the whole exchange, connecting, and the wait for more bytes
    fetch_timeout: float = Field(default=30.0, gt=0)
    fetch_connect_timeout: float = Field(default=10.0, gt=0)
    fetch_read_timeout: float = Field(default=20.0, gt=0)
    fetch_max_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    fetch_concurrency: int = Field(default=16, ge=1)
    fetch_per_host: int = Field(default=2, ge=1, description="Polls at once to one host")
    # Shown in the User-Agent (news-monitor/<version> (+URL)): how a publisher reaches you.
    fetch_contact_url: str = ""
    # Networks (CIDR, comma-separated) every feed may reach, private or not; cloud metadata
    # addresses stay refused whatever is listed.
    fetch_allowed_networks: str = ""
    # The adaptive schedule's bounds (seconds): a feed is polled as often as it publishes,
    # never more often than the first nor less often than the second (a feed's own configured
    # interval outside them widens them).
    poll_min_interval: float = Field(default=300.0, ge=1)
    poll_max_interval: float = Field(default=6 * 3600.0, ge=1)
    # Full text for `fetch_article: true` feeds: article pages fetched at once (all hosts).
    fulltext_concurrency: int = Field(default=8, ge=1)
    # WebSub: the public URL at which hubs reach this process's callback listener (unset:
    # WebSub off, polling only). The listener binds websub_host:websub_port; behind a proxy
    # the URL is the proxy's.
    websub_callback_url: str | None = None
    websub_host: str = "127.0.0.1"
    websub_port: int = Field(default=8099, ge=0, le=65535)
    websub_lease: float = Field(default=10 * 86400.0, ge=60, description="Lease asked for")
    # Hubs advertised as http:// are reached over https:// (the spec favours it) unless this
    # is set: a hub on an intranet, or a test's.
    websub_allow_http_hubs: bool = False

    @field_validator("fetch_allowed_networks")
    @classmethod
    def _networks(cls, v: str) -> str:
        for net in _split(v):
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"{net!r} is not a network (CIDR, as 10.0.0.0/8)") from None
        return v

    @field_validator("websub_callback_url")
    @classmethod
    def _callback(cls, v: str | None) -> str | None:
        if v is not None and not v.lower().startswith(("http://", "https://")):
            raise ValueError("must be an http(s):// URL (where hubs reach this process)")
        return v

    def allowed_networks(self) -> list[str]:
        """``fetch_allowed_networks`` as a list."""
        return _split(self.fetch_allowed_networks)


def _split(value: str) -> list[str]:
    return [n.strip() for n in value.split(",") if n.strip()]
