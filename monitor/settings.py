"""Settings from ``MONITOR_*`` environment variables (command-line options override them)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
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
    # Fetching
    fetch_timeout: float = Field(default=30.0, gt=0)
    fetch_max_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    fetch_concurrency: int = Field(default=16, ge=1)
