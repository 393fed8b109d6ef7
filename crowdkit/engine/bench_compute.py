"""What a benchmark compares its speed with: a network's FLOPs per input and the cores' FMA peak.

    >>> import torch
    >>> round(forward_gflop(torch.nn.Conv2d(3, 8, 3, bias=False), (1, 3, 10, 10)) * 1e9)  # 2 · 27 MACs · 8 · 8 · 8
    27648
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence


def forward_gflop(module, input_shape: Sequence[int]) -> float:
    """GFLOP of one forward pass of ``module`` on a zero tensor of ``input_shape`` (batch included).

    Counts the multiply-adds of every ``Conv2d`` and ``Linear`` layer, two FLOP
    each (pooling, additions and activations are a fraction of a percent in a ResNet).
    """
    import torch
    from torch import nn

    total = [0]

    def conv(layer: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        per_output = layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
        total[0] += 2 * per_output * output.numel()

    def linear(layer: nn.Linear, _inputs, output: torch.Tensor) -> None:
        total[0] += 2 * layer.in_features * output.numel()

    hooks = [m.register_forward_hook(conv) for m in module.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(linear) for m in module.modules() if isinstance(m, nn.Linear)]
    try:
        with torch.no_grad():
            module(torch.zeros(tuple(input_shape)))
    finally:
        for hook in hooks:
            hook.remove()
    return total[0] / 1e9


def fma_peak_gflops_per_core(cpuinfo: str | None = None) -> tuple[float, str]:
    """(float32 GFLOP/s per core at the nominal clock, how it was computed) from ``/proc/cpuinfo``.

    Peak = clock × 2 FMA units × lanes × 2 FLOP: 16 float32 lanes with AVX-512,
    8 with AVX2 + FMA. Two FMA units per core is an assumption (most server
    cores since Haswell have two; some AVX-512 parts fuse them into one), so the
    percentage printed beside it is a lower bound where that is wrong.
    NaN where the clock or the vector units cannot be read.
    """
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text() if path.is_file() else ""
    flags = set(re.search(r"^flags\s*:(.*)$", cpuinfo, flags=re.M).group(1).split()) if "flags" in cpuinfo else set()
    nominal = re.search(r"@\s*([\d.]+)\s*GHz", cpuinfo)
    current = re.search(r"^cpu MHz\s*:\s*([\d.]+)", cpuinfo, flags=re.M)
    ghz = float(nominal.group(1)) if nominal else (float(current.group(1)) / 1000 if current else float("nan"))
    if "avx512f" in flags:
        lanes, unit = 16, "AVX-512"
    elif {"avx2", "fma"} <= flags:
        lanes, unit = 8, "AVX2 + FMA"
    else:
        return float("nan"), "no AVX2/FMA flags found"
    return ghz * 2 * lanes * 2, f"{ghz:.2f} GHz × 2 {unit} FMA units × {lanes} float32 lanes × 2 FLOP"
