"""`idx:DIR`: an MNIST-style IDX test set, such as the official MNIST test split.

Only a test split: these files exist to evaluate a model on digits it never saw.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import tensorflow as tf

from dlrecipes.data.splits import DataInfo, Splits
from dlrecipes.errors import DatasetError


def read_idx(path: Path) -> np.ndarray:
    """Reads one IDX file (gzipped or not) into a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DatasetError(f"{path} is not an IDX file of unsigned bytes (bad magic number).")
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">u4", count=ndim, offset=4).astype(int)
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DatasetError(
            f"{path} is truncated: header says {dims.tolist()}, found {body.size} bytes."
        )
    return body.reshape(dims)


def load_idx(root: str | Path) -> Splits:
    """Loads `*images-idx3-ubyte[.gz]` and `*labels-idx1-ubyte[.gz]` from `root` as a test split."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"idx:{root} does not exist or is not a directory.")
    images = sorted(root.glob("*images-idx3-ubyte*"))
    labels = sorted(root.glob("*labels-idx1-ubyte*"))
    if len(images) != 1 or len(labels) != 1:
        raise DatasetError(
            f"idx:{root} must hold exactly one '*images-idx3-ubyte[.gz]' and one "
            f"'*labels-idx1-ubyte[.gz]' file; found {[p.name for p in images + labels]}."
        )
    x = read_idx(images[0])[..., np.newaxis]
    y = read_idx(labels[0]).astype(np.int64)
    if len(x) != len(y):
        raise DatasetError(f"idx:{root}: {len(x)} images but {len(y)} labels.")
    test = tf.data.Dataset.from_tensor_slices((x, y))
    empty = test.take(0)
    return Splits(
        train=empty,
        validation=empty,
        test=test,
        info=DataInfo(
            name=f"idx:{root}",
            class_names=tuple(str(c) for c in range(int(y.max()) + 1)),
            input_shape=x.shape[1:],
            num_examples={"test": len(y)},
        ),
    )
