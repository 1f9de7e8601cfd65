"""Write a small, deterministic, random-weight stand-in checkpoint for SDXL or SD2.

Run by the ComfyUI runtime venv's Python (it imports ComfyUI's own modules)::

    python make_standin.py --comfyui <dir> --family sdxl|sd2|sd15 --kind checkpoint|vae|lora
        --out <file> [--seed 0] [--dtype fp16|fp8]

``--kind vae`` writes the family's TAESD alone (what VAELoader loads; the same weights as in
its checkpoint), ``--kind lora`` a rank-4 LoRA on the self-attention of the UNet's first
transformer block (generic ``diffusion_model.<key>.lora_up/down`` keys, which ComfyUI maps
onto the stand-in UNet; 12 tensors, ~10 k params). SD1.5's checkpoint is make_checkpoint.py's.

The SD1.5 file stays with make_checkpoint.py (its bytes are pinned by baselines); this
script reuses its TAESD recipe, its atomic writer and its fill rules, and adds:

* SDXL: ComfyUI detects SDXL from model_channels 320, context_dim 2048, a linear
  proj_in, label_emb with 2816 inputs and transformer depths [0, 0, 2, 2, 10, 10] on
  the six input res blocks; channel_mult and the output side are read from the keys.
  So: one level of six res blocks (24 transformer blocks at width 320), seven output
  res blocks without attention, no middle block. The text encoders are CLIP-L and
  OpenCLIP bigG at the sizes of ComfyUI's fixed configs (sd1_clip_config.json,
  clip_config_bigg.json: 32 layers, width 1280, ~694 M params); ComfyUI builds them
  from those configs whatever the checkpoint holds, so they cannot be made smaller.
* SD2: model_channels 320, context_dim 1024, a linear proj_in, no label_emb; one level
  as in the SD1.5 file. EPS prediction (ComfyUI picks v-prediction only from
  output_blocks.11, which one level does not have). Text encoder: OpenCLIP ViT-H
  (sd2_clip_config.json: 24 layers, width 1024, ~354 M params), fixed the same way.

Keys come from ComfyUI's own modules on the meta device, renamed to checkpoint keys by
the family's own ``process_*_state_dict_for_saving``; the script then checks that
ComfyUI's detection names the family and that its loading renames give back every key
of the text encoders it will build. One seeded generator fills every tensor in sorted
key order, so the same seed and dtype give a byte-identical file.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_checkpoint as base  # the sibling script: TAESD, writer, hash

if TYPE_CHECKING:
    import torch

UNET_COMMON: dict[str, Any] = {
    "image_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 320,
    "channel_mult": [1],
    "transformer_depth_middle": -2,  # no middle block
    "num_heads": -1,
    "num_head_channels": 64,
    "use_spatial_transformer": True,
    "use_linear_in_transformer": True,
    "legacy": False,
}
FAMILIES: dict[str, dict[str, Any]] = {
    "sdxl": {
        "class": "SDXL",
        "latent_scale": 0.13025,
        "lora_block": 3,  # input_blocks.1 and .2 have no transformer
        "unet": {
            **UNET_COMMON,
            "num_res_blocks": [6],
            "transformer_depth": [0, 0, 2, 2, 10, 10],
            "transformer_depth_output": [0] * 7,
            "context_dim": 2048,
            "adm_in_channels": 2816,
            "num_classes": "sequential",
        },
    },
    "sd2": {
        "class": "SD20",
        "latent_scale": 0.18215,
        "lora_block": 1,
        "unet": {
            **UNET_COMMON,
            "num_res_blocks": [1],
            "transformer_depth": [1],
            "transformer_depth_output": [0, 0],
            "context_dim": 1024,
        },
    },
    "sd15": {"class": "SD15", "latent_scale": 0.18215, "lora_block": 1, "unet": None},
}
DTYPES = ("fp16", "fp8")
KINDS = ("checkpoint", "vae", "lora")
LORA_RANK = 4
LORA_WIDTH = 320  # model_channels: the first level's attention width in every family


def model_config(family: str) -> Any:
    import comfy.supported_models

    spec = FAMILIES[family]
    cls = getattr(comfy.supported_models, spec["class"])
    return cls(dict(spec["unet"]))


def skeleton(comfyui_dir: Path, family: str) -> dict[str, Any]:
    """{checkpoint key: meta tensor (or a real one for integer buffers)}."""
    import torch

    comfy, UNetModel = base.import_comfy(comfyui_dir)  # imports comfy.model_detection
    spec = FAMILIES[family]
    config = model_config(family)
    with torch.device("meta"):
        unet = UNetModel(**spec["unet"], device="meta")
        target = config.clip_target()
        text = target.clip(device="meta", dtype=torch.float16)
        taesd = comfy.taesd.taesd.TAESD(latent_channels=4)
    state: dict[str, Any] = {}
    state.update(config.process_unet_state_dict_for_saving(dict(unet.state_dict())))
    text_sd = {k: v for k, v in text.state_dict().items() if not k.endswith("logit_scale")}
    state.update(config.process_clip_state_dict_for_saving(dict(text_sd)))
    state.update(config.process_vae_state_dict_for_saving(dict(taesd.state_dict())))

    detected = comfy.model_detection.model_config_from_unet(state, "model.diffusion_model.")
    if detected is None or type(detected).__name__ != spec["class"]:
        raise RuntimeError(f"ComfyUI would not detect this UNet as {spec['class']}: {detected!r}")
    loaded = config.process_clip_state_dict(dict(state))
    optional = ("text_projection.weight", "position_ids")
    missing = sorted(k for k in text_sd if k not in loaded and not k.endswith(optional))
    if missing:
        raise RuntimeError(f"ComfyUI would miss {len(missing)} text encoder keys: {missing[:3]}")
    for key, tensor in loaded.items():
        if key in text_sd and tuple(tensor.shape) != tuple(text_sd[key].shape):
            raise RuntimeError(f"text encoder key {key}: shape {tuple(tensor.shape)}")
    return state


def fill(state: dict[str, Any], seed: int, dtype: str, latent_scale: float) -> dict[str, Any]:
    """Every tensor from one seeded generator in sorted key order (make_checkpoint's rules;
    attention in-projection biases are zero like every other bias)."""
    import torch

    store = torch.float16 if dtype == "fp16" else torch.float8_e4m3fn
    gen = torch.Generator(device="cpu").manual_seed(seed)
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    residual, last_conv = base.taesd_special(shapes)
    out: dict[str, torch.Tensor] = {}
    for key in sorted(state):
        shape, name = shapes[key], key.rsplit(".", 1)[-1]
        if not state[key].is_floating_point():  # position_ids: ComfyUI's own values
            out[key] = state[key].clone().contiguous()
            continue
        if key == "first_stage_model.vae_scale":
            t = torch.tensor(latent_scale * 0.03)
        elif key == "first_stage_model.vae_shift":
            t = torch.tensor(0.0)
        elif "embedding" in key:
            t = torch.randn(shape, generator=gen) * 0.02
        elif name.endswith("bias"):
            t = torch.full(shape, base.TAESD_LAST_CONV_BIAS if key == last_conv + ".bias" else 0.0)
        elif len(shape) <= 1:
            t = torch.ones(shape)
        else:
            fan_in = math.prod(shape[1:])
            gain = base.RELU_GAIN if key.startswith("first_stage_model.") else 1.0
            if key in residual:
                gain = base.TAESD_RESIDUAL_GAIN
            elif key == last_conv + ".weight":
                gain = base.TAESD_LAST_CONV_GAIN
            t = torch.randn(shape, generator=gen) * (gain / math.sqrt(fan_in))
        # TAESD and scalars stay fp16: fp8 would zero most of the small VAE's weights.
        small = key.startswith("first_stage_model.") or t.dim() <= 1
        out[key] = t.to(torch.float16 if small else store).contiguous()
    return out


def vae_only(comfyui_dir: Path) -> dict[str, Any]:
    """The TAESD a checkpoint holds, under its checkpoint keys (fill needs them)."""
    import torch

    comfy, _ = base.import_comfy(comfyui_dir)
    with torch.device("meta"):
        taesd = comfy.taesd.taesd.TAESD(latent_channels=4)
    return {f"first_stage_model.{k}": v for k, v in taesd.state_dict().items()}


def lora(family: str, seed: int) -> dict[str, Any]:
    """Rank-4 LoRA weights for attn1's q, k, v and out of the first transformer block."""
    import torch

    gen = torch.Generator(device="cpu").manual_seed(seed)
    block = f"diffusion_model.input_blocks.{FAMILIES[family]['lora_block']}.1.transformer_blocks.0"
    out: dict[str, Any] = {}
    for part in sorted(("to_q", "to_k", "to_v", "to_out.0")):
        key = f"{block}.attn1.{part}"
        down = torch.randn((LORA_RANK, LORA_WIDTH), generator=gen) / math.sqrt(LORA_WIDTH)
        up = torch.randn((LORA_WIDTH, LORA_RANK), generator=gen) / math.sqrt(LORA_RANK)
        out[f"{key}.lora_down.weight"] = down.to(torch.float16).contiguous()
        out[f"{key}.lora_up.weight"] = up.to(torch.float16).contiguous()
        out[f"{key}.alpha"] = torch.tensor(float(LORA_RANK), dtype=torch.float16)
    return out


def build(args: argparse.Namespace) -> dict[str, Any]:
    spec = FAMILIES[args.family]
    if args.kind == "lora":
        return lora(args.family, args.seed)
    if args.kind == "vae":
        state = vae_only(args.comfyui.resolve())
        vae = fill(state, args.seed, "fp16", spec["latent_scale"])
        return {k.removeprefix("first_stage_model."): v for k, v in vae.items()}
    if spec["unet"] is None:
        raise RuntimeError(f"the {args.family} checkpoint is make_checkpoint.py's")
    state = skeleton(args.comfyui.resolve(), args.family)
    return fill(state, args.seed, args.dtype, spec["latent_scale"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--comfyui", required=True, type=Path, help="ComfyUI tree directory")
    p.add_argument("--family", required=True, choices=sorted(FAMILIES))
    p.add_argument("--kind", choices=KINDS, default="checkpoint")
    p.add_argument("--out", required=True, type=Path, help="output .safetensors file")
    p.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    p.add_argument("--dtype", choices=DTYPES, default="fp8", help="storage of big weights")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        tensors = build(args)
        base.write_atomic(tensors, args.out)
    except Exception as exc:  # one clear line, non-zero exit
        print(f"make_standin: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    params = sum(t.numel() for t in tensors.values())
    size = args.out.stat().st_size
    print(f"{args.out} {size} bytes {params} params sha256={base.sha256_of(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
