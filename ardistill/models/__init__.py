"""Networks and their checkpoint IO, one family per folder. Nothing here knows about sampling schedules,
distillation methods or benchmarks (those compose the models, never the other way round)."""
