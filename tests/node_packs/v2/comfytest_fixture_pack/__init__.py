"""comfytest's fixture node pack, version 2: FixtureBrightness now also mirrors the image
(a behaviour change any distance sees), FixtureInvert is gone, and the pack needs ``six``
from the registry."""

from typing import Any

import six

__version__ = "2.0.0"


class FixtureBrightness:
    """Multiplies an image's pixels by ``amount``, then mirrors it left to right (new)."""

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
        assert six.PY3
        return ((image * amount).clamp(0.0, 1.0).flip(2),)


NODE_CLASS_MAPPINGS = {"FixtureBrightness": FixtureBrightness}
