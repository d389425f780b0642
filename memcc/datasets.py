"""Named evaluation data sets for `memcc sweep` (and the example training scripts).

    from memcc.datasets import load_dataset
    ds = load_dataset("fmnist")                  # Fashion-MNIST test split, 10,000 images
    ds = load_dataset("fmnist", split="train")   # the 60,000 training images
    ds = load_dataset("digits", limit=100)       # scikit-learn's digits, held-out split
    ds = load_dataset("npz:/path/test.npz")      # your own arrays x, y
    x = ds.for_model(model)                      # laid out as the model's input wants it

Specs (the `--data` argument of `memcc sweep`):

``fmnist`` / ``fmnist:DIR``
    Fashion-MNIST (Xiao, Rasul, Vollgraf 2017) from Debian's package ``dataset-fashion-mnist``,
    which installs ``/usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``;
    ``fmnist:DIR`` reads the same four IDX files from another folder. Split ``test`` is the full
    t10k set (10,000 images), ``train`` the 60,000 training images. Images: float32 pixel/255 in
    [0, 1], 28×28.
``digits``
    scikit-learn's bundled 8×8 digits (1,797 images). The split is the one of
    ``examples/train_digits_cnn.py`` and ``examples/train_digits_mlp_sklearn.py``:
    ``train_test_split(test_size=0.2, random_state=0, stratify=y)``, so ``test`` is the same
    360 held-out digits as ``examples/digits_test.npz``. Images: float32 pixel/16 in [0, 1].
``npz:PATH``
    an ``.npz`` file holding ``x`` (samples first) and integer labels ``y``; used as stored (no
    rescaling: store what the model was trained on). There is only one split.

Layout. The images are kept as [n, H, W]; `Dataset.for_model(model)` reshapes them to the rank of
the model's (first) input: rank 4 → NCHW [n, 1, H, W] (NHWC [n, H, W, 1] when the model's last
input dimension is 1 and its second is not), rank 3 → [n, H, W], rank 2 → flat [n, H·W] (e.g. 64
features for an MLP on digits). A fixed size in the model's input that does not match raises a
ConfigError. Values are not rescaled: the models memcc's examples train take [0, 1] inputs, as
the loaders produce them.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from memcc.errors import ConfigError, MemccError

#: where Debian's dataset-fashion-mnist installs the four files
FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FMNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

#: the digits split of examples/train_digits_cnn.py
DIGITS_SEED = 0
DIGITS_TEST_FRACTION = 0.2

SPLITS = ("train", "test")
NAMES = ("fmnist", "digits", "npz:PATH")

# IDX element types (http://yann.lecun.com/exdb/mnist/): code -> big-endian numpy dtype
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass
class Dataset:
    """Evaluation samples `x` (float32, samples first; images as [n, H, W]) and labels `y` (int64)."""

    name: str
    x: np.ndarray
    y: np.ndarray
    split: str = "test"
    description: str = ""
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(len(self.y))

    def for_model(self, model) -> np.ndarray:
        """`x` reshaped to the layout of the model's first graph input (see the module doc)."""
        return adapt_to_shape(self.x, model_input_shape(model), self.name)


def load_dataset(spec: str, *, split: str = "test", limit: int | None = None) -> Dataset:
    """Load a named data set (`fmnist`, `fmnist:DIR`, `digits`, `npz:PATH`; see the module doc).

    `limit`: keep only the first `limit` samples (deterministic). Raises ConfigError for an
    unknown spec, split or a bad limit, MemccError when the files are missing or unreadable.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"data set: expected one of {', '.join(NAMES)}, got {spec!r}")
    if split not in SPLITS:
        raise ConfigError(f"data set split must be one of {', '.join(SPLITS)}, got {split!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be a positive integer, got {limit!r}")
    name, sep, arg = spec.strip().partition(":")
    key = name.strip().lower().replace("-", "_")
    if key in ("fmnist", "fashion_mnist", "fashionmnist"):
        ds = load_fmnist(split, Path(arg) if sep and arg else FMNIST_DIR)
    elif key == "digits" and not sep:
        ds = load_digits(split)
    elif key == "npz":
        if not arg:
            raise ConfigError("data set npz: give the file, as npz:PATH")
        if split != "test":
            raise ConfigError(f"data set {spec!r} has a single split; split {split!r} does not exist")
        ds = load_npz(arg)
    else:
        import difflib

        close = difflib.get_close_matches(key, ["fmnist", "digits", "npz"], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown data set {spec!r}{hint}; use one of: {', '.join(NAMES)}")
    if limit is not None and limit < len(ds):
        ds.x, ds.y = ds.x[:limit], ds.y[:limit]
    return ds


# --------------------------------------------------------------------------------------------
# Fashion-MNIST (IDX files)
# --------------------------------------------------------------------------------------------


def read_idx(path) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed, by the `.gz` name): magic 0x0000TTDD
    (T = element type, D = number of dimensions), D big-endian uint32 sizes, then the data."""
    p = Path(path)
    opener = gzip.open if p.name.endswith(".gz") else open
    try:
        with opener(p, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise MemccError(f"{p}: no such file") from None
    except (OSError, EOFError) as exc:
        raise MemccError(f"{p}: cannot be read ({exc})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise MemccError(f"{p}: not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MemccError(f"{p}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if len(data) - header != count * dtype.itemsize:
        raise MemccError(
            f"{p}: IDX data holds {len(data) - header} bytes, the header {shape} needs {count * dtype.itemsize}"
        )
    return np.frombuffer(data, dtype, count=count, offset=header).reshape(shape)


def load_fmnist(split: str = "test", root=FMNIST_DIR) -> Dataset:
    """Fashion-MNIST `split` from the IDX files in `root` (Debian's dataset-fashion-mnist)."""
    root = Path(root)
    images_name, labels_name = FMNIST_FILES[split]
    images_path, labels_path = root / images_name, root / labels_name
    for p in (images_path, labels_path):
        if not p.is_file():
            how = ("install Debian's package with `apt-get install dataset-fashion-mnist`"
                   if root == FMNIST_DIR else "the folder needs the four Fashion-MNIST IDX files")
            raise MemccError(f"Fashion-MNIST: {p} not found; {how}")
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise MemccError(
            f"Fashion-MNIST in {root}: images {images.shape} and labels {labels.shape} do not match"
        )
    x = images.astype(np.float32) / np.float32(255.0)
    y = labels.astype(np.int64)
    return Dataset("fmnist", x, y, split, f"Fashion-MNIST {split} split ({len(y):,} images, {root})",
                   {"classes": FMNIST_CLASSES, "root": str(root)})


# --------------------------------------------------------------------------------------------
# scikit-learn's digits
# --------------------------------------------------------------------------------------------


def digits_split():
    """(x_train, x_test, y_train, y_test): images [n, 8, 8] float32 pixel/16, labels int64."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise MemccError("data set digits needs scikit-learn (`pip install scikit-learn`)") from None
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SEED, stratify=y)


def load_digits(split: str = "test") -> Dataset:
    x_train, x_test, y_train, y_test = digits_split()
    x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
    return Dataset("digits", x, y, split, f"scikit-learn digits, {split} split ({len(y)} images)")


# --------------------------------------------------------------------------------------------
# npz files
# --------------------------------------------------------------------------------------------


def load_npz(path) -> Dataset:
    p = Path(path)
    if not p.is_file():
        raise MemccError(f"data set {str(p)!r}: no such file")
    try:
        with np.load(p, allow_pickle=False) as data:
            missing = [k for k in ("x", "y") if k not in data.files]
            if missing:
                raise MemccError(
                    f"data set {str(p)!r} has no array {missing[0]!r} (it holds: {', '.join(data.files) or 'nothing'}); "
                    "store the inputs as x and the labels as y"
                )
            x, y = np.asarray(data["x"]), np.asarray(data["y"])
    except (ValueError, OSError, EOFError) as exc:
        raise MemccError(f"data set {str(p)!r} is not a readable .npz file: {exc}") from None
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
        raise MemccError(f"data set {str(p)!r}: x {x.shape} must be [n, ...] and y {y.shape} [n]")
    if not np.issubdtype(y.dtype, np.integer):
        raise MemccError(f"data set {str(p)!r}: y must hold integer class labels, not {y.dtype}")
    return Dataset(f"npz:{p}", x.astype(np.float32, copy=False), y.astype(np.int64), "test",
                   f"{p} ({len(y)} samples)")


# --------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------


def feed_inputs(model, what: str = "the model") -> list:
    """The graph inputs of `model` (a ModelProto) that are not initializers, i.e. need a value
    fed, in order (ValueInfoProtos); ConfigError naming `what` when there is none."""
    inits = {t.name for t in model.graph.initializer}
    required = [i for i in model.graph.input if i.name not in inits]
    if not required:
        raise ConfigError(f"{what} has no graph input to feed the data set into")
    return required


def model_input_shape(model) -> list:
    """Dimensions of the model's first graph input that is not an initializer (int or None)."""
    import onnx

    from memcc.io import load_model

    m = model if isinstance(model, onnx.ModelProto) else load_model(model)
    dims = feed_inputs(m)[0].type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else None for d in dims]


def adapt_to_shape(x: np.ndarray, shape: list, what: str = "data set") -> np.ndarray:
    """`x` ([n, ...]) reshaped for an input of `shape` (see the module doc for the rules)."""
    n = x.shape[0]
    per_sample = int(np.prod(x.shape[1:], dtype=np.int64))
    rank = len(shape)
    if rank == 0:
        raise ConfigError("the model's input is a scalar; it cannot take a batch of samples")
    if rank == x.ndim and all(d is None or d == s for d, s in zip(shape[1:], x.shape[1:])):
        return np.ascontiguousarray(x, dtype=np.float32)
    if rank == 2:
        target = (n, per_sample)
    elif x.ndim == 3 and rank == 4:
        h, w = x.shape[1:]
        nhwc = shape[3] == 1 and shape[1] not in (None, 1)
        target = (n, h, w, 1) if nhwc else (n, 1, h, w)
    elif x.ndim == 4 and rank == 3 and 1 in (x.shape[1], x.shape[3]):
        target = (n,) + (x.shape[2:] if x.shape[1] == 1 else x.shape[1:3])
    else:
        target = None
    if target is None or any(d is not None and d != t for d, t in zip(shape[1:], target[1:])):
        text = "x".join("?" if d is None else str(d) for d in shape)
        raise ConfigError(
            f"{what}: samples of shape {list(x.shape[1:])} do not fit the model's input [{text}]"
        )
    return np.ascontiguousarray(x.reshape(target), dtype=np.float32)


__all__ = ["Dataset", "load_dataset", "load_fmnist", "load_digits", "load_npz", "read_idx",
           "digits_split", "feed_inputs", "model_input_shape", "adapt_to_shape", "FMNIST_DIR", "FMNIST_CLASSES"]
