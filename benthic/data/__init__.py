"""Data: loaders for CIFAR (`cifar`), the reef-photo set (`coral`), BenthicNet CSVs (`benthicnet`) and a
synthetic BenthicNet-like catalogue for tests (`synthetic`); BenthicNet's spatial subsampling (`subsample`);
dataset statistics (`stats`) and the catalogues they describe at each scale (`catalogues`). Import the
submodule you need."""
