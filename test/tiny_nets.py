"""Tiny seeded depth networks exported to ONNX, shared by the test directories (test/ is on
sys.path through its conftest.py: import as ``from tiny_nets import ...``)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

__all__ = ["export_sigmoid_convnet", "tiny_dispnet_spec"]


def export_sigmoid_convnet(path: Path, spec: "object", channels: Sequence[int] = (), kernel: int = 3,
                           seed: int = 0) -> Path:
    """A small disparity network exported to ONNX with ``spec`` embedded; returns ``path``.

    The network: 3x3 (``kernel``) convolutions, 3 -> ``channels``... -> 1 channel, "same"
    padding, ReLU between them and a sigmoid on the output, so its (1, 1, H, W) output is in
    (0, 1) at the input's size. Its weights are PyTorch's default initialisation right after
    ``torch.manual_seed(seed)``: the same file for the same arguments.
    """
    import torch

    from depth_ros.inference.onnx_export import export_onnx

    torch.manual_seed(seed)
    sizes = [3, *channels, 1]
    layers: list[torch.nn.Module] = []
    for i, (c_in, c_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(torch.nn.ReLU())
        layers.append(torch.nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2))
    layers.append(torch.nn.Sigmoid())
    return export_onnx(torch.nn.Sequential(*layers), spec, path)


def tiny_dispnet_spec(height: int = 32, width: int = 48) -> "object":
    """The spec the CLI tests give a tiny network: a metric ``disparity_sigmoid`` model (0.5 to
    20 m, scale from velocity supervision) at ``height`` x ``width``."""
    from depth_ros.inference.spec import ModelSpec

    return ModelSpec(
        output_kind="disparity_sigmoid", input_height=height, input_width=width, metric=True,
        min_depth_m=0.5, max_depth_m=20.0, name="tiny-dispnet", scale_source="velocity_supervision",
    )


def tiny_pro_spec(height: int, width: int, fov: bool = True) -> "object":
    """The ModelSpec of :func:`export_tiny_pro`'s network: canonical inverse depth at ``height`` x
    ``width``, metric, with the field-of-view output ``fov_deg`` declared when ``fov``."""
    from depth_ros.inference.spec import ModelSpec

    return ModelSpec(output_kind="canonical_inverse_depth", input_height=height, input_width=width, metric=True,
                     name="tiny-pro" if fov else "tiny-pro-nofov", scale_source="canonical_focal",
                     extra={"fov_output": "fov_deg"} if fov else {})


def export_tiny_pro(path: Path, height: int, width: int, fov: bool = True) -> Path:
    """A tiny canonical-inverse-depth network, exported with a second output ``fov_deg`` ((1,)
    degrees: 50 + 60 * sigmoid(mean of a convolution), so it depends on the image) when ``fov``."""
    import torch

    from depth_ros.inference.onnx_export import export_onnx

    class TinyPro(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.depth = torch.nn.Conv2d(3, 1, 3, padding=1)
            self.fov = torch.nn.Conv2d(3, 1, 3, padding=1)

        def forward(self, x: "torch.Tensor") -> "object":
            canonical = 0.2 + 2.0 * torch.sigmoid(self.depth(x))  # (1, 1, h, w), > 0
            if not fov:
                return canonical
            return {"depth": canonical, "fov_deg": 50.0 + 60.0 * torch.sigmoid(self.fov(x).mean(dim=(1, 2, 3)))}

    return export_onnx(TinyPro(), tiny_pro_spec(height, width, fov), path)
