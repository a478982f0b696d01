"""Drawing a scene graph with PIL; the PNG carries the graph in its `posttrain-scene` chunk."""

from __future__ import annotations

import math
from functools import cache

from PIL import Image, ImageDraw, ImageFont

from posttrain.data.scenes.graph import SCENE_CHUNK, Scene, Shape
from posttrain.models.chat.images import png_bytes

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "blue": (40, 80, 220),
    "green": (30, 160, 60),
    "yellow": (235, 200, 30),
    "purple": (140, 60, 180),
    "orange": (245, 130, 20),
}
SHAPES = ("circle", "square", "triangle", "star")


@cache
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def render_scene(scene: Scene) -> Image.Image:
    image = Image.new("RGB", (scene.width, scene.height), "white")
    draw = ImageDraw.Draw(image)
    {"shapes": _draw_shapes, "chart": _draw_chart, "table": _draw_table}[scene.kind](draw, scene)
    return image


def scene_png(scene: Scene) -> bytes:
    """The rendered PNG, with the scene graph as JSON in its `posttrain-scene` text chunk."""
    return png_bytes(render_scene(scene), {SCENE_CHUNK: scene.to_json()})


def _draw_shapes(draw: ImageDraw.ImageDraw, scene: Scene) -> None:
    font = _font(max(7, scene.height // (scene.rows * 4)))
    for obj in scene.objects:
        _draw_shape(draw, obj)
        left, top, right, bottom = obj.box
        centre = ((left + right) / 2, (top + bottom) / 2)
        ink = "black" if obj.colour in ("yellow", "orange") else "white"
        draw.text(centre, obj.label, fill=ink, font=font, anchor="mm")
        if obj.name:  # the caption of a real-world thing, under the shape
            draw.text((centre[0], bottom + 1), obj.name, fill="black", font=font, anchor="mt")


def _draw_shape(draw: ImageDraw.ImageDraw, obj: Shape) -> None:
    left, top, right, bottom = obj.box
    fill = PALETTE[obj.colour]
    if obj.shape == "circle":
        draw.ellipse(obj.box, fill=fill)
    elif obj.shape == "square":
        draw.rectangle(obj.box, fill=fill)
    elif obj.shape == "triangle":
        draw.polygon([((left + right) / 2, top), (right, bottom), (left, bottom)], fill=fill)
    else:  # a five-pointed star: outer and inner radius alternate
        cx, cy, outer = (left + right) / 2, (top + bottom) / 2, (right - left) / 2
        points = [
            (
                cx + (outer if i % 2 == 0 else outer * 0.45) * math.sin(i * math.pi / 5),
                cy - (outer if i % 2 == 0 else outer * 0.45) * math.cos(i * math.pi / 5),
            )
            for i in range(10)
        ]
        draw.polygon(points, fill=fill)


def _draw_chart(draw: ImageDraw.ImageDraw, scene: Scene) -> None:
    w, h = scene.width, scene.height
    font = _font(max(7, h // 14))
    draw.text((w / 2, 2), scene.title, fill="black", font=font, anchor="mt")
    left, top, right, bottom = w * 0.16, h * 0.16, w * 0.98, h * 0.84
    draw.line([(left, top), (left, bottom), (right, bottom)], fill="black")
    for tick in range(0, scene.y_max + 1, max(1, scene.y_max // 4)):
        y = bottom - (bottom - top) * tick / scene.y_max
        draw.line([(left - 3, y), (left, y)], fill="black")
        draw.text((left - 4, y), str(tick), fill="black", font=font, anchor="rm")
    slot = (right - left) / len(scene.bars)
    for i, (key, value) in enumerate(scene.bars):
        x0 = left + slot * (i + 0.2)
        y = bottom - (bottom - top) * value / scene.y_max
        draw.rectangle([x0, y, x0 + slot * 0.6, bottom], fill=(70, 110, 200))
        draw.text((x0 + slot * 0.3, bottom + 2), key, fill="black", font=font, anchor="mt")


def _draw_table(draw: ImageDraw.ImageDraw, scene: Scene) -> None:
    rows = [scene.header, *scene.table]
    cell_w, cell_h = scene.width / len(scene.header), scene.height / (len(rows) + 1)
    font = _font(max(7, int(cell_h * 0.45)))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            box = [c * cell_w, (r + 0.5) * cell_h, (c + 1) * cell_w - 1, (r + 1.5) * cell_h]
            draw.rectangle(box, outline="black", fill=(225, 225, 225) if r == 0 else "white")
            centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
            draw.text(centre, str(value), fill="black", font=font, anchor="mm")
