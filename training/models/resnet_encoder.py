"""ResNet-18/50 feature encoder for the depth and pose networks.

Written here because torchvision is not a dependency. Parameter names follow the usual
ResNet layout (``conv1``, ``bn1``, ``layer1.0.conv1``, ...) so a ResNet state_dict saved
elsewhere (for example an ImageNet checkpoint converted to a plain ``state_dict`` file) loads
with :meth:`ResNetEncoder.load_weights`. Nothing is ever downloaded.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["BasicBlock", "Bottleneck", "ResNetEncoder", "RESNET_LAYERS"]

logger = logging.getLogger(__name__)

# blocks per stage, block type
RESNET_LAYERS: dict[int, tuple[tuple[int, int, int, int], str]] = {
    18: ((2, 2, 2, 2), "basic"),
    34: ((3, 4, 6, 3), "basic"),
    50: ((3, 4, 6, 3), "bottleneck"),
}

# Keys of a classification checkpoint that the encoder has no use for.
_CLASSIFIER_KEYS = ("fc.weight", "fc.bias")


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_ch: int, ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_ch, ch * self.expansion, stride)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand (x4) with a residual connection (ResNet-50)."""

    expansion = 4

    def __init__(self, in_ch: int, ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, ch, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)
        self.conv3 = nn.Conv2d(ch, ch * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(ch * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_ch, ch * self.expansion, stride)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _shortcut(in_ch: int, out_ch: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))


class ResNetEncoder(nn.Module):
    """ResNet trunk returning five feature maps (no pooling head, no classifier).

    Args:
        num_layers: 18, 34 or 50.
        in_channels: input channels; 3 for an image, 6 for two stacked images (PoseNet).
        weights_path: optional local ``state_dict`` file (``torch.save(model.state_dict())``)
            loaded with ``weights_only=True``; see :meth:`load_weights`.

    Attributes:
        num_ch_enc: channels of the five outputs, ``[64, 64, 128, 256, 512]`` for ResNet-18,
            ``[64, 256, 512, 1024, 2048]`` for ResNet-50.

    Shapes:
        ``forward(x: (B, in_channels, H, W)) -> [f0 (B, c0, H/2, W/2), f1 (H/4), f2 (H/8),
        f3 (H/16), f4 (H/32)]`` (``f0`` after the stem conv+BN+ReLU, ``f1`` after max-pool
        and ``layer1``, then ``layer2..4``). H and W should be multiples of 32 for the
        decoder's skip connections to line up; the encoder itself does not require it.
    """

    def __init__(self, num_layers: int = 18, in_channels: int = 3, weights_path: str | Path | None = None) -> None:
        super().__init__()
        if num_layers not in RESNET_LAYERS:
            raise ValueError(f"num_layers must be one of {sorted(RESNET_LAYERS)}, got {num_layers!r}")
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
        blocks, kind = RESNET_LAYERS[num_layers]
        block: type[BasicBlock] | type[Bottleneck] = BasicBlock if kind == "basic" else Bottleneck
        self.num_layers = num_layers
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_ch = 64
        stages = []
        for i, (n, ch) in enumerate(zip(blocks, (64, 128, 256, 512))):
            stride = 1 if i == 0 else 2
            layers = [block(in_ch, ch, stride)]
            in_ch = ch * block.expansion
            layers += [block(in_ch, ch) for _ in range(n - 1)]
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_ch_enc = [64] + [ch * block.expansion for ch in (64, 128, 256, 512)]
        self._init_weights()
        if weights_path is not None:
            self.load_weights(weights_path)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        f0 = self.relu(self.bn1(self.conv1(x)))
        f1 = self.layer1(self.maxpool(f0))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        return [f0, f1, f2, f3, f4]

    def load_weights(self, weights_path: str | Path) -> None:
        """Load a local ResNet ``state_dict`` (``weights_only=True``).

        Classifier keys (``fc.*``) are ignored. A 3-channel ``conv1.weight`` loaded into an
        encoder with ``in_channels = 3k`` is repeated k times and divided by k (so k identical
        images give the 3-channel activations), as monodepth2 does for its pose encoder.

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file is not a state_dict, or its keys or shapes do not match
                this encoder (the message lists the missing / unexpected / mismatched keys).
        """
        path = Path(weights_path)
        if not path.is_file():
            raise FileNotFoundError(f"encoder weights not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
            raise ValueError(f"{path}: expected a state_dict (dict of name -> tensor), got {type(state).__name__}")
        state = {k: v for k, v in state.items() if k not in _CLASSIFIER_KEYS}
        own = self.state_dict()
        conv1 = state.get("conv1.weight")
        if (
            conv1 is not None
            and conv1.ndim == 4
            and conv1.shape[1] == 3
            and self.in_channels != 3
            and self.in_channels % 3 == 0
        ):
            k = self.in_channels // 3
            state["conv1.weight"] = conv1.repeat(1, k, 1, 1) / k
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        mismatched = sorted(
            f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
            for k in set(own) & set(state)
            if state[k].shape != own[k].shape
        )
        if missing or unexpected or mismatched:
            raise ValueError(
                f"{path}: weights do not fit ResNet-{self.num_layers} (in_channels={self.in_channels}): "
                f"missing keys {_head(missing)}, unexpected keys {_head(unexpected)}, "
                f"shape mismatches {_head(mismatched)}"
            )
        self.load_state_dict(state, strict=True)
        logger.info("loaded ResNet-%d encoder weights from %s", self.num_layers, path)


def _head(items: list[str], n: int = 5) -> str:
    if len(items) <= n:
        return str(items)
    return f"{items[:n]} (+{len(items) - n} more)"
