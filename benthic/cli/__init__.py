"""Command lines: the `benthic` console script (`main`) with its `train`, `classify`, `embed` and `annotate`
subcommands, and the papermill runner behind `./run_all.sh` (`notebooks`). Nothing in the package imports from
here."""
