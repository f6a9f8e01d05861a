"""Pictures with Pillow: input checks as upstream makes them, textures, and generated images."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from .shapes import palette, seeded

MAX_IMAGE_BYTES = 20 * 1024 * 1024
MIN_SIDE, MAX_SIDE = 20, 6000
MAX_TEXTURE_SIDE = 2048  # an input image larger than this is scaled down to wear
KINDS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp"}  # the three types upstream takes


def image_info(data: bytes) -> tuple[str, int, int]:
    """(kind, width, height) from the header; ValueError for anything upstream refuses."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind, (width, height) = image.format, image.size
    except Image.DecompressionBombError:
        raise ValueError(f"the image is larger than {MAX_SIDE} x {MAX_SIDE} px") from None
    except (OSError, ValueError, SyntaxError):
        kind = None
    if kind not in KINDS:
        raise ValueError("the file is not a PNG, JPEG or WEBP image")
    return KINDS[kind], width, height


def check_image(data: bytes, limit: int = MAX_IMAGE_BYTES) -> str:
    """The image kind if upstream would take the file (v2 takes 20 MB, v3's /v3/files 50),
    else ValueError saying why."""
    if len(data) > limit:
        raise ValueError(f"the image is larger than {limit // (1024 * 1024)} MB")
    kind, width, height = image_info(data)
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise ValueError(f"the image is {width} x {height} px; each side must be "
                         f"{MIN_SIDE} to {MAX_SIDE} px")
    return kind


def decode(data: bytes | None) -> Image.Image | None:
    """The picture as RGBA when it decodes in full (a broken file is not worn), else None."""
    if not data:
        return None
    try:
        image_info(data)
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGBA")
    except (OSError, ValueError, SyntaxError):
        return None


def embeddable_texture(data: bytes | None) -> bytes | None:
    """What a model wears for an input picture: a sound PNG or JPEG as it came, any other
    sound picture as PNG, and None for a picture that does not decode."""
    picture = decode(data)
    if picture is None:
        return None
    if image_info(data)[0] in ("png", "jpeg"):
        return data
    return png_bytes(picture)


def png_bytes(picture: Image.Image | np.ndarray) -> bytes:
    """PNG bytes of an image, or of an (height, width, 4) uint8 RGBA array."""
    if isinstance(picture, np.ndarray):
        picture = Image.fromarray(picture.astype(np.uint8))
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def texture_image(prompt: str, size: int = 256) -> Image.Image:
    """Base-colour texture: gradient bands along V (rings on the model) and thin stripes
    along U, in the prompt's palette."""
    c1, c2, c3 = (np.array(c, dtype=float) for c in palette(prompt))
    rng = seeded(prompt, "texture")
    bands = rng.randint(3, 9)
    period = rng.choice((16, 32, 64))
    line = max(2, period // 8)
    t = np.arange(size)[:, None] / max(1, size - 1)
    even = (t * bands).astype(int) % 2 == 0
    low, high = np.where(even, c1, c2), np.where(even, c2, c3)
    colour = np.round(low + (high - low) * t)
    stripe = (np.arange(size) % period >= period - line)[None, :, None]
    rgb = np.where(stripe, np.round(colour * 0.7)[:, None, :], colour[:, None, :])
    alpha = np.full((size, size, 1), 255.0)
    return Image.fromarray(np.concatenate((rgb, alpha), axis=2).astype(np.uint8))


def texture_png(prompt: str) -> bytes:
    """The texture as a file: the service also serves it as the task's preview image."""
    return png_bytes(texture_image(prompt))


def metal_rough_image(size: int = 16) -> Image.Image:
    """glTF metallic-roughness map: G = roughness, B = metallic, a soft checker of both."""
    y, x = np.mgrid[:size, :size]
    even = ((x // 4 + y // 4) % 2 == 0)[..., None]
    return Image.fromarray(np.where(even, [255, 255, 255], [255, 190, 200]).astype(np.uint8))


def tinted_png(data: bytes, prompt: str, size: int = 512) -> bytes | None:
    """The input picture scaled to fit `size` and washed with the prompt's colour, or None
    when the input does not decode."""
    picture = decode(data)
    if picture is None:
        return None
    width, height = picture.size
    scale = size / max(width, height)
    picture = picture.resize((max(1, round(width * scale)), max(1, round(height * scale))),
                             Image.Resampling.NEAREST)
    wash = Image.new("RGB", picture.size, palette(prompt)[0])
    tinted = Image.blend(picture.convert("RGB"), wash, 0.35)
    tinted.putalpha(picture.getchannel("A"))
    return png_bytes(tinted)
