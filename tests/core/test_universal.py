"""Universal style transfer (WCT, AdaIN): the maths on random features, decoder files in
the layouts people have (seeded random weights), and the run's plumbing (with the
shipped decoders over the bundled VGG19 on tiny images)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from napari_nst.core import prepare
from napari_nst.core.networks import (
    DecoderError,
    available_levels,
    decoder_layers,
    encoder_layers,
    load_decoders,
    run_levels,
)
from napari_nst.core.step import STOP
from napari_nst.core.universal import (
    Moments,
    adain_affine,
    colouring,
    transform,
    wct_affine,
    whitening,
)


def _features(seed: int, channels: int = 16, count: int = 4000) -> torch.Tensor:
    """Correlated, offset (C, N) features, like a VGG layer's."""
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn(channels, channels, generator=generator)
    offset = torch.rand(channels, 1, generator=generator) * 5
    return mixing @ torch.randn(channels, count, generator=generator) + offset


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# -- the maths ------------------------------------------------------------------------


def test_whitened_features_have_identity_covariance():
    content = Moments.of(_features(0))
    whitened = whitening(content.covariance) @ (_features(0).double() - content.mean)
    covariance = Moments.of(whitened).covariance
    assert _relative(covariance, torch.eye(16, dtype=torch.float64)) < 1e-4


def test_colouring_gives_the_style_covariance_and_mean():
    content, style = _features(0), _features(1, count=3000)
    out = wct_affine(Moments.of(content), Moments.of(style))(content.double())
    target, got = Moments.of(style), Moments.of(out)
    assert _relative(got.covariance, target.covariance) < 1e-4
    assert _relative(got.mean, target.mean) < 1e-4
    root = colouring(target.covariance)
    assert _relative(root @ root.T, target.covariance) < 1e-6


def test_adain_gives_the_style_channel_means_and_deviations():
    content, style = _features(2)[None].reshape(1, 16, 40, 100), _features(3)[None]
    out = transform(content[0], style[0], "adain")
    flat, reference = out.reshape(16, -1), style[0]
    assert torch.allclose(flat.mean(1), reference.mean(1), rtol=1e-4, atol=1e-4)
    assert torch.allclose(flat.std(1), reference.std(1), rtol=1e-3)


@pytest.mark.parametrize("method", ["wct", "adain"])
def test_alpha_zero_returns_the_content_features_exactly(method):
    content, style = _features(4), _features(5)
    affine = {"wct": wct_affine, "adain": adain_affine}[method](
        Moments.of(content), Moments.of(style), alpha=0.0
    )
    assert torch.equal(affine.matrix, torch.eye(16, dtype=torch.float64))
    assert not affine.offset.any()
    assert torch.equal(torch.lerp(content, transform(content, style, method), 0.0), content)


@pytest.mark.parametrize(
    "content",
    [torch.full((16, 500), 3.0), torch.zeros(16, 500), _features(6, count=5)],
    ids=["constant", "zero", "fewer-pixels-than-channels"],
)
def test_rank_deficient_inputs_give_finite_results(content):
    style = _features(7)
    for method in ("wct", "adain"):
        out = transform(content, style, method)
        assert torch.isfinite(out).all()
    # A constant content has nothing to whiten: WCT gives it the style's mean.
    if content.std() == 0:
        out = transform(content, style, "wct")
        assert torch.allclose(out.mean(1), style.mean(1), rtol=1e-4)


def test_mixed_moments_are_those_of_the_pooled_features():
    a, b = _features(8, count=3000), _features(9, count=1000)
    mixed = Moments.mixed([Moments.of(a), Moments.of(b)], [3.0, 1.0])
    pooled = Moments.of(torch.cat([a, b], 1))
    assert _relative(mixed.mean, pooled.mean) < 1e-6
    assert _relative(mixed.covariance, pooled.covariance) < 1e-3  # n-1 vs n


# -- decoder files ----------------------------------------------------------------------


def _random_state(network: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {k: torch.randn_like(v) * 0.01 for k, v in network.state_dict().items()}


@pytest.fixture
def adain_folder(tmp_path):
    """pytorch-AdaIN's files: decoder.pth (relu4_1) and the whole vgg_normalised.pth."""
    torch.save(_random_state(decoder_layers("relu4_1"), 0), tmp_path / "decoder.pth")
    vgg = encoder_layers("relu5_1", whole=True)
    torch.save(_random_state(vgg, 1), tmp_path / "vgg_normalised.pth")
    return tmp_path


def test_pytorch_adain_layout_loads_key_for_key(adain_folder):
    decoders = load_decoders(str(adain_folder))
    assert decoders.levels == ("relu4_1",)
    pair = decoders.pairs["relu4_1"]
    saved = torch.load(adain_folder / "decoder.pth", weights_only=True)
    for key, value in pair.decoder.state_dict().items():
        assert torch.equal(value, saved[key])
    assert pair.encoder(torch.rand(1, 3, 32, 32)).shape == (1, 512, 4, 4)
    assert available_levels(str(adain_folder)) == ("relu4_1",)


@pytest.mark.parametrize("level", ["relu1_1", "relu3_1", "relu5_1"])
def test_wct_port_layout_loads_per_level(tmp_path, level):
    conv = level.replace("relu", "conv")
    torch.save(_random_state(encoder_layers(level), 2), tmp_path / f"vgg_normalised_{conv}.pth")
    torch.save(_random_state(decoder_layers(level), 3), tmp_path / f"feature_invertor_{conv}.pth")
    pair = load_decoders(str(tmp_path)).pairs[level]
    image = torch.rand(1, 3, 64, 64)
    assert pair.decoder(pair.encoder(image)).shape == image.shape


def test_a_file_of_another_layout_is_named_and_refused(tmp_path):
    # A fast-style (Johnson) model saved where a decoder is expected.
    state = _random_state(decoder_layers("relu2_1"), 4)
    torch.save(state, tmp_path / "feature_invertor_conv3_1.pth")
    torch.save(
        _random_state(encoder_layers("relu3_1"), 5), tmp_path / "vgg_normalised_conv3_1.pth"
    )
    with pytest.raises(DecoderError, match=r"is not a feature_invertor_conv3_1 file.*expected"):
        load_decoders(str(tmp_path))


def test_a_missing_encoder_and_an_empty_folder_are_explained(tmp_path):
    torch.save(_random_state(decoder_layers("relu4_1"), 0), tmp_path / "decoder.pth")
    with pytest.raises(DecoderError, match=r"vgg_normalised\.pth must be beside it"):
        load_decoders(str(tmp_path))
    with pytest.raises(DecoderError, match="no decoders in"):
        load_decoders(str(tmp_path / ".."))


class _Boom:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_a_malicious_pickle_is_refused_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "decoder.pth", "wb") as handle:
        pickle.dump({"1.weight": _Boom()}, handle)
    torch.save(
        _random_state(encoder_layers("relu5_1", whole=True), 1), tmp_path / "vgg_normalised.pth"
    )
    with pytest.raises(DecoderError, match="a pickle that tries to run code is refused"):
        load_decoders(str(tmp_path))
    assert not (tmp_path / "PWNED").exists()


def test_run_levels_default_and_checks():
    shipped = available_levels(None)
    assert {"relu1_1", "relu2_1", "relu3_1"} <= set(shipped)
    assert run_levels("wct", None, None) == tuple(reversed(shipped))
    assert run_levels("adain", None, None) == shipped[-1:]
    assert run_levels("wct", ("relu1_1", "relu2_1"), None) == ("relu2_1", "relu1_1")
    with pytest.raises(DecoderError, match="no decoder for relu5_1"):
        run_levels("wct", ("relu5_1",), None)


# -- the run (shipped decoders, bundled VGG19) -------------------------------------


def _photo(size=64, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    image = np.stack([y, x, 0.5 + 0.3 * np.sin(8 * x)], -1) + rng.normal(0, 0.02, (size, size, 3))
    return np.clip(image, 0, 1).astype(np.float32)


def _stripes(size=64):
    x = np.arange(size) / size
    return np.stack(np.broadcast_arrays(np.sin(20 * x)[None] * 0.5 + 0.5, 0.2, 0.8), -1).astype(
        np.float32
    ) * np.ones((size, 1, 1), np.float32)


def test_wct_streams_one_step_per_level_and_is_deterministic():
    runs = [prepare(_photo(), _stripes(), method="wct", device="cpu") for _ in range(2)]
    steps = [list(run.steps()) for run in runs]
    levels = runs[0].levels
    assert levels == tuple(reversed(available_levels(None)))
    assert [s.level for s in steps[0]] == list(range(len(levels)))
    assert [s.iteration for s in steps[0]] == list(range(1, len(levels) + 1))
    assert steps[0][-1].done and steps[0][-1].plane_done
    final = steps[0][-1].image
    assert final.shape == (64, 64, 3) and final.dtype == np.float32
    assert np.array_equal(final, steps[1][-1].image)
    assert runs[0].info()["decoders"]["levels"] == list(available_levels(None))


def test_alpha_zero_reconstructs_the_content_and_alpha_moves_towards_the_style():
    content, style = _photo(), _stripes()
    options = {"method": "adain", "device": "cpu", "precision": "fp32"}
    runs = {alpha: prepare(content, style, alpha=alpha, **options) for alpha in (0.0, 1.0)}
    images = {alpha: list(run.steps())[-1].image for alpha, run in runs.items()}
    # alpha 0: the content through its level's encoder and decoder, nothing else.
    pair = runs[0.0].decoders.pairs[runs[0.0].levels[0]]
    x = torch.from_numpy(content).permute(2, 0, 1)[None]
    with torch.no_grad():
        reconstructed = pair.decoder(pair.encoder(x)).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    assert np.abs(images[0.0] - reconstructed).max() < 1e-5

    # alpha 1: the result's features move towards the style's channel means (as far as
    # the shipped relu3_1 decoder can give them on a 64 px synthetic image: ~20 % here).
    def means(image):
        with torch.no_grad():
            features = pair.encoder(torch.from_numpy(image).permute(2, 0, 1)[None])
        return features.mean((0, 2, 3))

    gap = {a: float((means(image) - means(style)).norm()) for a, image in images.items()}
    assert gap[1.0] < 0.9 * gap[0.0]
    # The slider: redecoding at alpha 0 gives the alpha-0 run (one level: exactly that run).
    assert np.abs(runs[1.0].redecoded(0.0) - images[0.0]).max() < 1e-5
    assert runs[1.0].options.alpha == 0.0


def test_gray_stack_stays_gray_and_a_stop_keeps_finished_planes():
    stack = np.stack([_photo(48, seed)[..., 0] * 1000 for seed in range(3)]).astype(np.uint16)
    run = prepare(stack, _stripes(), method="adain", stack="all", device="cpu")
    assert run.rendering.kind == "gray"
    steps = run.steps()
    first = next(steps)
    assert first.plane_done and first.image.shape == (48, 48)
    low, high = run.layout.window
    assert low <= first.image.min() and first.image.max() <= high
    last = steps.send(STOP)
    assert last.cancelled and last.done and last.plane == 0


def test_label_regions_take_their_own_style_or_stay_content():
    content, styles = _photo(), [_stripes(), _photo(64, 3)[::-1]]
    labels = np.zeros((64, 64), np.int32)
    labels[:, 32:] = 1
    options = {"method": "wct", "levels": ["relu1_1"], "device": "cpu", "precision": "fp32"}
    run = prepare(content, styles, labels=labels, label_styles={1: "content"}, **options)
    image = list(run.steps())[-1].image
    kept = list(prepare(content, styles, alpha=0.0, **options).steps())[-1].image
    # relu1_1's encoder and decoder see 2 px around a pixel: away from the border the
    # 'content' region is the content reconstructed, the rest is styled.
    assert np.abs(image[:, 36:] - kept[:, 36:]).max() < 1e-5
    assert np.abs(image[:, :28] - kept[:, :28]).mean() > 0.05


def test_tiles_join_like_the_whole_plane():
    content = _photo(400)
    whole = list(prepare(content, _stripes(), method="wct", levels=["relu1_1"], tile=0,
                         device="cpu", precision="fp32").steps())[-1].image  # fmt: skip
    run = prepare(content, _stripes(), method="wct", levels=["relu1_1"], tile=384,
                  device="cpu", precision="fp32")  # fmt: skip
    steps = list(run.steps())
    assert len(steps) == 5  # 4 tiles and the plane
    # Statistics come from the whole plane (here under STATS_SIDE): the same transform.
    assert np.abs(steps[-1].image - whole).max() < 0.02


def test_unusable_options_are_refused_before_the_run():
    with pytest.raises(ValueError, match="needs a style image"):
        prepare(_photo(), None, method="wct")
    with pytest.raises(ValueError, match="alpha must be a finite number"):
        prepare(_photo(), _stripes(), method="wct", alpha=1.5)
    with pytest.raises(ValueError, match="levels: relu4_2 is not one of"):
        prepare(_photo(), _stripes(), method="wct", levels="relu4_2")
    with pytest.raises(ValueError, match="decoders not found"):
        prepare(_photo(), _stripes(), method="adain", decoders="/nonexistent")


def test_a_style_blended_at_weight_zero_changes_nothing():
    options = {"method": "wct", "levels": ["relu1_1"], "device": "cpu", "precision": "fp32"}
    alone = list(prepare(_photo(), _stripes(), **options).steps())[-1].image
    blended = prepare(_photo(), [_stripes(), _photo(64, 5)[::-1]], style_blend_weights=[1, 0],
                      **options)  # fmt: skip
    assert np.abs(list(blended.steps())[-1].image - alone).max() < 1e-5
    halves = prepare(_photo(), [_stripes(), _photo(64, 5)[::-1]], **options)
    assert np.abs(list(halves.steps())[-1].image - alone).max() > 0.05


def test_luminance_transfer_keeps_the_contents_colours():
    from skimage.color import rgb2yiq

    content = _photo()
    run = prepare(content, _stripes(), method="adain", preserve_color="luminance", device="cpu")
    assert run.rendering.luminance_only
    image = list(run.steps())[-1].image
    chroma = rgb2yiq(image)[..., 1:], rgb2yiq(content)[..., 1:]
    assert np.abs(chroma[0] - chroma[1]).mean() < 0.01


def test_cancel_from_another_thread_ends_with_the_finished_planes():
    stack = np.stack([_photo(48, seed) for seed in range(3)])
    run = prepare(stack, _stripes(), method="wct", stack="all", device="cpu")
    steps = run.steps()
    first = [next(steps) for _ in run.levels]
    assert first[-1].plane_done and first[-1].plane == 0
    run.cancel()
    rest = list(steps)
    assert len(rest) == 1 and rest[0].done and rest[0].cancelled and rest[0].plane == 1


def test_bf16_runs_the_networks_in_bf16_close_to_fp32_and_leaves_the_loaded_ones_alone():
    content, style = _photo(), _stripes()
    images, runs = {}, {}
    for precision in ("fp32", "bf16"):
        runs[precision] = prepare(content, style, method="wct", device="cpu", precision=precision)
        images[precision] = list(runs[precision].steps())[-1].image
    assert runs["bf16"].precision == "bf16"
    assert images["bf16"].dtype == np.float32
    # bf16 keeps 8 bits of mantissa: after three levels of encoder, transform and
    # decoder the result stays within a few grey levels of fp32 on average (measured
    # 0.018, 99th percentile 0.12, on a CPU with AMX).
    difference = np.abs(images["bf16"] - images["fp32"])
    assert difference.mean() < 0.03 and np.percentile(difference, 99) < 0.2
    # Each run computes with copies: the loaded (cached) networks stay fp32, frozen.
    for pair in runs["bf16"].decoders.pairs.values():
        for network in (pair.encoder, pair.decoder):
            assert {p.dtype for p in network.parameters()} == {torch.float32}
