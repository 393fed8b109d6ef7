"""dlib's face recognition ResNet, read from its ``.dat`` file and run in torch.

:func:`read_dlib_dat` parses ``dlib_face_recognition_resnet_model_v1.dat`` (dlib's own
serialization, shipped by face_recognition_models) without dlib; :func:`load_dlib_resnet`
builds the same network in torch (weights cached as an npz) and reproduces dlib's
128-d descriptors to ~1e-6: ``load_dlib_resnet().describe(chips)``, chips ``(n, 150, 150, 3)``
uint8 RGB from ``dlib.get_face_chip``.

The file (dlib's ``serialize.h`` and ``dnn/{core,layers,tensor,input,loss}.h``): the loss
layer's details (``loss_metric_2``); every wrapper's version, outermost first (2: a layer,
1: a tag or skip, 3: the layer on the input); ``input_rgb_image_sized`` with its channel
means; then each layer's details from the input outwards, each followed by training state.
Tags, skips and ``add_prev_`` do not say which tag they mean: in dlib's ResNets a tag marks
a block's input, two markers in a row mean "tag this, then skip back to the tag before",
and ``add_prev`` adds the latest tag.

Traps reproduced: stride-2 convolutions and pools have no padding (dlib's default when the
stride is not 1) and output ``1 + (n + 2p - k) // s``; ``add_prev`` adds tensors of different
shapes into the larger size of every dimension, zeros where one is missing (the 256-filter
stage adds a 3×3 conv output to a 4×4, 128-channel pooled shortcut); the input is
``(pixel - mean) / 256``; the descriptor is the fc output, not L2-normalised.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DAT_NAME = "dlib_face_recognition_resnet_model_v1.dat"
CACHE_FORMAT = "crowdkit-dlib-resnet/1"
FIX_HINT = ("reinstall it (`pip install --force-reinstall --no-deps face_recognition_models==0.3.0` "
            "or `make setup`) or pass the path of an intact copy")


class DlibModelFormatError(ValueError):
    """The ``.dat`` file is truncated, corrupt or holds a layer this reader does not know."""


class DlibModelNotFoundError(FileNotFoundError):
    """The ``.dat`` file, or the face_recognition_models package that ships it, is missing."""


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise DlibModelNotFoundError(f"{path}: dlib model file not found; {FIX_HINT}")
    return path


def default_dat_path() -> Path:
    """The ``.dat`` in face_recognition_models, found without importing it (it imports pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise DlibModelNotFoundError(f"{DAT_NAME}: the face_recognition_models package is not installed; "
                                     "install it (`pip install face_recognition_models==0.3.0` or `make setup`)")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / DAT_NAME


# --------------------------------------------------------------------------- reading the .dat

@dataclass
class DlibLayer:
    """A layer: dlib's version string (``"con_4"``, ``"relu_"``, …) or ``"tag"``/``"skip"``, integers, arrays."""

    name: str
    config: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)


@dataclass
class DlibNetwork:
    """A parsed ``.dat``: input channel means and size, the loss's details, layers from the input outwards."""

    path: Path
    mean_rgb: tuple
    input_size: tuple
    loss: dict
    layers: list


class _Reader:
    """dlib's encodings, failing with the file and offset. An integer is a control byte (bit 7:
    negative, low 4 bits: byte count) and that many little-endian bytes of its absolute value; a
    string is a length and bytes; a float an integer mantissa and exponent; a bool ASCII 0 or 1;
    a tensor version 2, num_samples, k, nr, nc and raw little-endian float32."""

    def __init__(self, data: bytes, path: Path):
        self.data, self.path, self.pos = data, path, 0

    def fail(self, what: str) -> DlibModelFormatError:
        return DlibModelFormatError(f"{self.path}: {what} at byte {self.pos} of {len(self.data)}, so this is "
                                    f"not an intact dlib network file; {FIX_HINT}")

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise self.fail(f"the file ends early (truncated? {n} more bytes needed)")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def int(self, allowed: tuple = (), what: str = "") -> int:
        control = self.take(1)[0]
        if control & 0x70 or (control & 0x0F) > 8:
            raise self.fail(f"bad integer control byte 0x{control:02x}")
        value = int.from_bytes(self.take(control & 0x0F), "little") * (-1 if control & 0x80 else 1)
        if allowed and value not in allowed:
            raise self.fail(f"unsupported {what} version {value} (expected one of {allowed})")
        return value

    def ints(self, *names: str) -> dict:
        return {name: self.int() for name in names}

    def skip(self, n_floats: int = 0, n_bools: int = 0, n_tensors: int = 0) -> None:
        """Read past training-only values (learning-rate multipliers, flags, gradients)."""
        for read, n in ((self.float, n_floats), (self.bool, n_bools), (self.tensor, n_tensors)):
            [read() for _ in range(n)]

    def string(self) -> str:
        n = self.int()
        if not 0 <= n <= 256:
            raise self.fail(f"implausible string length {n}")
        return self.take(n).decode("latin-1")

    def float(self) -> float:
        mantissa = self.int()
        return math.ldexp(mantissa, self.int())

    def bool(self) -> bool:
        byte = self.take(1)
        if byte not in (b"0", b"1"):
            raise self.fail(f"bad bool {byte!r}")
        return byte == b"1"

    def tensor(self) -> np.ndarray:
        self.int((2,), "tensor")
        shape = tuple(self.int() for _ in range(4))
        if min(shape) < 0:
            raise self.fail(f"negative tensor shape {shape}")
        return np.frombuffer(self.take(4 * math.prod(shape)), "<f4").astype(np.float32).ravel()

    def alias(self) -> tuple:
        self.int((1,), "alias_tensor")
        return tuple(self.int() for _ in range(4))


def _read_details(r: _Reader) -> DlibLayer:
    """One layer's details, in the order its dlib ``deserialize`` reads them."""
    start, name = r.pos, r.string()
    layer = DlibLayer(name)
    if name in ("con_4", "con_5"):
        params = r.tensor()
        layer.config = r.ints("num_filters", "nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
        filters, _ = r.alias(), r.alias()
        r.skip(n_floats=4)  # learning-rate and weight-decay multipliers
        use_bias = r.bool() if name == "con_5" else True
        n = math.prod(filters)
        if filters[0] != layer.config["num_filters"] or params.size != n + use_bias * filters[0]:
            raise r.fail(f"{name}: {params.size} parameters do not fit filters {filters}")
        layer.config["num_params"] = params.size
        layer.arrays["weight"] = params[:n].reshape(filters)
        if use_bias:
            layer.arrays["bias"] = params[n:]
    elif name in ("affine_", "affine_2"):
        params, gamma, _ = r.tensor(), r.alias(), r.alias()
        layer.config["mode"] = r.int()  # 0: one gamma and beta per channel, 1: per element
        if name == "affine_2" and r.bool():
            raise r.fail("a disabled affine layer is not supported")
        n = math.prod(gamma)
        if params.size != 2 * n:
            raise r.fail(f"{name}: {params.size} parameters for gamma {gamma}")
        layer.arrays = {"gamma": params[:n].reshape(gamma[1:]), "beta": params[n:].reshape(gamma[1:])}
    elif name in ("max_pool_2", "avg_pool_2"):
        layer.config = r.ints("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
    elif name in ("fc_2", "fc_3"):
        layer.config = r.ints("num_outputs", "num_inputs")
        params, weights, _ = r.tensor(), r.alias(), r.alias()
        bias_mode, _ = r.int(), r.skip(n_floats=4)  # bias_mode 0: FC_HAS_BIAS
        has_bias = (r.bool() if name == "fc_3" else True) and bias_mode == 0
        n_in, n_out = layer.config["num_inputs"], layer.config["num_outputs"]
        if params.size != (n_in + has_bias) * n_out or weights[:2] != (n_in, n_out):
            raise r.fail(f"{name}: {params.size} parameters for {n_in} inputs and {n_out} outputs")
        params = params.reshape(n_in + has_bias, n_out)  # dlib computes x @ W; the bias is a last row
        layer.arrays["weight"] = np.ascontiguousarray(params[:n_in].T)
        if has_bias:
            layer.arrays["bias"] = params[n_in]
    elif name not in ("relu_", "add_prev_"):
        r.pos = start
        raise r.fail(f"unsupported layer {name!r}")
    return layer


def read_dlib_dat(path: str | os.PathLike) -> DlibNetwork:
    """Parse a dlib ``loss_metric`` network (such as dlib's face ResNet) from its ``.dat`` file.

    Parameters
    ----------
    path : str or PathLike

    Returns
    -------
    DlibNetwork
        Its layers from the input outwards, tags and skips included.

    Raises
    ------
    DlibModelNotFoundError, DlibModelFormatError
        The file is missing, or truncated, corrupt or of a layer this reader does not know.
    """
    path = _existing(Path(path))
    r = _Reader(path.read_bytes(), path)
    r.int((1,), "add_loss_layer")
    if (loss_name := r.string()) != "loss_metric_2":
        raise r.fail(f"expected a loss_metric_2 network, found {loss_name!r}")
    loss = {"name": loss_name, "margin": r.float(), "distance_threshold": r.float()}
    wrappers = []  # outermost first: True for a layer (add_layer), False for a tag or skip
    while (version := r.int((1, 2, 3), "layer wrapper")) != 3:
        wrappers.append(version == 2)
    if r.string() != "input_rgb_image_sized":
        raise r.fail("expected input_rgb_image_sized")
    mean_rgb, input_size = (r.float(), r.float(), r.float()), (r.int(), r.int())
    details = []
    for i in range(sum(wrappers) + 1):
        details.append(_read_details(r))
        r.skip(n_bools=3, n_tensors=3)  # flags; x_grad, cached_output, then grad_final or params_grad
        if i == 0:
            r.int()  # the input layer's sample_expansion_factor
    if r.pos != len(r.data):
        raise r.fail("unexpected bytes after the last layer")
    layers, rest = [details[0]], iter(details[1:])
    layers += [next(rest) if is_layer else DlibLayer("marker") for is_layer in reversed(wrappers)]
    _resolve_tags(layers, r)
    return DlibNetwork(path, mean_rgb, input_size, loss, layers)


def _resolve_tags(layers: list, r: _Reader) -> None:
    """Name each marker tag or skip; give tags, skips and add_prevs the slot of the tag they use."""
    tags = 0
    for previous, layer in zip([DlibLayer("")] + layers, layers):
        if layer.name == "marker" and previous.name == "skip":
            raise r.fail("three tags or skips in a row: an unsupported topology")
        if layer.name == "marker" and previous.name == "tag":  # skip back past the tag just made
            layer.name, layer.config = "skip", {"slot": tags - 2}
        elif layer.name == "marker":
            layer.name, layer.config, tags = "tag", {"slot": tags}, tags + 1
        elif layer.name == "add_prev_":
            layer.config = {"slot": tags - 1}
        if layer.config.get("slot", 0) < 0:
            raise r.fail(f"a {layer.name} layer with no tag to use")


# --------------------------------------------------------------------------- the torch network

def add_prev(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: ``a + b`` in the larger size of every dimension, zeros where one is missing."""
    size = [max(x, y) for x, y in zip(a.shape, b.shape)]

    def grow(t: torch.Tensor) -> torch.Tensor:
        pad = [n for d in reversed(range(t.dim())) for n in (0, size[d] - t.shape[d])]  # last dim first
        return F.pad(t, pad) if any(pad) else t

    return grow(a) + grow(b)


class _Affine(nn.Module):
    def __init__(self, gamma: np.ndarray, beta: np.ndarray, per_channel: bool):
        super().__init__()
        shape = (1, -1, 1, 1) if per_channel else (1, *gamma.shape)
        self.register_buffer("gamma", torch.from_numpy(gamma).reshape(shape))
        self.register_buffer("beta", torch.from_numpy(beta).reshape(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma + self.beta


class _Pool(nn.Module):
    """dlib's max or average pooling; a 0×0 window pools the whole input (``avg_pool_everything``)."""

    def __init__(self, is_max: bool, c: dict):
        super().__init__()
        self.is_max, self.window = is_max, (c["nr"], c["nc"])
        self.stride, self.padding = (c["stride_y"], c["stride_x"]), (c["padding_y"], c["padding_x"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        window = tuple(w or n for w, n in zip(self.window, x.shape[2:]))
        if self.is_max:  # dlib pools over the part of a window inside the image
            return F.max_pool2d(x, window, self.stride, self.padding)
        return F.avg_pool2d(x, window, self.stride, self.padding, count_include_pad=False)


def _frozen(a: np.ndarray) -> nn.Parameter:
    return nn.Parameter(torch.from_numpy(np.ascontiguousarray(a, np.float32)), requires_grad=False)


class DlibResNet(nn.Module):
    """The network a ``.dat`` describes, in torch, in eval mode; ``forward`` maps ``(n, 3, H, W)``
    RGB pixel values (0–255, uint8 or float) to dlib's ``(n, 128)`` descriptors.

    Parameters
    ----------
    network : DlibNetwork
        Parsed by :func:`read_dlib_dat` or read from the cache by :func:`load_dlib_resnet`.
    fold_affine : bool
        Fold each affine layer into the convolution before it: exact in real arithmetic,
        descriptors move by < 1e-6 in float32, and 29 passes over the activations go.
    """

    def __init__(self, network: DlibNetwork, fold_affine: bool = True):
        super().__init__()
        self.input_size = tuple(network.input_size)
        self.register_buffer("mean", torch.tensor(network.mean_rgb, dtype=torch.float32).reshape(1, 3, 1, 1))
        self.ops = [layer.name.rstrip("_0123456789") for layer in network.layers]  # "con_4" -> "con"
        self.slots = [layer.config.get("slot") for layer in network.layers]
        modules = []
        for i, (op, layer) in enumerate(zip(self.ops, network.layers)):
            c, a = layer.config, layer.arrays
            if op == "con":
                w, b = a["weight"], a.get("bias", np.zeros(len(a["weight"]), np.float32))
                after = network.layers[i + 1] if i + 1 < len(network.layers) else DlibLayer("")
                if fold_affine and after.name.startswith("affine") and after.config["mode"] == 0:
                    gamma = after.arrays["gamma"].ravel().astype(np.float64)  # fold in float64, round once
                    w, b = w * gamma.reshape(-1, 1, 1, 1), b * gamma + after.arrays["beta"].ravel()
                    self.ops[i + 1] = "folded"
                module = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:], (c["stride_y"], c["stride_x"]),
                                   (c["padding_y"], c["padding_x"]), device="meta")  # meta: no random init
                module.weight, module.bias = _frozen(w), _frozen(b)
            elif op == "affine":
                module = _Affine(a["gamma"], a["beta"], per_channel=c["mode"] == 0)
            elif op == "fc":
                module = nn.Linear(a["weight"].shape[1], len(a["weight"]), bias="bias" in a, device="meta")
                module.weight = _frozen(a["weight"])
                if "bias" in a:
                    module.bias = _frozen(a["bias"])
            elif op in ("max_pool", "avg_pool"):
                module = _Pool(op == "max_pool", c)
            else:  # tag, skip, add_prev and folded affines act in forward()
                module = nn.ReLU() if op == "relu" else nn.Identity()
            modules.append(module)
        self.layers = nn.ModuleList(modules)
        self.to(memory_format=torch.channels_last).eval()  # NHWC: ~1.5x faster convolutions on CPU

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels.float() - self.mean) / 256.0  # dlib's input_rgb_image_sized
        saved = {}
        for op, slot, module in zip(self.ops, self.slots, self.layers):
            if op == "tag":
                saved[slot] = x
            elif op == "skip":
                x = saved[slot]
            elif op == "add_prev":
                x = add_prev(x, saved[slot])
            elif op != "folded":
                x = module(x.flatten(1) if op == "fc" else x)
        return x

    def describe(self, chips: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """128-d descriptors of aligned chips, as dlib's ``compute_face_descriptor(chip)`` gives them.

        Parameters
        ----------
        chips : ndarray of uint8, shape (n, 150, 150, 3)
            RGB chips aligned as ``dlib.get_face_chip`` aligns them (one chip may omit the first axis).
        batch_size : int
            Chips per forward pass, each spread over torch's intra-op threads.

        Returns
        -------
        ndarray of float32, shape (n, 128)
        """
        chips = np.asarray(chips)[None] if np.ndim(chips) == 3 else np.asarray(chips)
        if chips.dtype != np.uint8 or chips.shape[1:] != (*self.input_size, 3):
            raise ValueError(f"chips must be uint8 RGB of shape (n, {self.input_size[0]}, {self.input_size[1]}, 3), "
                             f"got {chips.dtype} {chips.shape}")
        out = [np.zeros((0, 128), np.float32)]
        with torch.inference_mode():
            for start in range(0, len(chips), batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(chips[start:start + batch_size]))
                out.append(self(batch.permute(0, 3, 1, 2)).numpy())  # an NCHW view of NHWC memory
        return np.concatenate(out)


# --------------------------------------------------------------------------- the weights cache

def _write_cache(target: Path, net: DlibNetwork) -> None:
    """The network as an npz (layer list as JSON, arrays as ``"<layer>/<name>"``), renamed into place."""
    meta = {"format": CACHE_FORMAT, "mean_rgb": net.mean_rgb, "input_size": net.input_size, "loss": net.loss,
            "layers": [[layer.name, layer.config] for layer in net.layers]}
    arrays = {f"{i}/{k}": v for i, layer in enumerate(net.layers) for k, v in layer.arrays.items()}
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a weights cache is not
        os.replace(tmp, target)  # atomic: readers see the old file or the whole new one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_cache(path: Path) -> DlibNetwork | None:
    """The network in a cache file; None when it is unreadable or of another format."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            layers = [DlibLayer(name, config) for name, config in meta["layers"]]
            for key in set(z.files) - {"meta"}:
                layers[int(key.split("/")[0])].arrays[key.split("/")[1]] = z[key]
    except Exception:  # noqa: BLE001 - a damaged cache is rebuilt from the .dat
        return None
    if meta.get("format") != CACHE_FORMAT:
        return None
    return DlibNetwork(path, tuple(meta["mean_rgb"]), tuple(meta["input_size"]), meta["loss"], layers)


def load_dlib_resnet(dat_path: str | os.PathLike | None = None, *, cache_dir: str | os.PathLike | None = None,
                     fold_affine: bool = True) -> DlibResNet:
    """dlib's face ResNet as a torch module (eval mode), converted from the ``.dat`` once, then cached.

    Parameters
    ----------
    dat_path : str or PathLike, optional
        The ``.dat``; default: the one face_recognition_models ships.
    cache_dir : str or PathLike, optional
        Where the converted weights go, as ``dlib_resnet-<sha256 of the .dat>.npz`` (default
        ``$CROWDKIT_HOME/weights``, else ``~/.crowdkit/weights``). A cached file is used without
        parsing the ``.dat``; a damaged one is rebuilt.
    fold_affine : bool
        See :class:`DlibResNet`.

    Returns
    -------
    DlibResNet

    Raises
    ------
    DlibModelNotFoundError, DlibModelFormatError
        The ``.dat`` is missing, truncated or corrupt; the message names the file and the fix.
    """
    path = _existing(Path(dat_path) if dat_path is not None else default_dat_path())
    if cache_dir is None:
        cache_dir = Path(os.environ.get("CROWDKIT_HOME", "~/.crowdkit")).expanduser() / "weights"
    with open(path, "rb") as f:
        cached = Path(cache_dir).expanduser() / f"dlib_resnet-{hashlib.file_digest(f, 'sha256').hexdigest()}.npz"
    network = _read_cache(cached) if cached.is_file() else None
    if network is None:
        network = read_dlib_dat(path)
        _write_cache(cached, network)
    return DlibResNet(network, fold_affine=fold_affine)
