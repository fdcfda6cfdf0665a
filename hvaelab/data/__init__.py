"""Data: IDX files, the dataset registry, where files are looked for, user images, binarization.

Everything the models see enters here (paper appendix A): 28x28 grey-scale images as uint8
arrays, turned into float tensors in [0, 1] and binarized (dynamically for training, with a
fixed seed for evaluation). Inverted variants (``x -> 255 - x``, appendix A) are available for
every registered dataset by appending ``-inverted`` to its name.

| module | holds |
| --- | --- |
| ``errors`` | one error type per way of failing |
| ``idx`` | the IDX file format, md5 fingerprints, atomic writes |
| ``registry`` | :class:`DatasetSpec`, the registry, user-registered folders and arrays |
| ``catalogue`` | the built-in datasets (FashionMNIST, MNIST, KMNIST, notMNIST, Omniglot, ...) |
| ``locate`` | the search order, the one search loop, verified downloads (pooch) |
| ``load`` | :func:`load_dataset` and the in-process cache |
| ``images`` | user inputs: arrays, image files, folders, uploads |
| ``binarize`` | images -> float tensors, dynamic and fixed binarization |
| ``package`` | data packages: verified excerpts under names of their own (the test fixture) |
| ``inventory`` | ``hvaelab data list / fetch / verify`` |
| ``samples`` | the few images shipped beside a checkpoint for offline dashboards |
"""

from . import catalogue as catalogue  # registers the built-in datasets
from . import natural as natural
from .binarize import binarize, binarize_fixed, to_tensor
from .catalogue import MNIST_TESTSPLIT
from .errors import (
    ChecksumError,
    DataFormatError,
    DataNotFoundError,
    InvalidInputError,
    UnknownDatasetError,
)
from .idx import idx_bytes, images_md5, read_idx, write_idx
from .images import (
    IMAGE_SIZE,
    IMAGE_SUFFIXES,
    MAX_FILE_BYTES,
    MAX_IMAGE_PIXELS,
    image_from_bytes,
    load_inputs,
    validate_images,
)
from .load import Dataset, clear_cache, load_dataset
from .locate import (
    ENV_DATA,
    ENV_DATA_ONLY,
    ENV_NO_DOWNLOAD,
    find_split,
    search_roots,
    user_cache_dir,
)
from .package import register_package
from .registry import (
    INVERTED_SUFFIX,
    REGISTRY,
    DatasetSpec,
    SubsetOf,
    get_spec,
    list_datasets,
    register_dataset,
    register_image_folder,
    register_npy,
    split_indices,
)
from .samples import load_samples, save_samples
from .strokes import Stroke, image_to_strokes, strokes_to_image

__all__ = [
    "Stroke",
    "image_to_strokes",
    "strokes_to_image",
    "ChecksumError",
    "DataFormatError",
    "DataNotFoundError",
    "Dataset",
    "DatasetSpec",
    "ENV_DATA",
    "ENV_DATA_ONLY",
    "ENV_NO_DOWNLOAD",
    "IMAGE_SIZE",
    "IMAGE_SUFFIXES",
    "INVERTED_SUFFIX",
    "InvalidInputError",
    "MAX_FILE_BYTES",
    "MAX_IMAGE_PIXELS",
    "MNIST_TESTSPLIT",
    "REGISTRY",
    "SubsetOf",
    "UnknownDatasetError",
    "binarize",
    "binarize_fixed",
    "clear_cache",
    "find_split",
    "get_spec",
    "idx_bytes",
    "image_from_bytes",
    "images_md5",
    "list_datasets",
    "load_dataset",
    "load_inputs",
    "load_samples",
    "read_idx",
    "register_dataset",
    "register_image_folder",
    "register_npy",
    "register_package",
    "save_samples",
    "search_roots",
    "split_indices",
    "to_tensor",
    "validate_images",
    "user_cache_dir",
    "write_idx",
]
