"""The PyTorch twins of our networks that torchvision does not have, under our (torchvision-style)
state_dict keys: used by scripts/bench_pytorch.py and scripts/check_export.py."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class CifarBlock(nn.Module):
    """A basic block with option A's shortcut: subsample and zero-pad the new channels."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.extra = stride, cout - cin

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
        if self.extra:
            before = self.extra // 2
            shortcut = F.pad(shortcut, (0, 0, 0, 0, before, self.extra - before))
        return F.relu(out + shortcut)


class CifarResNet(nn.Module):
    """He et al. (2016) §4.2: 6n+2 layers, 16-32-64 filters."""

    def __init__(self, n, num_classes, in_channels):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for i, cout in enumerate([16, 32, 64]):
            blocks = []
            for b in range(n):
                blocks.append(CifarBlock(cin, cout, 2 if (i > 0 and b == 0) else 1))
                cin = cout
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class LeNet5(nn.Module):
    """LeNet-5: conv 5x5 -> 6, avg-pool 2, conv 5x5 -> 16, avg-pool 2, 400 -> 120 -> 84 -> classes."""

    def __init__(self, num_classes, in_channels, act):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, num_classes)
        self.act = act

    def forward(self, x):
        x = F.avg_pool2d(self.act(self.conv1(x)), 2)
        x = F.avg_pool2d(self.act(self.conv2(x)), 2)
        x = self.act(self.fc1(torch.flatten(x, 1)))
        return self.fc3(self.act(self.fc2(x)))
