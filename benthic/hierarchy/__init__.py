"""Label trees: the CATAMI hierarchy (`catami`), translation of a source scheme's labels into it or into
the scheme's own tree (`translate`), the hierarchical multi-label head and loss (`hml`), and readable
descriptions of CATAMI paths (`describe`). Import the submodule you need."""
