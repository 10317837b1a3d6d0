"""Backtests: replay past articles through two rule sets and say what would change.

* :mod:`.sources` reads the articles to replay (feed files, JSON exports, the embedded
  runtime's archive; :mod:`.kafka` a Kafka topic), in publication order;
* :mod:`.replay` runs one rule set over them, in memory, delivering nothing;
* :mod:`.compare` diffs two replays per rule and per story;
* :mod:`.report` renders the diff as tables or one JSON document.

Only :mod:`.sources` and :mod:`.kafka` do I/O; replay and comparison are pure functions of
their inputs, so a test can drive them with a list of articles.
"""
