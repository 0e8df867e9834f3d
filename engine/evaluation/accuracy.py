"""Top-1 accuracy, per-class accuracy and confusion matrix of a predictor on a labelled image array."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.common.atomic import atomic_path
from engine.common.errors import EngineError
from engine.data.preprocess import ImageSpec
from engine.evaluation.predictors import Predictor, predict_pixels

if TYPE_CHECKING:  # Pillow is imported when a confusion matrix is drawn
    from PIL.ImageFont import FreeTypeFont, ImageFont

    Font = FreeTypeFont | ImageFont


@dataclass
class EvalResult:
    """Accuracies in percent; `per_class[i]` and `confusion[i][j]` (true i, predicted j) follow `class_names`.

    A class without images has a per-class accuracy of None; `predictions` are the top-1 indices.
    """

    accuracy: float
    per_class: list[float | None]
    confusion: list[list[int]]
    n: int
    predictions: np.ndarray
    runtime: str
    class_names: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the per-image predictions)."""
        return {
            "accuracy": round(self.accuracy, 2),
            "per_class": {k: None if v is None else round(v, 2) for k, v in zip(self.class_names, self.per_class)},
            "confusion": self.confusion,
            "n": self.n,
            "runtime": self.runtime,
            "class_names": self.class_names,
        }


def evaluate(
    predictor: Predictor,
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
    batch_size: int = 16,
    on_progress: Callable[[int, int], None] | None = None,
    spec: ImageSpec | None = None,
) -> EvalResult:
    """Predict `images` (N, H, W, C) in batches; `on_progress(done, total)` is called after each batch.

    `images` are float32 model inputs, or uint8 pixels that `spec` rescales (see `engine.data.images.decode_all`).
    Batches of 16 run as fast as 64 on XNNPACK and need a quarter of the activation arena, which lowers a
    run's peak memory (see docs/benchmarks.md).
    """
    labels = np.asarray(labels, dtype=np.int64)
    names = list(class_names)
    total = len(images)
    if total == 0 or len(labels) != total:
        raise EngineError(f"cannot evaluate {total} images with {len(labels)} labels")
    if labels.min() < 0 or labels.max() >= len(names):
        raise EngineError(f"labels must lie in 0..{len(names) - 1} for the {len(names)} class names")
    pixels = images.dtype == np.uint8
    if pixels and spec is None:
        raise EngineError("uint8 pixels need the ImageSpec that rescales them")
    predictions = np.empty(total, dtype=np.int64)
    for start in range(0, total, batch_size):
        batch = images[start : start + batch_size]
        scores = predict_pixels(predictor, batch, spec) if spec is not None and pixels else predictor.predict(batch)
        if scores.shape[1] != len(names):
            raise EngineError(
                f"the model outputs {scores.shape[1]} classes but the dataset has {len(names)} class names"
            )
        predictions[start : start + len(scores)] = scores.argmax(axis=1)
        if on_progress:
            on_progress(min(start + batch_size, total), total)
    return _result(labels, predictions, names, predictor.runtime)


def _result(labels: np.ndarray, predictions: np.ndarray, names: list[str], runtime: str) -> EvalResult:
    confusion = np.zeros((len(names), len(names)), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    row_totals = confusion.sum(axis=1)
    per_class = [100.0 * confusion[i, i] / row_totals[i] if row_totals[i] else None for i in range(len(names))]
    return EvalResult(
        accuracy=100.0 * float(np.trace(confusion)) / len(labels),
        per_class=per_class,
        confusion=confusion.tolist(),
        n=len(labels),
        predictions=predictions,
        runtime=runtime,
        class_names=names,
    )


def agreement(a: EvalResult, b: EvalResult) -> float:
    """Percentage of images on which both results have the same top-1 class."""
    if a.n != b.n:
        raise ValueError(f"cannot compare results on {a.n} and {b.n} images")
    return 100.0 * float(np.mean(a.predictions == b.predictions))


def confusion_table(result: EvalResult, width: int = 10) -> str:
    """Confusion matrix as text: rows are true classes, columns predicted classes, then per-class accuracy."""
    row_label = max(len("true \\ pred"), *(len(n) for n in result.class_names))
    cell = max(width, len(str(max(max(r) for r in result.confusion))) + 1)
    header = "true \\ pred".ljust(row_label) + "".join(n[: cell - 1].rjust(cell) for n in result.class_names)
    lines = [header + "acc %".rjust(8)]
    for name, row, acc in zip(result.class_names, result.confusion, result.per_class):
        counts = "".join(str(c).rjust(cell) for c in row)
        lines.append(name.ljust(row_label) + counts + ("-" if acc is None else f"{acc:.1f}").rjust(8))
    lines.append(f"top-1 accuracy {result.accuracy:.2f} % on {result.n} images ({result.runtime})")
    return "\n".join(lines)


FALLBACK_FONTS = (
    "DejaVuSans.ttf",
    "NotoSans-Regular.ttf",
    "NotoSansCJK-Regular.ttc",
    "NotoSansCJKsc-Regular.otf",
    "wqy-microhei.ttc",
    "DroidSansFallbackFull.ttf",
    "arialuni.ttf",
    "Arial Unicode.ttf",
    "msyh.ttc",
)


def save_confusion_png(result: EvalResult, path: Path, title: str) -> None:
    """Draw the confusion matrix (row-normalised colours, counts in cells) to a PNG file.

    Class names are drawn with a font that has their glyphs (Pillow's own, else an installed one from
    FALLBACK_FONTS); when none has them, the rows and columns show class indices and a legend lists the names."""
    from PIL import Image, ImageDraw

    counts = np.asarray(result.confusion, dtype=np.float64)
    row_totals = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, row_totals, out=np.zeros_like(counts), where=row_totals > 0)
    k = len(result.class_names)
    cell = max(28, min(80, 900 // max(k, 1)))
    font, names, legend = class_labels(result.class_names, max(9, min(16, cell // 3)))
    title_font = _font(18)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = max(measure.textlength(n, font=font) for n in names) + 12
    left, top = int(label_w) + 24, int(label_w) + 70
    title_w = max(
        [measure.textlength(title, font=title_font) + 20]
        + [measure.textlength(line, font=font) + 20 for line in legend]
    )
    size = (max(left + k * cell + 20, int(title_w)), top + k * cell + 20 + 18 * len(legend))
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 8), title, fill="black", font=title_font)
    draw.text((10, 32), f"accuracy: {result.accuracy:.2f} % ({result.n} images)", fill="black", font=font)
    draw.text((2, top - 18), "true", fill="gray", font=font)
    draw.text((left, top - int(label_w) - 20), "predicted", fill="gray", font=font)
    for i, name in enumerate(names):
        y = top + i * cell + cell // 2
        draw.text((left - 6, y), name, fill="black", font=font, anchor="rm")
        label = Image.new("RGBA", (int(label_w), cell), (255, 255, 255, 0))
        ImageDraw.Draw(label).text((0, cell // 2), name, fill="black", font=font, anchor="lm")
        rotated = label.rotate(90, expand=True)
        image.paste(rotated, (left + i * cell, top - int(label_w) - 4), rotated)
        for j in range(k):
            f = fractions[i, j]
            colour = tuple(int(255 + (dark - 255) * f) for dark in (8, 48, 107))
            box = (left + j * cell, top + i * cell, left + (j + 1) * cell - 1, top + (i + 1) * cell - 1)
            draw.rectangle(box, fill=colour, outline=(220, 220, 220))
            centre = (box[0] + cell // 2, box[1] + cell // 2)
            draw.text(centre, str(int(counts[i, j])), fill="white" if f > 0.5 else "black", font=font, anchor="mm")
    for row, line in enumerate(legend):
        draw.text((10, top + k * cell + 14 + 18 * row), line, fill="black", font=font)
    with atomic_path(Path(path)) as tmp:
        image.save(tmp, format="PNG")


def class_labels(class_names: Sequence[str], size: int) -> tuple[Font, list[str], list[str]]:
    """(font, labels, legend lines) to draw the class names with: the names themselves in a font that has
    every glyph they use, else the class indices and a legend of the names with the missing characters escaped."""
    font = label_font("".join(class_names), size)
    if font is not None:
        return font, list(class_names), []
    font = _font(size)
    legend = [f"{i}: {_escaped(name, font)}" for i, name in enumerate(class_names)]
    return font, [str(i) for i in range(len(class_names))], legend


def label_font(text: str, size: int) -> Font | None:
    """Pillow's default font if it draws every character of `text`, else the first installed FALLBACK_FONTS
    one that does, else None."""
    from PIL import ImageFont

    font = _font(size)
    if draws(font, text):
        return font
    for name in FALLBACK_FONTS:
        try:
            font = ImageFont.truetype(name, size)
        except OSError:  # not installed
            continue
        if draws(font, text):
            return font
    return None


def draws(font: Font, text: str) -> bool:
    """True when `font` has a glyph for every non-space character of `text` (none renders as its tofu box)."""
    missing = _mask(font, "\U0010ffff")  # a noncharacter: no font has it, so this is the font's tofu
    return all(ch.isspace() or _mask(font, ch) != missing for ch in set(text))


def _mask(font: Font, ch: str) -> tuple[tuple[int, int], bytes]:
    mask = font.getmask(ch)
    return mask.size, bytes(np.asarray(mask).tobytes())


def _escaped(name: str, font: Font) -> str:
    return "".join(ch if draws(font, ch) else ch.encode("ascii", "backslashreplace").decode() for ch in name)


def _font(size: int) -> Font:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: fixed-size bitmap font
        return ImageFont.load_default()
