"""A depth network light enough for real time on a robot's CPU.

:class:`LightDispNet` has :class:`~depth_ros_training.models.dispnet.DispNet`'s interface (an
image normalised per the spec in, a list of sigmoid disparities finest first out), so every
training task and the export take it in its place. Its design follows the real-time monocular
networks RT-MonoDepth (Feng et al., 2023) and FastDepth (Wofk et al., 2019), written here:

* **Encoder**: a plain pyramid, five stages at 1/2 ... 1/32 of the input, each a stride-2 3x3
  convolution and one more 3x3 convolution (``LeakyReLU``), channels :data:`ENC_CHANNELS`
  (RT-MonoDepth's pyramid encoder instead of a ResNet: on a CPU the early, high-resolution
  stages dominate, and they are narrow here).
* **Decoder**: at each level, nearest-neighbour 2x upsampling, the skip feature *added* after a
  1x1 projection (FastDepth's and RT-MonoDepth's additive skips: no concatenation, so the
  next convolution stays narrow), then a 3x3 convolution; a sigmoid disparity head at the four
  finest levels (monodepth2's multi-scale outputs, which the photometric losses use).

Convolutions are zero-padded (reflection padding, as DispNet uses, costs a copy per layer on
CPU runtimes) and plain 3x3 / 1x1, the kernels ONNX Runtime and TensorRT run fastest, also in INT8.
The encoder's convolutions are followed by **BatchNorm** (as in the ResNet encoder, FastDepth's
MobileNet and Lite-Mono; the decoder has none, as monodepth2's): the ONNX export folds it into the
convolutions, so the exported graph and its cost are the same as without it. Measured at the
demo's recipe and budget (docs/cpu-robots.md, "BatchNorm in the light encoder"), it brought the
light network level with a ResNet-18 DispNet trained beside it. A network saved before the
encoder had BatchNorm (no ``running_mean`` in its state dict) still loads: ``load_state_dict``
rebuilds the encoder without it first. Cost at 192x640: see :func:`count_macs` and
``bench/bench_light_net.py`` (0.91 G multiply-accumulates, 1/8.8 of the ResNet-18 DispNet's 8.0 G).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DEC_CHANNELS", "ENC_CHANNELS", "LightDispNet", "check_image_batch", "count_macs", "pyramid_encoder"]


def check_image_batch(x: Tensor, network: str, min_side: int) -> tuple[int, int]:
    """Check a depth network's input: (B, 3, H, W) with H and W multiples of 32 and >= ``min_side``.

    Returns:
        (H, W). Raises ValueError naming ``network`` otherwise.
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{network} expects (B, 3, H, W), got {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % 32 or w % 32 or h < min_side or w < min_side:
        rule = "multiples of 32" + (f" and >= {min_side}" if min_side > 32 else "")
        raise ValueError(f"{network} input height and width must be {rule}, got {h}x{w}")
    return h, w


#: Encoder channels at 1/2, 1/4, 1/8, 1/16, 1/32 of the input.
ENC_CHANNELS = (16, 32, 64, 96, 128)
#: Decoder channels at full, 1/2, 1/4, 1/8, 1/16 resolution.
DEC_CHANNELS = (8, 16, 32, 64, 96)


def _conv(in_ch: int, out_ch: int, stride: int = 1, norm: bool = False) -> nn.Sequential:
    """3x3 convolution (+ BatchNorm when ``norm``: the convolution then has no bias) + LeakyReLU."""
    if norm:
        return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(out_ch),
                             nn.LeakyReLU(0.1, inplace=True))
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1), nn.LeakyReLU(0.1, inplace=True))


def pyramid_encoder(in_channels: int, norm: bool = False) -> nn.ModuleList:
    """The light encoder: five stages at 1/2 ... 1/32, each a stride-2 3x3 convolution and one more
    3x3 convolution, channels :data:`ENC_CHANNELS` (``in_channels``: 3 for an image, 6 for
    PoseNet's two frames); ``norm``: BatchNorm after each convolution."""
    chans = (in_channels, *ENC_CHANNELS)
    return nn.ModuleList(
        nn.Sequential(_conv(chans[i], chans[i + 1], stride=2, norm=norm), _conv(chans[i + 1], chans[i + 1], norm=norm))
        for i in range(5)
    )


class LightDispNet(nn.Module):
    """Light encoder-decoder depth network (see the module docstring).

    Args:
        num_scales: number of output scales, 1..4.
        norm: BatchNorm in the encoder (the default; False: the encoder of networks saved
            before it had one).

    Shapes:
        ``forward(x: (B, 3, H, W))`` -> list, finest first, ``[(B, 1, H, W), (B, 1, H/2, W/2),
        ...]`` of length ``num_scales``, values in (0, 1) (ModelSpec ``disparity_sigmoid``).
        H and W must be multiples of 32.
    """

    def __init__(self, num_scales: int = 4, norm: bool = True) -> None:
        super().__init__()
        if not isinstance(num_scales, int) or not 1 <= num_scales <= 4:
            raise ValueError(f"num_scales must be an integer in 1..4, got {num_scales!r}")
        self.num_scales = num_scales
        self.norm = bool(norm)
        self.encoder = pyramid_encoder(3, norm=self.norm)
        # decoder level i works at 1/2^i; level 4's input is the 1/32 bottleneck
        self.reduce = nn.ModuleList(_conv(ENC_CHANNELS[4] if i == 4 else DEC_CHANNELS[i + 1], DEC_CHANNELS[i]) for i in range(5))
        self.skip = nn.ModuleList(nn.Conv2d(ENC_CHANNELS[i - 1], DEC_CHANNELS[i], 1) if i > 0 else nn.Identity() for i in range(5))
        self.fuse = nn.ModuleList(_conv(DEC_CHANNELS[i], DEC_CHANNELS[i]) for i in range(5))
        self.dispconv = nn.ModuleList(nn.Conv2d(DEC_CHANNELS[s], 1, 3, padding=1) for s in range(num_scales))

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object, **kwargs: object) -> None:
        # runs before the children load: a state dict of the BatchNorm-free encoder (a network
        # saved before the encoder had BatchNorm) gets that encoder; anything else loads as usual
        first = prefix + "encoder.0.0."
        if self.norm and first + "0.bias" in state_dict and first + "1.running_mean" not in state_dict:
            self.encoder = pyramid_encoder(3, norm=False).to(self.dispconv[0].weight.device)
            self.norm = False
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> list[Tensor]:
        check_image_batch(x, "LightDispNet", min_side=32)
        features = []
        out = x
        for stage in self.encoder:
            out = stage(out)
            features.append(out)  # 1/2, 1/4, 1/8, 1/16, 1/32
        disps: list[Tensor] = [x.new_empty(0)] * self.num_scales
        for i in range(4, -1, -1):
            out = F.interpolate(self.reduce[i](out), scale_factor=2.0, mode="nearest")  # -> 1/2^i
            if i > 0:
                out = out + self.skip[i](features[i - 1])
            out = self.fuse[i](out)
            if i < self.num_scales:
                disps[i] = torch.sigmoid(self.dispconv[i](out))
        return disps


def count_macs(model: nn.Module, height: int, width: int) -> int:
    """Multiply-accumulates of one forward pass at (height, width), convolutions only (what
    dominates both networks; activations, upsampling and additions are left out)."""
    total = 0

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * (module.in_channels // module.groups)
            total += int(output.numel() // output.shape[0]) * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, height, width))
    finally:
        for handle in handles:
            handle.remove()
    return total
