"""Build the bundled demo: a tiny digit classifier and its images.

What it makes (next to this script):
  digits_cnn.h5              Keras 2 (tf_keras) HDF5 model, input 32x32x3, 10 classes,
                             expects x/127.5 - 1 (scale 1/127.5, offset -1), no optimizer state.
  digits/digit_<k>/NNNN.png  30 held-out images per class (300 total), 32x32 RGB PNGs,
                             used as both calibration and test set (NNNN = sklearn sample index).
  digits/digit_0/notes.txt   a stray non-image file, on purpose: the engine must skip it.

Source data: scikit-learn's handwritten digits (load_digits, 1797 8x8 grayscale images),
upscaled to 32x32 and drawn as a white digit on a random coloured background with slight
noise. Everything is seeded, so reruns give the same images (the weights may differ in the
last bits across machines/TF builds).

This is a dev tool only; stquant itself does not need scikit-learn. To rerun:
  source .venv/bin/activate && pip install scikit-learn
  python sample_configs/demo/make_demo.py
"""

import os
import shutil
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tf_keras as keras
from PIL import Image
from sklearn.datasets import load_digits

HERE = Path(__file__).resolve().parent
IMG_DIR, MODEL_PATH = HERE / "digits", HERE / "digits_cnn.h5"
PER_CLASS, SEED = 30, 0
CLASSES = [f"digit_{k}" for k in range(10)]  # sorted order == label order


def render(digit8x8, rng):
    """8x8 intensities in 0..16 -> 32x32x3 uint8: white digit on a tinted background."""
    small = Image.fromarray((digit8x8 * (255 / 16)).astype(np.uint8))
    alpha = np.asarray(small.resize((32, 32), Image.BILINEAR), np.float32)[..., None] / 255
    bg = rng.uniform(20, 200, size=3).astype(np.float32)  # background colour
    fg = rng.uniform(225, 255, size=3).astype(np.float32)  # near-white, slightly tinted
    img = bg * (1 - alpha) + fg * alpha + rng.normal(0, 4, size=(32, 32, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def build_model():
    L = keras.layers

    def conv_bn(x, filters, kernel=1, stride=1):
        x = L.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False)(x)
        return L.ReLU(6.0)(L.BatchNormalization()(x))

    def dw_bn(x, stride):
        x = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
        return L.ReLU(6.0)(L.BatchNormalization()(x))

    inp = keras.Input((32, 32, 3))
    x = conv_bn(inp, 16, 3, 2)  # 16x16x16  (3x3 conv)
    x = conv_bn(dw_bn(x, 1), 32)  # 16x16x32  (depthwise + pointwise)
    x = conv_bn(dw_bn(x, 2), 64)  # 8x8x64
    x = conv_bn(dw_bn(x, 2), 64)  # 4x4x64
    x = L.GlobalAveragePooling2D()(x)
    out = L.Dense(10, activation="softmax")(x)
    return keras.Model(inp, out, name="digits_cnn")


def load_pngs():
    xs, ys = [], []
    for label, name in enumerate(CLASSES):
        for f in sorted((IMG_DIR / name).glob("*.png")):
            xs.append(np.asarray(Image.open(f).convert("RGB"), np.float32))
            ys.append(label)
    return np.stack(xs) / 127.5 - 1.0, np.array(ys)


def main():
    keras.utils.set_random_seed(SEED)
    rng = np.random.default_rng(SEED)
    digits = load_digits()
    images = np.stack([render(d, rng) for d in digits.images])
    labels = digits.target

    # Held-out split: the first PER_CLASS samples of each class in a seeded shuffle.
    order = rng.permutation(len(labels))
    held = np.concatenate([order[labels[order] == k][:PER_CLASS] for k in range(10)])
    train = np.setdiff1d(np.arange(len(labels)), held)

    shutil.rmtree(IMG_DIR, ignore_errors=True)
    for i in held:
        d = IMG_DIR / CLASSES[labels[i]]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i]).save(d / f"{i:04d}.png", optimize=True)
    (IMG_DIR / "digit_0" / "notes.txt").write_text(
        "Not an image: left here on purpose to show that stray files in class folders are skipped.\n"
    )

    model = build_model()
    epochs, steps = 15, int(np.ceil(len(train) / 32))
    lr = keras.optimizers.schedules.CosineDecay(3e-3, epochs * steps)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images[train] / 127.5 - 1.0, labels[train], epochs=epochs, batch_size=32, shuffle=True, verbose=2)
    model.save(MODEL_PATH, include_optimizer=False)

    x, y = load_pngs()  # measure on the PNGs as written to disk
    acc = float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))
    print(f"wrote {MODEL_PATH} ({MODEL_PATH.stat().st_size} bytes), {len(y)} images in {IMG_DIR}")
    print(f"accuracy on the {len(y)} bundled images: {acc:.4f} ({round(acc * len(y))}/{len(y)})")


if __name__ == "__main__":
    main()
