"""The bundled samples through the embedded runtime to a local server speaking Slack's
chat.postMessage API: the seed story is one message with its escalation in the thread; a 429
burst is waited out, not duplicated; the thread survives a restart."""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import SecretStr

from monitor.feeds.sources import load_feeds, sample_feeds_path
from monitor.rules.ruleset import load_ruleset
from monitor.runtime.delivery import RetryPolicy
from monitor.runtime.embedded import EmbeddedRuntime
from monitor.settings import Settings
from monitor.state.sqlite import Store
from tests.conftest import RULES
from tests.unit.sinks.slack_server import SlackServer


def rules_with_slack(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    (rules / "routes.yaml").write_text(
        "routes:\n  - name: desk-slack\n    sink: slack\n    min_level: high\n"
    )
    return rules


async def test_seed_story_is_one_slack_message_and_a_threaded_reply(tmp_path: Path) -> None:
    async with SlackServer() as slack:
        slack.rate_limit("api", retry_after=1, times=2)  # Slack pushes back at first
        settings = Settings(
            state=tmp_path / "s.db",
            slack_bot_token=SecretStr(slack.token),
            slack_channel="#desk",
            slack_api_url=slack.api_base_url,
        )
        runtime = EmbeddedRuntime(
            settings, load_ruleset(rules_with_slack(tmp_path)), load_feeds(sample_feeds_path())
        )
        runtime.deliverer.retry = RetryPolicy(attempts=5, base_delay=0.1)
        report = await runtime.run(once=True)
        assert report.failed == 0
        landed = [s.body for s in slack.api[2:]]  # the first two were answered 429
        seed = [b for b in landed if "militarily and technically" in str(b.get("text", ""))]
        assert len(seed) == 2, seed
        top, reply = seed
        assert "thread_ts" not in top and reply["channel"] == top["channel"] == "#desk"
        # the reply sits in the story's thread, whose ts the sink keeps in the state file
        store = Store(tmp_path / "s.db")
        threads = dict(store.table("slack_threads").items())
        store.close()
        assert reply["thread_ts"] in threads.values()
        # the 429s were waited out, not turned into duplicates
        keys = [(str(b.get("text")), b.get("thread_ts")) for b in landed]
        assert len(keys) == len(set(keys))
