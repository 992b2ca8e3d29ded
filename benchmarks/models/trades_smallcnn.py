"""A user's model as users write it, for benchmarks on a ``.py`` factory (not the zoo's classes).

The small CNN of the TRADES paper (Zhang et al. 2019) in the style of its public code: named layers in
``OrderedDict`` containers, one shared in-place ReLU and ``.view`` before the classifier (which
channels-last strides do not allow).  ``build_rounding`` adds input rounding to 8 bits, a preprocessing
step some users put inside the model.  Weights: ``export_weights.py`` writes the zoo PGD-AT model's
weights in this layout, so the benchmark compares the same function behind two definitions.
"""
from collections import OrderedDict

import torch
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int = 10, drop: float = 0.5):
        super().__init__()
        act = nn.ReLU(True)
        self.feature_extractor = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(1, 32, 3)), ("relu1", act), ("conv2", nn.Conv2d(32, 32, 3)), ("relu2", act),
            ("maxpool1", nn.MaxPool2d(2, 2)),
            ("conv3", nn.Conv2d(32, 64, 3)), ("relu3", act), ("conv4", nn.Conv2d(64, 64, 3)), ("relu4", act),
            ("maxpool2", nn.MaxPool2d(2, 2))]))
        self.classifier = nn.Sequential(OrderedDict([
            ("fc1", nn.Linear(64 * 4 * 4, 200)), ("relu1", act), ("drop", nn.Dropout(drop)),
            ("fc2", nn.Linear(200, 200)), ("relu2", act), ("fc3", nn.Linear(200, num_classes))]))

    def forward(self, x):
        return self.classifier(self.feature_extractor(x).view(-1, 64 * 4 * 4))


class Rounding(SmallCNN):
    def forward(self, x):
        return super().forward(torch.round(x * 255) / 255)


def build(num_classes: int = 10) -> nn.Module:
    return SmallCNN(num_classes)


def build_rounding(num_classes: int = 10) -> nn.Module:
    return Rounding(num_classes)
