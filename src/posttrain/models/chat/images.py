"""Image content parts of chat messages, in the OpenAI chat format.

A message's `content` is a string or a list of parts: `{"type": "text", "text": ...}` and
`{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}`. Every backend
takes that shape (an OpenAI-compatible server reads it as is; local vision models decode
the images). Images travel as data URLs only: nothing here fetches a URL from the network,
and a local path is read only where a caller names one (`image_part(path)`).
"""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path
from typing import Any

from PIL import Image

DATA_URL_PREFIX = "data:"


def png_bytes(image: Image.Image, text: dict[str, str] | None = None) -> bytes:
    """The image as PNG bytes; `text` goes into PNG text chunks (metadata that travels with
    the file, e.g. a rendered scene's graph)."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image_part(image: Image.Image | bytes | str | Path) -> dict[str, Any]:
    """An `image_url` content part holding the image as a data URL: a PIL image, encoded
    bytes, a data URL, or a local file path."""
    if isinstance(image, Image.Image):
        url = data_url(png_bytes(image))
    elif isinstance(image, bytes):
        url = data_url(image, _mime(image))
    elif isinstance(image, str) and image.startswith(DATA_URL_PREFIX):
        url = image
    else:
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"image file not found: {path}")
        raw = path.read_bytes()
        url = data_url(raw, _mime(raw, str(path)))
    return {"type": "image_url", "image_url": {"url": url}}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _mime(data: bytes, where: str = "image bytes") -> str:
    try:
        with Image.open(io.BytesIO(data)) as opened:
            kind = opened.format
    except (OSError, ValueError) as error:
        raise ValueError(f"{where} is not an image PIL can read: {error}") from error
    return Image.MIME.get(kind or "", "image/png")


def decode_data_url(url: str) -> bytes:
    """The bytes of a base64 data URL; a ValueError for any other URL (nothing is fetched)."""
    if not url.startswith(DATA_URL_PREFIX) or ";base64," not in url:
        raise ValueError(
            f"only base64 data URLs are accepted for images, got {url[:60]!r}"
            " (posttrain fetches nothing from the network)"
        )
    try:
        return base64.b64decode(url.split(";base64,", 1)[1], validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"the image data URL is not valid base64: {error}") from error


def load_image(url: str) -> Image.Image:
    """The RGB image of a data URL (an unreadable image is a ValueError)."""
    data = decode_data_url(url)
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, ValueError) as error:
        raise ValueError(f"the image data URL holds no readable image: {error}") from error
    return image.convert("RGB")


def png_text(url: str) -> dict[str, str]:
    """The PNG text chunks of a data URL's image ({} for other formats)."""
    with Image.open(io.BytesIO(decode_data_url(url))) as image:
        return dict(getattr(image, "text", {}) or {})


def content_parts(content: Any) -> list[dict[str, Any]]:
    """A message's content as a list of parts (a plain string is one text part)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [text_part(content)]
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        return content
    raise ValueError(f"message content must be a string or a list of parts, got {content!r:.80}")


def content_text(content: Any) -> str:
    """The text of a message's content: its text parts joined by newlines."""
    if isinstance(content, str):
        return content
    return "\n".join(p.get("text", "") for p in content_parts(content) if p.get("type") == "text")


def content_image_urls(content: Any) -> list[str]:
    """The image URLs of a message's content, in order."""
    urls = []
    for part in content_parts(content):
        if part.get("type") == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise ValueError(f"an image_url part needs a url string, got {part!r:.80}")
            urls.append(url)
    return urls
