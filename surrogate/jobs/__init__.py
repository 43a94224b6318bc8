"""The commands, one module each: `run` (score models on transcripts), the built-in
`default` job, `analyze`, `compare_personas`, `plan`, `report` (with its `figures`),
`merge`, `simulate`, `import_table`, `compare_agents`, `finetune`, and the organisms' build
(`organisms`). Each takes the same options the command line does (see surrogate.options)."""
