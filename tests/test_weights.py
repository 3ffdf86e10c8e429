"""Weight sources: torch's cache, a real download from 127.0.0.1, file layouts, safety."""

from __future__ import annotations

import hashlib
import http.server
import threading
from functools import partial
from pathlib import Path

import pytest
import torch

from napari_nst import stylize
from napari_nst.core import vgg
from napari_nst.core.vgg import CAFFE_PREPROCESS, TORCHVISION_PREPROCESS, VGGError, load_vgg19

from .conftest import vgg19_state_dict


def _save(state: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def _assert_matches_seed(loaded, seed: int = 0) -> None:
    expected = vgg19_state_dict(seed)
    assert len(loaded.convs) == 16
    for index, (weight, bias) in loaded.convs.items():
        torch.testing.assert_close(weight, expected[f"features.{index}.weight"])
        torch.testing.assert_close(bias, expected[f"features.{index}.bias"])


def test_torchvision_weights_come_from_torch_cache_without_network(torch_home):
    _save(vgg19_state_dict(), torch_home / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth")
    loaded = load_vgg19("torchvision")
    assert loaded.source == "torchvision" and loaded.preprocess == TORCHVISION_PREPROCESS
    assert loaded.artistic
    _assert_matches_seed(loaded)


@pytest.fixture
def weights_server(tmp_path):
    """A real HTTP server on 127.0.0.1 that serves files from a folder and counts requests."""
    root = tmp_path / "served"
    root.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(Handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()
    thread.join()


def test_download_is_hash_checked_cached_and_not_repeated(
    torch_home, weights_server, monkeypatch, capsys
):
    root, base, requests = weights_server
    staged = _save(vgg19_state_dict(), root / "staging.pth")
    digest = hashlib.sha256(staged.read_bytes()).hexdigest()
    name = f"vgg19-{digest[:8]}.pth"
    staged.rename(root / name)
    monkeypatch.setattr(vgg, "TORCHVISION_URL", f"{base}/{name}")

    loaded = load_vgg19("torchvision", progress=True)
    cached = torch_home / "hub" / "checkpoints" / name
    assert cached.is_file()
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == digest
    assert loaded.describe()["sha256"] == digest
    _assert_matches_seed(loaded)
    assert "100%" in capsys.readouterr().err  # torch's progress bar was shown

    load_vgg19("torchvision")
    assert requests == [f"/{name}"]


def test_download_with_wrong_hash_is_refused_and_leaves_nothing(
    torch_home, weights_server, monkeypatch
):
    root, base, _ = weights_server
    _save(vgg19_state_dict(), root / "vgg19-00000000.pth")
    monkeypatch.setattr(vgg, "TORCHVISION_URL", f"{base}/vgg19-00000000.pth")
    with pytest.raises(VGGError, match="could not download the VGG19"):
        load_vgg19("torchvision", progress=False)
    assert not list((torch_home / "hub" / "checkpoints").glob("*.pth"))


def test_the_default_weights_are_the_bundled_original_vgg19_and_need_no_network(
    torch_home, content_rgb, style_rgb
):
    from napari_nst.core import prepare
    from napari_nst.core.vgg import BUNDLED_SHA256

    job = prepare(content_rgb, style_rgb, size=64, iterations=1, device="cpu")
    assert job.options.vgg == "auto"
    list(job.steps())  # the network is blocked in tests (conftest): nothing is downloaded
    assert job.info()["vgg"] == {
        "source": "bundled",
        "path": job.vgg.path,
        "sha256": BUNDLED_SHA256,
    }
    assert job.vgg.preprocess == CAFFE_PREPROCESS
    assert not torch_home.exists()


def test_a_download_that_fails_offline_points_to_the_bundled_weights_before_any_work(
    torch_home, content_rgb, style_rgb
):
    with pytest.raises(VGGError) as error:
        stylize(content_rgb, style_rgb, size=64, iterations=1, vgg="torchvision")
    message = str(error.value)
    assert "vgg='bundled'" in message and "vgg19-dcbb9e9d.pth" in message
    assert "\n" not in message


def test_caffe_file_loads_with_caffe_preprocessing(tmp_path):
    path = _save(vgg19_state_dict(), tmp_path / "models" / "vgg19-d01eb7cb.pth")
    loaded = load_vgg19(str(path))
    assert loaded.source == "caffe" and loaded.preprocess == CAFFE_PREPROCESS
    _assert_matches_seed(loaded)
    forced = load_vgg19(f"caffe:{_save(vgg19_state_dict(), tmp_path / 'mine.pth')}")
    assert forced.preprocess == CAFFE_PREPROCESS


def test_caffe_source_uses_the_torch_cache(torch_home):
    _save(vgg19_state_dict(), torch_home / "hub" / "checkpoints" / "vgg19-d01eb7cb.pth")
    assert load_vgg19("caffe").preprocess == CAFFE_PREPROCESS


@pytest.mark.parametrize("prefix", ["features.", "", "model.features."])
def test_torchvision_layout_variants_load(tmp_path, prefix):
    loaded = load_vgg19(str(_save(vgg19_state_dict(prefix=prefix), tmp_path / "vgg.pth")))
    assert loaded.source == "file" and loaded.preprocess == TORCHVISION_PREPROCESS
    _assert_matches_seed(loaded)


def test_named_conv_layout_loads(tmp_path):
    state = vgg19_state_dict()
    names = ["1_1", "1_2", "2_1", "2_2"] + [f"{b}_{i}" for b in (3, 4, 5) for i in range(1, 5)]
    indices = sorted({int(key.split(".")[1]) for key in state if key.startswith("features")})
    named = {}
    for name, index in zip(names, indices, strict=True):
        named[f"conv{name}.weight"] = state[f"features.{index}.weight"]
        named[f"conv{name}.bias"] = state[f"features.{index}.bias"]
    _assert_matches_seed(load_vgg19(str(_save(named, tmp_path / "named.pth"))))


def test_wrong_architecture_is_named_in_the_error(tmp_path):
    state = vgg19_state_dict()
    state["features.2.weight"] = torch.zeros(32, 64, 3, 3)
    with pytest.raises(VGGError, match=r"features\.2 has weight \(32, 64, 3, 3\)"):
        load_vgg19(str(_save(state, tmp_path / "bad.pth")))
    with pytest.raises(VGGError, match="does not hold VGG19"):
        load_vgg19(str(_save({"conv1.conv2d.weight": torch.zeros(1)}, tmp_path / "fast.pth")))


def test_truncated_file_is_refused_when_it_cannot_reach_the_layers(
    tmp_path, content_rgb, style_rgb
):
    state = {k: v for k, v in vgg19_state_dict().items() if int(k.split(".")[1]) < 10}
    path = _save(state, tmp_path / "short.pth")
    with pytest.raises(VGGError, match="stops before layer conv3_1"):
        stylize(content_rgb, style_rgb, vgg=str(path), size=64, iterations=1)
    out = stylize(
        content_rgb, style_rgb, vgg=str(path), size=64, iterations=1,
        content_layers=["relu2_2"], style_layers=["relu1_1", "relu2_1"],
    )  # fmt: skip
    assert out.shape == content_rgb.shape


def test_corrupt_file_gives_a_clear_error(tmp_path):
    path = tmp_path / "truncated.pth"
    data = (_save(vgg19_state_dict(), tmp_path / "full.pth")).read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(VGGError, match="could not read VGG19 file"):
        load_vgg19(str(path))


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("zip_format", [True, False])
def test_malicious_pickle_is_refused_and_does_not_run(tmp_path, zip_format):
    marker = tmp_path / "pwned"
    path = tmp_path / "vgg19-evil.pth"
    exploit = {"features.0.weight": _Exploit(marker)}
    torch.save(exploit, path, _use_new_zipfile_serialization=zip_format)
    assert not marker.exists()
    with pytest.raises(VGGError, match="pickle that tries to run code is refused"):
        load_vgg19(str(path))
    assert not marker.exists()


def test_legacy_pickle_format_files_still_load(tmp_path):
    path = tmp_path / "vgg19-legacy.pth"
    torch.save(vgg19_state_dict(), path, _use_new_zipfile_serialization=False)
    _assert_matches_seed(load_vgg19(str(path)))
