"""Reading tensors from files a user downloaded from somewhere: never run their code.

PyTorch files go through ``torch.load(weights_only=True)``, whose unpickler only
builds tensors and plain containers (a pickle that would call ``os.system`` is
refused before anything runs); ``.safetensors`` files hold no code by design and
carry string metadata in their header.
"""

from __future__ import annotations

from pathlib import Path

import torch

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
