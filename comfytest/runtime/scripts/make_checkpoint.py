"""Write a tiny, deterministic, random-weight SD1.5-family checkpoint.

Run by the ComfyUI runtime venv's Python (it imports ComfyUI's own modules)::

    python make_checkpoint.py --comfyui <ComfyUI dir> --out <file.safetensors> [--seed 0]

Recipe (ComfyUI 0.3.75 loads the result with CheckpointLoaderSimple as SD15,
model type EPS, with no missing or unexpected keys):

* UNet (``model.diffusion_model.``): SD1.5 detection keys on model_channels 320,
  context_dim 768, a conv proj_in (use_linear_in_transformer False) and no
  label_emb; everything else is read from the keys. So: one level
  (channel_mult [1]), one res block plus one cross-attention transformer on the
  input side, two res blocks on the output side, no middle block (~13.6 M params).
* Text encoder (``cond_stage_model.transformer.``): a full CLIP-L text model
  (12 layers, width 768, vocab 49408, ~123.65 M params). Smaller shapes are
  rejected, so this is the size floor; random weights still make prompts matter.
* VAE (``first_stage_model.``): TAESD keys (``taesd_encoder.*``,
  ``taesd_decoder.*``, ``vae_scale``, ``vae_shift``) make ComfyUI build the tiny
  autoencoder (~2.4 M params) instead of the full KL VAE.

Keys and shapes come from instantiating ComfyUI's own modules on the meta device
(no memory, no init); every tensor is then filled from one explicitly seeded CPU
generator in sorted key order, so the same seed gives a byte-identical file.
Weights are fan-in scaled normals (TAESD's ReLU convs with He gain sqrt 2). The
decoder is damped (residual branches x0.25, last conv x0.3 with bias 0.5) and
vae_scale is 0.18215 * 0.03 because the random UNet ends sampling with latents of
std ~100: 64x64 images then have mid-range texture (pixel std ~30 of 255, <1 %
at 0/255) instead of saturating or coming out flat grey.
The file is fp16, contiguous, with a single metadata entry (safetensors writes
several in hash order), and is written atomically (temp file + os.replace).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

SD1_LATENT_SCALE = 0.18215
VAE_SCALE = SD1_LATENT_SCALE * 0.03
RELU_GAIN = math.sqrt(2.0)  # He gain for TAESD's ReLU convs
TAESD_RESIDUAL_GAIN = 0.25
TAESD_LAST_CONV_GAIN = 0.3
TAESD_LAST_CONV_BIAS = 0.5

UNET_CONFIG: dict[str, object] = {
    "image_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 320,
    "num_res_blocks": [1],
    "channel_mult": [1],
    "transformer_depth": [1],
    "transformer_depth_output": [0, 0],
    "transformer_depth_middle": -2,  # -2: no middle block at all
    "num_heads": 8,
    "use_spatial_transformer": True,
    "context_dim": 768,
    "use_linear_in_transformer": False,
    "legacy": False,
}


def import_comfy(comfyui_dir: Path):  # -> module namespace tuple
    """Import the ComfyUI modules needed, forcing CPU so no GPU is probed."""
    if not (comfyui_dir / "comfy" / "sd.py").is_file():
        raise RuntimeError(f"not a ComfyUI tree (no comfy/sd.py): {comfyui_dir}")
    sys.path.insert(0, str(comfyui_dir))
    import comfy.cli_args  # parses no argv unless comfy.options enables it

    comfy.cli_args.args.cpu = True
    import comfy.clip_model
    import comfy.model_detection
    import comfy.ops
    import comfy.taesd.taesd
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    return comfy, UNetModel


def skeleton(comfyui_dir: Path) -> dict[str, tuple[int, ...]]:
    """Return {checkpoint key: shape} from ComfyUI's own modules built on meta."""
    import torch

    comfy, UNetModel = import_comfy(comfyui_dir)
    clip_config = json.loads((comfyui_dir / "comfy" / "sd1_clip_config.json").read_text())
    with torch.device("meta"):
        unet = UNetModel(**UNET_CONFIG, device="meta")
        clip = comfy.clip_model.CLIPTextModel(
            clip_config, torch.float32, "meta", comfy.ops.manual_cast
        )
        taesd = comfy.taesd.taesd.TAESD(latent_channels=4)
    shapes: dict[str, tuple[int, ...]] = {}
    for prefix, module in (
        ("model.diffusion_model.", unet),
        ("cond_stage_model.transformer.", clip),
        ("first_stage_model.", taesd),
    ):
        for key, tensor in module.state_dict().items():
            shapes[prefix + key] = tuple(tensor.shape)

    # Same detection ComfyUI runs at load time: fail here, not in the server.
    fake = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    detected = comfy.model_detection.model_config_from_unet(fake, "model.diffusion_model.")
    if detected is None or type(detected).__name__ != "SD15":
        raise RuntimeError(f"ComfyUI would not detect this UNet as SD15 (got {detected!r})")
    return shapes


def taesd_special(shapes: dict[str, tuple[int, ...]]) -> tuple[set[str], str]:
    """Residual-branch output convs of TAESD blocks, and the decoder's last conv."""
    residual = {
        k
        for k in shapes
        if re.fullmatch(r"first_stage_model\.taesd_(en|de)coder\.\d+\.conv\.4\.weight", k)
    }
    dec = [
        int(m.group(1))
        for k in shapes
        if (m := re.fullmatch(r"first_stage_model\.taesd_decoder\.(\d+)\.weight", k))
    ]
    return residual, f"first_stage_model.taesd_decoder.{max(dec)}"


def make_tensors(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """Fill every key deterministically: one seeded generator, sorted key order."""
    import torch

    gen = torch.Generator(device="cpu").manual_seed(seed)
    residual, last_conv = taesd_special(shapes)
    out: dict[str, torch.Tensor] = {}
    for key in sorted(shapes):
        shape = shapes[key]
        name = key.rsplit(".", 1)[-1]
        if key == "first_stage_model.vae_scale":
            t = torch.tensor(VAE_SCALE)
        elif key == "first_stage_model.vae_shift":
            t = torch.tensor(0.0)
        elif "embedding" in key:  # CLIP token / position embeddings
            t = torch.randn(shape, generator=gen) * 0.02
        elif name == "bias":
            t = torch.full(shape, TAESD_LAST_CONV_BIAS if key == last_conv + ".bias" else 0.0)
        elif len(shape) == 1:  # norm weights
            t = torch.ones(shape)
        else:  # linear / conv weights: fan-in scaled normal
            fan_in = math.prod(shape[1:])
            gain = RELU_GAIN if key.startswith("first_stage_model.") else 1.0
            if key in residual:
                gain = TAESD_RESIDUAL_GAIN
            elif key == last_conv + ".weight":
                gain = TAESD_LAST_CONV_GAIN
            t = torch.randn(shape, generator=gen) * (gain / math.sqrt(fan_in))
        out[key] = t.to(torch.float16).contiguous()
    return out


def write_atomic(tensors: dict[str, torch.Tensor], out: Path) -> None:
    """Save as safetensors via a temp file in the target dir, then os.replace."""
    from safetensors.torch import save_file

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        save_file(tensors, tmp, metadata={"format": "pt"})  # one entry: stable bytes
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp made it 0600; use normal perms
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--comfyui", required=True, type=Path, help="ComfyUI tree directory")
    p.add_argument("--out", required=True, type=Path, help="output .safetensors file")
    p.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import torch

        torch.manual_seed(args.seed)  # belt and braces; all draws use `gen`
        shapes = skeleton(args.comfyui.resolve())
        write_atomic(make_tensors(shapes, args.seed), args.out)
    except Exception as exc:  # one clear line, non-zero exit
        print(f"make_checkpoint: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    size = args.out.stat().st_size
    print(f"{args.out} {size} bytes sha256={sha256_of(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
