"""Data loaders: CIFAR (`cifar`), the reef-photo set (`coral`), BenthicNet CSVs (`benthicnet`) and a
synthetic BenthicNet-like catalogue for tests (`synthetic`). Import the submodule you need."""
