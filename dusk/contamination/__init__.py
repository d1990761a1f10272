"""The contamination test (SOLAR's Table 9, after Shi et al.'s reference-model test, with Min-K% Prob): has a model
seen the benchmarks? `config` (what to test), `items` (which benchmark texts), `scoring` (samples and losses),
`min_k` (Min-K% Prob), `run` (the test), `report` (tables and files), `commands` (the CLI)."""
