"""Which verdict each kind of change gets: the numbers behind the default tolerance.

    .venv/bin/python benchmarks/verdicts.py [--seeds 42 1 2] [--cache DIR]

Starts the managed ComfyUI and renders, from the example workflows in cases/workflows/:

* txt2img on the tiny SD1.5 (64x64, 5 steps, cfg 7, euler, normal) as saved, for each seed,
  and again with one real change each: a step more or less, cfg + 0.5, another sampler or
  scheduler, denoise - 0.05 (at 5 steps, and at 20 steps against 20 steps at denoise 1),
  one prompt word, one negative-prompt word, the seed + 1;
* the model-free image pipeline (blur, invert, bilinear resize to 96x96) on
  cases/inputs/pattern.png, and again with another resize method, a blur parameter a step
  away, and an edited (one pixel, or a 3x3 patch, + 24 levels) or a mirrored input image;
* simulated hardware noise on each base image: +-1 (or +-2) level in k random values.

For each kind it prints, over the seeds (a range when they differ): the pHash distance, the
max and mean absolute difference, how many of the image's values (one channel of one pixel)
differ by more than 0, 1, 2 and 3 levels, the PSNR, and the verdict under the GPU profile
(``phash: 2``, the old default) and under the default (``Tolerance()``). "rerun" runs the
base again with a nonce on every node, so nothing comes from ComfyUI's cache.

``--cache DIR`` keeps the rendered PNGs there and reuses them on the next run (no server is
started when all are there), to judge the same renders under another tolerance.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from comfytest.comfy.client import ComfyClient
from comfytest.judging.compare import GPU_PROFILE, Tolerance, compare
from comfytest.runtime import find_runtime, start_server

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / "cases" / "workflows"
PATTERN = REPO / "cases" / "inputs" / "pattern.png"

# Each change is {node id: {input: value}} applied to the base prompt; under BASE, a change
# to the base itself (it is rendered as its own base).
BASE = "base"
TXT2IMG: dict[str, dict[str, dict[str, Any]]] = {
    "rerun": {},
    "steps 5 -> 6": {"3": {"steps": 6}},
    "steps 5 -> 4": {"3": {"steps": 4}},
    "cfg 7 -> 7.5": {"3": {"cfg": 7.5}},
    "sampler euler -> dpmpp_2m": {"3": {"sampler_name": "dpmpp_2m"}},
    "sampler euler -> lms": {"3": {"sampler_name": "lms"}},
    "scheduler normal -> simple": {"3": {"scheduler": "simple"}},
    "scheduler normal -> sgm_uniform": {"3": {"scheduler": "sgm_uniform"}},
    "scheduler normal -> karras": {"3": {"scheduler": "karras"}},
    "denoise 1.0 -> 0.95": {"3": {"denoise": 0.95}},
    "denoise 1.0 -> 0.95, at 20 steps": {"3": {"denoise": 0.95}, BASE: {"3": {"steps": 20}}},
    "prompt: forest -> wood": {"6": {"text": "a watercolor fox in a snowy wood"}},
    "negative: blurry -> hazy": {"7": {"text": "hazy, low quality"}},
    "seed + 1": {"3": {"seed": 1}},  # added to the seed
}
PIPELINE: dict[str, dict[str, dict[str, Any]]] = {
    "rerun": {},
    "resize bilinear -> bicubic": {"4": {"upscale_method": "bicubic"}},
    "resize bilinear -> area": {"4": {"upscale_method": "area"}},
    "resize bilinear -> lanczos": {"4": {"upscale_method": "lanczos"}},
    "resize bilinear -> nearest-exact": {"4": {"upscale_method": "nearest-exact"}},
    "blur sigma 1.0 -> 1.1": {"2": {"sigma": 1.1}},
    "blur radius 2 -> 3": {"2": {"blur_radius": 3}},
    "input: one pixel edited": {"1": {"image": "one-pixel"}},
    "input: 3x3 patch edited": {"1": {"image": "patch"}},
    "input: mirrored": {"1": {"image": "mirrored"}},
}


def edited_inputs(folder: Path) -> dict[str, Path]:
    """The committed input, and edited copies of it: one pixel and a 3x3 patch + 24 levels,
    and the image mirrored."""
    with Image.open(PATTERN) as opened:
        image = opened.convert("RGB")
    values = np.asarray(image).astype(np.int16)
    one, patch = values.copy(), values.copy()
    y, x = values.shape[0] // 3, values.shape[1] // 3
    one[y, x] = np.clip(one[y, x] + 24, 0, 255)
    patch[y : y + 3, x : x + 3] = np.clip(patch[y : y + 3, x : x + 3] + 24, 0, 255)
    paths = {"base": PATTERN}
    for name, array in (("one-pixel", one), ("patch", patch)):
        paths[name] = folder / f"pattern-{name}.png"
        Image.fromarray(array.astype(np.uint8)).save(paths[name])
    paths["mirrored"] = folder / "pattern-mirrored.png"
    ImageOps.mirror(image).save(paths["mirrored"])
    return paths


def render(
    client: ComfyClient, prompt: dict[str, Any], output_node: str, nonce: Any, everywhere: bool
) -> Image.Image:
    prompt = copy.deepcopy(prompt)
    for node_id, node in prompt.items():
        if everywhere or node_id == output_node:
            node["inputs"]["comfytest_nonce"] = json.dumps(nonce)
    run = client.run(prompt)
    with Image.open(io.BytesIO(client.download(run.outputs[0]))) as image:
        return image.copy()


def changed(base: dict[str, Any], change: dict[str, dict[str, Any]]) -> dict[str, Any]:
    prompt = copy.deepcopy(base)
    for node_id, inputs in change.items():
        prompt[node_id]["inputs"].update(inputs)
    return prompt


def renders(
    seeds: list[int], cache: Path
) -> dict[tuple[str, str], list[tuple[Image.Image, Image.Image]]]:
    """(workflow, kind) -> [(base, changed)] over the seeds (one pair for the pipeline)."""
    txt2img = json.loads((WORKFLOWS / "txt2img.json").read_text())
    pipeline = json.loads((WORKFLOWS / "image_pipeline.json").read_text())
    wanted: list[tuple[str, str, int]] = [
        *(("txt2img", kind, seed) for seed in seeds for kind in ("base", *TXT2IMG)),
        *(
            ("txt2img", f"base of {k}", seed)
            for seed in seeds
            for k, c in TXT2IMG.items()
            if BASE in c
        ),
        *(("pipeline", kind, 0) for kind in ("base", *PIPELINE)),
    ]

    def path(workflow: str, kind: str, seed: int) -> Path:
        safe = "".join(c if c.isalnum() else "_" for c in kind)
        return cache / f"{workflow}-{safe}-{seed}.png"

    missing = [w for w in wanted if not path(*w).exists()]
    if missing:
        with tempfile.TemporaryDirectory() as run_dir:
            server = start_server(find_runtime(), Path(run_dir))
            try:
                with ComfyClient(server.url) as client:
                    inputs = {
                        name: client.upload_image(p)
                        for name, p in edited_inputs(Path(run_dir)).items()
                    }
                    for workflow, kind, seed in missing:
                        if workflow == "txt2img":
                            change = dict(TXT2IMG.get(kind, {}))
                            if kind.startswith("base of "):
                                change = TXT2IMG[kind.removeprefix("base of ")][BASE]
                            based = change.pop(BASE, {})
                            change = {n: {**based.get(n, {}), **i} for n, i in change.items()}
                            prompt = changed(txt2img, change)
                            prompt["3"]["inputs"]["seed"] = seed + change.get("3", {}).get(
                                "seed", 0
                            )
                            out = "9"
                        else:
                            change = PIPELINE.get(kind, {})
                            prompt = changed(pipeline, change)
                            image = change.get("1", {}).get("image", "base")
                            prompt["1"]["inputs"]["image"] = inputs[image]
                            out = "5"
                        nonce = [workflow, kind, seed]
                        result = render(client, prompt, out, nonce, kind == "rerun")
                        result.save(path(workflow, kind, seed))
            finally:
                server.stop()
    found: dict[tuple[str, str], list[tuple[Image.Image, Image.Image]]] = {}
    for workflow, kind, seed in wanted:
        if not kind.startswith("base"):
            base = f"base of {kind}" if BASE in TXT2IMG.get(kind, {}) else "base"
            pair = (_load(path(workflow, base, seed)), _load(path(workflow, kind, seed)))
            found.setdefault((workflow, kind), []).append(pair)
    return found


def _load(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.copy()


def noise(image: Image.Image, count: int, levels: int, rng: np.random.Generator) -> Image.Image:
    """``image`` with ``count`` random values moved by +-``levels`` (within 0..255)."""
    values = np.asarray(image).astype(np.int16).reshape(-1).copy()
    where = rng.choice(values.size, size=count, replace=False)
    step = rng.choice([-levels, levels], size=count)
    step[values[where] + step > 255] = -levels
    step[values[where] + step < 0] = levels
    values[where] += step
    return Image.fromarray(values.reshape(np.asarray(image).shape).astype(np.uint8), image.mode)


def measures(base: Image.Image, other: Image.Image) -> dict[str, Any]:
    a = np.asarray(base).astype(np.int16)
    b = np.asarray(other).astype(np.int16)
    diff = np.abs(a - b)
    mse = float(np.square(diff.astype(np.float64)).mean())
    row: dict[str, Any] = {
        "phash": compare(other, base, Tolerance(phash=0)).distances.get("phash", 0),
        "max": int(diff.max()),
        "mean": float(diff.mean()),
        "psnr": float("inf") if mse == 0 else 10 * np.log10(255**2 / mse),
        "values": int(diff.size),
    }
    for level in (0, 1, 2, 3):
        row[f">{level}"] = int((diff > level).sum())
    return row


VERDICTS: dict[str, Callable[[], Tolerance]] = {
    "gpu profile = old default (phash 2)": lambda: Tolerance(**GPU_PROFILE),
    "default": Tolerance,
}


def span(values: list[Any], form: Callable[[Any], str]) -> str:
    low, high = min(values), max(values)
    return form(low) if form(low) == form(high) else f"{form(low)}-{form(high)}"


def report(kind: str, pairs: list[tuple[Image.Image, Image.Image]]) -> str:
    rows = [measures(b, c) for b, c in pairs]
    verdicts = []
    for make in VERDICTS.values():
        passed = sum(compare(c, b, make()).passed for b, c in pairs)
        verdicts.append(
            f"{passed}/{len(pairs)} pass"
            if 0 < passed < len(pairs)
            else ("pass" if passed else "FAIL")
        )
    counts = [
        span([r[f">{level}"] for r in rows], str)
        + f" ({span([100 * r[f'>{level}'] / r['values'] for r in rows], lambda v: f'{v:.2g}')}%)"
        for level in (0, 1, 2)
    ]
    cells = [
        kind,
        span([r["phash"] for r in rows], str),
        span([r["max"] for r in rows], str),
        span([r["mean"] for r in rows], lambda v: f"{v:.3f}"),
        *counts,
        span([r[">3"] for r in rows], str),
        span([r["psnr"] for r in rows], lambda v: "inf" if v == float("inf") else f"{v:.1f}"),
        *verdicts,
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--cache", type=Path, help="keep and reuse the rendered PNGs here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        cache = args.cache or Path(scratch)
        cache.mkdir(parents=True, exist_ok=True)
        found = renders(args.seeds, cache)
        heading = (
            "| kind | pHash | max diff | mean diff | values > 0 | > 1 | > 2 | > 3 | PSNR dB | "
            + " | ".join(VERDICTS)
            + " |"
        )
        print(heading)
        print("|" + "---|" * (heading.count("|") - 1))
        for (workflow, kind), pairs in found.items():
            print(report(f"{workflow}: {kind}", pairs))
        rng = np.random.default_rng(0)
        bases = [b for b, _ in found[("txt2img", "rerun")]] + [
            b for b, _ in found[("pipeline", "rerun")]
        ]
        for levels in (1, 2):
            for label, count in (("1", 1), ("8", 8), ("64", 64), ("1%", 0.01), ("10%", 0.1)):
                pairs = []
                for base in bases:
                    k = count if isinstance(count, int) else round(count * np.asarray(base).size)
                    pairs.append((base, noise(base, k, levels, rng)))
                print(report(f"noise: +-{levels} in {label} values", pairs))


if __name__ == "__main__":
    main()
