"""Feeds: the feed list, fetching (conditional GET, file://), parsing to Articles, polling."""
