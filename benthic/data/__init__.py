"""Data: the one image reader every loader uses (`reader`); image collections to pretrain on, a folder or a
BenthicNet CSV indexed compactly (`collection`) and streamed through DataLoader workers (`stream`); loaders for
CIFAR (`cifar`), the reef-photo set (`coral`), BenthicNet CSVs (`benthicnet`) and a synthetic BenthicNet-like
catalogue for tests (`synthetic`); BenthicNet's spatial subsampling (`subsample`); dataset statistics (`stats`)
and the catalogues they describe at each scale (`catalogues`). Import the submodule you need."""
