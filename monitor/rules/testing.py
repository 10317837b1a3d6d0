"""Run the test cases rule files carry: each example must trigger exactly the rules it expects."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.rules.ruleset import LocatedTest, RuleSet


@dataclass(frozen=True)
class TestResult:
    test: LocatedTest
    fired: tuple[str, ...]
    ok: bool
    reason: str

    @property
    def where(self) -> str:
        return f"{self.test.path}:{self.test.line}"


def run_rule_tests(ruleset: RuleSet) -> list[TestResult]:
    results = []
    for located in ruleset.tests:
        title, body = located.case.as_title_body
        fired = tuple(sorted({m.rule_id for m in ruleset.tagger.tag(title, body)}))
        expected = set(located.case.expect)
        missing = sorted(expected - set(fired))
        extra = sorted(set(fired) - expected)
        reasons = []
        if missing:
            reasons.append(f"did not fire: {', '.join(missing)}")
        if extra:
            reasons.append(f"fired unexpectedly: {', '.join(extra)}")
        results.append(TestResult(located, fired, not reasons, "; ".join(reasons)))
    return results
