"""benthic: self-supervised learning on seafloor imagery, label-free monitoring of its progress,
hierarchical CATAMI classification, and the notebooks that regenerate the papers' tables and figures."""

__version__ = "0.2.0"
