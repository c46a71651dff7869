"""Label-free monitoring of SSL progress: settings (`config`), milestone evaluation (`milestones`), Pearson
tables (`tables`), figures (`plots`), dimensional collapse (`collapse`), the training hook (`hook`), the
notebooks' runs (`runs`), the spread over UMAP seeds (`umap_spread`) and the paper's own values
(`paper_tables`). Import the submodule you need."""
