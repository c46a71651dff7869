"""Encoders and what feeds them: backbones with random init (`backbones`), ImageNet-pretrained encoders
(`pretrained`), and batched on-device augmentation (`augment`). Import the submodule you need."""
