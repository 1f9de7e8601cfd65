"""What each measure sees on the tiny SD1.5 model: the numbers behind the default tolerance.

    .venv/bin/python benchmarks/hash_sensitivity.py [--seeds 42 1 2]

Starts the managed ComfyUI, renders txt2img (64x64, euler) at a reference setting (20 steps,
cfg 7) and at variants of it, and prints each variant's distance to the reference per hash
(64-bit), max / mean pixel difference and PSNR. "rerun" repeats the reference itself.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image

from comfytest.comfy.client import ComfyClient
from comfytest.judging.compare import Tolerance, compare
from comfytest.runtime import find_runtime, start_server

REPO = Path(__file__).resolve().parent.parent
VARIANTS: dict[str, dict[str, Any]] = {
    "rerun": {},
    "seed + 1": {"seed": 1},
    "other prompt": {"text": "an old castle at night"},
    "cfg 1": {"cfg": 1.0},
    "cfg 8": {"cfg": 8.0},
    "steps 19": {"steps": 19},
    "steps 1": {"steps": 1},
}


def render(
    client: ComfyClient, base: dict[str, Any], seed: int, change: dict[str, Any]
) -> Image.Image:
    prompt = copy.deepcopy(base)
    sampler = prompt["3"]["inputs"]
    sampler.update(seed=seed + change.get("seed", 0), steps=change.get("steps", 20))
    sampler["cfg"] = change.get("cfg", 7.0)
    if "text" in change:
        prompt["6"]["inputs"]["text"] = change["text"]
    prompt["9"]["inputs"]["comfytest_nonce"] = json.dumps([seed, change])
    run = client.run(prompt)
    with Image.open(io.BytesIO(client.download(run.outputs[0]))) as image:
        return image.copy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    args = parser.parse_args()
    base = json.loads((REPO / "cases/workflows/txt2img.json").read_text())
    every = Tolerance(phash=0, dhash=0, whash=0, colorhash=0)
    with tempfile.TemporaryDirectory() as run_dir:
        server = start_server(find_runtime(), Path(run_dir))
        try:
            with ComfyClient(server.url) as client:
                print(
                    f"{'variant':<14} {'seed':>4} {'phash':>5} {'dhash':>5} {'whash':>5} "
                    f"{'color':>5} {'maxdiff':>7} {'meandiff':>8} {'psnr':>6}"
                )
                for seed in args.seeds:
                    reference = render(client, base, seed, {})
                    for name, change in VARIANTS.items():
                        result = compare(render(client, base, seed, change), reference, every)
                        d = result.distances
                        psnr = "inf" if result.identical else f"{result.psnr:.1f}"
                        print(
                            f"{name:<14} {seed:>4} {d['phash']:>5} {d['dhash']:>5} "
                            f"{d['whash']:>5} {d['colorhash']:>5} {result.max_pixel_diff:>7} "
                            f"{result.mean_pixel_diff:>8.3f} {psnr:>6}"
                        )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
