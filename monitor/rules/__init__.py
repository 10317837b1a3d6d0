"""Rule, route and scoring files: typed models, a loader that locates every error, the rule set."""
