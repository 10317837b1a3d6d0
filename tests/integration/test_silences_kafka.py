"""Silences in the Kafka runtime: `monitor silence add/list/remove` write the compacted topic
news.silences, and a follower (what every worker runs) sees each change within seconds."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from contextlib import suppress

from monitor.models import Silence
from monitor.runtime.silences import follow_silences
from tests.conftest import REPO, until
from tests.integration.kafka_support import Deployment, produce


async def cli(d: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor.cli",
        *args,
        cwd=REPO,
        env={**d.env, "COLUMNS": "200"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return subprocess.CompletedProcess(list(args), proc.returncode, out.decode(), err.decode())


def silence_id(output: str) -> str:
    found = re.search(r"\bsil-[0-9a-f]{8}\b", output)
    assert found, output
    return found.group(0)


async def test_cli_silences_reach_a_follower_and_go_away(deployment: Deployment) -> None:
    d = deployment
    silences: dict[str, Silence] = {}
    # Started before the topic exists (the CLI creates it): the follower waits for it.
    follower = asyncio.create_task(follow_silences(d.bootstrap, d.topic("news.silences"), silences))
    try:
        add = await cli(
            d, "silence", "add", "--rule", "invasion", "--for", "4h", "--reason", "feature series"
        )
        assert add.returncode == 0, add.stderr
        by_rule = silence_id(add.stdout)
        assert "news.silences" in add.stdout
        add = await cli(
            d,
            "silence",
            "add",
            "--story",
            "story-42",
            "--route",
            "archive",
            "--for",
            "30m",
            "--reason",
            "covered",
        )
        assert add.returncode == 0, add.stderr
        by_story = silence_id(add.stdout)

        await until(lambda: {by_rule, by_story} <= silences.keys(), 20, "the silences to arrive")
        assert silences[by_rule].rule == "invasion" and silences[by_rule].route is None
        assert silences[by_story].story == "story-42" and silences[by_story].route == "archive"
        assert silences[by_rule].reason == "feature series"

        listed = await cli(d, "silence", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        rows = {r["id"]: r for r in json.loads(listed.stdout)}
        assert rows.keys() == {by_rule, by_story}
        assert rows[by_rule]["active"] is True and rows[by_rule]["silenced"] is None
        table = await cli(d, "silence", "list")
        assert by_rule in table.stdout and "feature series" in table.stdout

        removed = await cli(d, "silence", "remove", by_rule)
        assert removed.returncode == 0, removed.stderr
        assert by_rule in removed.stdout
        await until(lambda: by_rule not in silences, 10, "the removal to arrive")
        assert by_story in silences

        listed = await cli(d, "silence", "list", "--json")
        assert [r["id"] for r in json.loads(listed.stdout)] == [by_story]
        again = await cli(d, "silence", "remove", by_rule)
        assert again.returncode == 1
        assert f"no silence '{by_rule}'" in again.stderr

        # A record that is not a silence is logged and skipped; the follower carries on, and a
        # follower started now (a new worker) rebuilds the same set from the topic.
        await asyncio.to_thread(produce, d, "news.silences", [(b"sil-garbage", b"{not json")])
        add = await cli(
            d, "silence", "add", "--rule", "mobilization", "--for", "1h", "--reason", "drill"
        )
        third = silence_id(add.stdout)
        await until(lambda: third in silences, 10, "a silence after the bad record")
        assert "sil-garbage" not in silences
        late: dict[str, Silence] = {}
        newcomer = asyncio.create_task(follow_silences(d.bootstrap, d.topic("news.silences"), late))
        try:
            await until(lambda: late.keys() == {by_story, third}, 20, "the newcomer to catch up")
        finally:
            newcomer.cancel()
            with suppress(asyncio.CancelledError):
                await newcomer
        assert not follower.done()
    finally:
        follower.cancel()
        with suppress(asyncio.CancelledError):
            await follower


async def test_follower_outlives_an_unreachable_broker() -> None:
    """No broker at all: the follower logs, backs off and keeps trying; it never raises."""
    silences: dict[str, Silence] = {}
    follower = asyncio.create_task(follow_silences("127.0.0.1:1", "news.silences", silences))
    await asyncio.sleep(3)
    assert not follower.done()
    follower.cancel()
    with suppress(asyncio.CancelledError):
        await follower
    assert follower.cancelled()
    assert silences == {}
