"""comfytest's fixture node pack, version 1: two image nodes (see tests/test_node_packs.py)."""

from typing import Any

__version__ = "1.0.0"


class FixtureBrightness:
    """Multiplies an image's pixels by ``amount``."""

    CATEGORY = "comfytest fixture"
    FUNCTION = "apply"
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE",),
                "amount": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 4.0, "step": 0.05}),
            }
        }

    def apply(self, image: Any, amount: float) -> tuple[Any]:
        return ((image * amount).clamp(0.0, 1.0),)


class FixtureInvert:
    """1 - each pixel (removed in version 2)."""

    CATEGORY = "comfytest fixture"
    FUNCTION = "apply"
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"image": ("IMAGE",)}}

    def apply(self, image: Any) -> tuple[Any]:
        return (1.0 - image,)


NODE_CLASS_MAPPINGS = {"FixtureBrightness": FixtureBrightness, "FixtureInvert": FixtureInvert}
