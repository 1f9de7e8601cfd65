"""What each stand-in checkpoint costs: file size, write time, load time, one 64x64 step.

    .venv/bin/python benchmarks/standins.py [--family sdxl] [--dtype fp8] [--threads 1]

For each family (sd15, sd2, sdxl) and storage (SD1.5's file is fp16 only; the others fp16
and fp8, fp8 being what comfytest writes), writes the checkpoint afresh into a temporary
folder with the runtime's Python and times it, then in a fresh process of that Python
loads it with ComfyUI's ``load_checkpoint_guess_config`` (as CheckpointLoaderSimple does)
and times: the load, encoding one prompt, one euler step at 64x64 (an 8x8 latent, cfg 7:
two UNet calls) and the TAESD decode. Prints one row per file. Numbers are wall-clock on
this machine with torch limited to ``--threads``; nothing is asserted.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from comfytest.runtime import find_runtime
from comfytest.runtime.install import SCRIPTS

MEASURE = """
import sys, time, logging
sys.path.insert(0, sys.argv[1])
import comfy.cli_args
comfy.cli_args.args.cpu = True
logging.disable(logging.WARNING)
import torch
torch.set_num_threads(int(sys.argv[3]))
import comfy.sd, comfy.sample
t = time.perf_counter()
model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(sys.argv[2])
load = time.perf_counter() - t
t = time.perf_counter()
cond = clip.encode_from_tokens_scheduled(clip.tokenize("a red fox in the snow"))
encode = time.perf_counter() - t
neg = clip.encode_from_tokens_scheduled(clip.tokenize(""))
latent = torch.zeros([1, 4, 8, 8])
noise = comfy.sample.prepare_noise(latent, 1)
comfy.sample.sample(model, noise, 1, 7.0, "euler", "normal", cond, neg, latent)  # warm
t = time.perf_counter()
out = comfy.sample.sample(model, noise, 1, 7.0, "euler", "normal", cond, neg, latent)
step = time.perf_counter() - t
t = time.perf_counter()
vae.decode(out)
decode = time.perf_counter() - t
print("RESULT", type(model.model.model_config).__name__, load, encode, step, decode)
"""


def write(python: Path, comfyui: Path, family: str, dtype: str, out: Path) -> float:
    if family == "sd15":
        command = [str(SCRIPTS / "make_checkpoint.py")]
    else:
        command = [str(SCRIPTS / "make_standin.py"), "--family", family, "--dtype", dtype]
    started = time.perf_counter()
    subprocess.run(
        [str(python), *command, "--comfyui", str(comfyui), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--family", action="append", choices=("sd15", "sd2", "sdxl"))
    parser.add_argument("--dtype", action="append", choices=("fp16", "fp8"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    runtime = find_runtime()
    families = args.family or ["sd15", "sd2", "sdxl"]
    dtypes = args.dtype or ["fp16", "fp8"]
    print(f"torch threads {args.threads}; ComfyUI {runtime.info.get('comfyui_version')}")
    print(
        f"{'file':<22} {'detected':<8} {'MB':>7} {'write s':>8} {'load s':>7} "
        f"{'encode s':>9} {'step s':>7} {'decode s':>9}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for family in families:
            for dtype in ["fp16"] if family == "sd15" else dtypes:
                out = Path(tmp) / f"{family}-{dtype}.safetensors"
                written = write(runtime.python, runtime.comfyui_dir, family, dtype, out)
                measured = subprocess.run(
                    [
                        str(runtime.python),
                        "-c",
                        MEASURE,
                        str(runtime.comfyui_dir),
                        str(out),
                        str(args.threads),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                line = next(x for x in measured.splitlines() if x.startswith("RESULT"))
                detected, *numbers = line.split()[1:]
                load, encode, step, decode = (float(n) for n in numbers)
                size = out.stat().st_size / 1e6
                print(
                    f"{out.stem:<22} {detected:<8} {size:>7.1f} {written:>8.1f} {load:>7.1f} "
                    f"{encode:>9.2f} {step:>7.2f} {decode:>9.2f}"
                )
                out.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
