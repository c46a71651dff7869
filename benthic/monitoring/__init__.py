"""Label-free monitoring of SSL progress: settings (`config`), milestone evaluation (`milestones`), Pearson
tables (`tables`), figures (`plots`), dimensional collapse (`collapse`), the training hook (`hook`) and the
monitor of a run on a user's own collection (`watch`), the notebooks' runs (`runs`), the spread over UMAP seeds
(`umap_spread`), the paper's own values (`paper_tables`), and the gpu scale's one run: its plan and time
estimate (`gpu_plan`), worker processes (`gpu_workers`), results files (`gpu_record`), the run (`gpu_run`) and
its committed results read back (`gpu_results`). Import the submodule you need."""
