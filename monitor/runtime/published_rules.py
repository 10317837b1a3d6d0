"""The rule set on Kafka: ``monitor rules publish`` writes it to news.rules; a worker starting
up takes the latest published set, not its local files, so a new worker joins on the version
the others run."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from monitor.errors import RuleLoadError
from monitor.logs import log
from monitor.rules.reload import RULES_KEY, PublishedRules, materialize, snapshot
from monitor.rules.ruleset import RuleSet, load_ruleset
from monitor.runtime.compacted import ensure_topic, produce, read_latest
from monitor.runtime.topics import Topics


async def publish_rules(
    bootstrap: str, names: Topics, replication: int, directory: Path, delay: timedelta
) -> PublishedRules:
    """Validate and publish; raises RuleLoadError (nothing written) if the rules are invalid."""
    published = snapshot(directory, delay)
    spec = next(s for s in names.specs(1) if s.name == names.rules)
    await ensure_topic(bootstrap, spec, replication)
    await produce(bootstrap, [(names.rules, RULES_KEY, published.model_dump_json().encode())])
    return published


async def latest_rules(bootstrap: str, names: Topics, root: Path) -> RuleSet | None:
    """The last published rule set, loaded; None if none was published (or it cannot load,
    which is logged: the worker then starts on its local files)."""
    raw = (await read_latest(bootstrap, names.rules)).get(RULES_KEY)
    if raw is None:
        return None
    try:
        published = PublishedRules.model_validate_json(raw)
        return load_ruleset(materialize(published, root))
    except (ValueError, RuleLoadError, OSError) as exc:
        log.error("published_rules_unusable", topic=names.rules, error=str(exc)[:500])
        return None
