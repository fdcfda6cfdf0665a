"""The built-in datasets: MNIST-style IDX sets with their checksums and mirrors, Omniglot from
your folder, and the seeded MNIST test split used because the MNIST training split is absent.

Importing :mod:`hvaelab.data` registers them.
"""

from __future__ import annotations

from .registry import DatasetSpec, SubsetOf, register_dataset
from .synthetic import Synthetic

_IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

register_dataset(
    DatasetSpec(
        name="fashionmnist",
        description="FashionMNIST: 28x28 grey images of clothing, 10 classes; 60,000 train, "
        "10,000 test (Xiao et al., 2017).",
        splits=dict(_IDX_NAMES),
        subfolders=("fashion-mnist", "fashionmnist", "FashionMNIST", "FashionMNIST/raw"),
        md5={
            "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
            "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
            "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        },
        urls=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        gz_md5={
            "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        licence="MIT licence, (c) 2017 Zalando SE; Xiao, Rasul & Vollgraf (2017), "
        "arXiv:1708.07747.",
        homepage="https://github.com/zalandoresearch/fashion-mnist",
        system_package="dataset-fashion-mnist",
    )
)

register_dataset(
    DatasetSpec(
        name="mnist",
        description="MNIST: 28x28 grey images of handwritten digits; 60,000 train, 10,000 test "
        "(LeCun et al., 1998).",
        splits=dict(_IDX_NAMES),
        subfolders=("mnist", "MNIST", "MNIST/raw"),
        md5={
            "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
            "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
        },
        urls=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        gz_md5={
            "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        licence="CC BY-SA 3.0, Yann LeCun and Corinna Cortes; LeCun et al. (1998).",
        homepage="http://yann.lecun.com/exdb/mnist/",
    )
)

register_dataset(
    DatasetSpec(
        name="kmnist",
        description="Kuzushiji-MNIST: 28x28 grey images of cursive Japanese characters, 10 "
        "classes; 60,000 train, 10,000 test (Clanuwat et al., 2018).",
        splits=dict(_IDX_NAMES),
        subfolders=("kmnist", "KMNIST", "KMNIST/raw"),
        urls=(
            "https://codh.rois.ac.jp/kmnist/dataset/kmnist/",
            "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
        ),
        gz_md5={
            "train-images-idx3-ubyte": "bdb82020997e1d708af4cf47b453dcf7",
            "train-labels-idx1-ubyte": "e144d726b3acfaa3e44228e80efcd344",
            "t10k-images-idx3-ubyte": "5c965bf0a639b31b8f53240b1b52f4d7",
            "t10k-labels-idx1-ubyte": "7320c461ea6c1c855c0b718fb2a4b134",
        },
        licence="CC BY-SA 4.0: 'KMNIST Dataset' (created by CODH), adapted from 'Kuzushiji "
        "Dataset' (created by NIJL and others), doi:10.20676/00000341; Clanuwat et al. (2018).",
        homepage="https://github.com/rois-codh/kmnist",
    )
)

register_dataset(
    DatasetSpec(
        name="notmnist",
        description="notMNIST: 28x28 grey images of the letters A-J in many fonts (Bulatov, 2011), "
        "as MNIST-style IDX files you provide (no download).",
        splits=dict(_IDX_NAMES),
        subfolders=("notmnist", "notMNIST", "notMNIST/raw"),
        licence="Yaroslav Bulatov (2011); no explicit licence published, see the homepage.",
        homepage="http://yaroslavvb.blogspot.com/2011/09/notmnist-dataset.html (IDX conversions: "
        "https://github.com/davidflanagan/notMNIST-to-MNIST)",
    )
)

register_dataset(
    DatasetSpec(
        name="omniglot",
        description="Omniglot: hand-drawn characters from 50 alphabets (Lake et al., 2015), "
        "read from your folder of PNGs, grey, resized to 28x28 with bilinear interpolation "
        "(paper appendix A). Split 'train' is images_background, 'test' images_evaluation.",
        splits={"train": ("images_background", None), "test": ("images_evaluation", None)},
        loader="image_folder",
        subfolders=("omniglot", "Omniglot", "omniglot-py"),
        licence="MIT licence, Brenden Lake; Lake, Salakhutdinov & Tenenbaum (2015).",
        homepage="https://github.com/brendenlake/omniglot (unzip python/images_background.zip "
        "and python/images_evaluation.zip)",
    )
)

MNIST_TESTSPLIT = SubsetOf(
    dataset="mnist",
    split="test",
    size=10_000,
    seed=0,
    ranges={"train": (0, 8000), "test": (8000, 10_000)},
)
register_dataset(
    DatasetSpec(
        name="mnist-testsplit",
        description="A seeded split of the MNIST TEST set, used because the MNIST training split "
        "is not available here: indices = numpy.random.default_rng(0).permutation(10000); split "
        "'train' = the first 8,000 of them, split 'test' = the remaining 2,000. Models trained on "
        "it must say so in their model card.",
        loader="subset",
        subset=MNIST_TESTSPLIT,
        licence="CC BY-SA 3.0, Yann LeCun and Corinna Cortes; LeCun et al. (1998).",
        homepage="http://yann.lecun.com/exdb/mnist/",
    )
)

# Synthetic OOD sets (:mod:`hvaelab.data.synthetic`): generated, never downloaded; 10,000 images
# like the test sets they are compared with, each kind from its own seed.
for _name, _kind, _seed, _what in (
    ("noise-uniform", "uniform", 1, "every pixel uniform in 0..255"),
    ("noise-bernoulli", "bernoulli", 2, "every pixel 0 or 255 with probability 1/2"),
    ("constant", "constant", 3, "one grey level, uniform in 0..255, per image"),
):
    register_dataset(
        DatasetSpec(
            name=_name,
            description=f"Synthetic OOD set: 10,000 28x28 images, {_what} (seed {_seed}).",
            loader="synthetic",
            synthetic=Synthetic(_kind, 10_000, _seed),
            licence="generated by hvaelab",
        )
    )

# The paper's natural-image sets (:mod:`hvaelab.data.natural`): 32x32 colour, 8-bit, no
# binarization. CIFAR comes as one archive per dataset, checked against the md5 published on
# https://www.cs.toronto.edu/~kriz/cifar.html; SVHN publishes no checksums: the md5s below are
# the ones torchvision pins (torchvision/datasets/svhn.py, ``split_list``) and Keras-era loaders
# repeat.
_CIFAR_URLS = ("https://www.cs.toronto.edu/~kriz/",)
_CIFAR_LICENCE = (
    "Krizhevsky (2009), Learning Multiple Layers of Features from Tiny Images; free for research."
)
register_dataset(
    DatasetSpec(
        name="cifar10",
        description="CIFAR-10: 32x32 colour images, 10 classes; 50,000 train, 10,000 test "
        "(Krizhevsky, 2009). The binary version (no pickle).",
        splits={
            "train": (tuple(f"data_batch_{i}.bin" for i in range(1, 6)), None),
            "test": ("test_batch.bin", None),
        },
        loader="cifar10_bin",
        image_shape=(32, 32, 3),
        subfolders=("cifar-10-batches-bin", "cifar10", "CIFAR10"),
        urls=_CIFAR_URLS,
        archive="cifar-10-binary.tar.gz",
        archive_md5="c32a1d4ab5d03f1284b67883e8d87530",
        licence=_CIFAR_LICENCE,
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    )
)
register_dataset(
    DatasetSpec(
        name="cifar100",
        description="CIFAR-100: 32x32 colour images, 100 fine classes (labels here) in 20 "
        "coarse ones; 50,000 train, 10,000 test (Krizhevsky, 2009). The binary version.",
        splits={"train": ("train.bin", None), "test": ("test.bin", None)},
        loader="cifar100_bin",
        image_shape=(32, 32, 3),
        subfolders=("cifar-100-binary", "cifar100", "CIFAR100"),
        urls=_CIFAR_URLS,
        archive="cifar-100-binary.tar.gz",
        archive_md5="03b5dce01913d631647c71ecec9e9cb8",
        licence=_CIFAR_LICENCE,
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    )
)
register_dataset(
    DatasetSpec(
        name="svhn",
        description="SVHN cropped digits: 32x32 colour images of house numbers, 10 classes "
        "(label 0 is stored as 10 in the files); 73,257 train, 26,032 test (Netzer et al., 2011).",
        splits={"train": ("train_32x32.mat", None), "test": ("test_32x32.mat", None)},
        loader="svhn_mat",
        image_shape=(32, 32, 3),
        subfolders=("svhn", "SVHN"),
        urls=("http://ufldl.stanford.edu/housenumbers/",),
        md5={
            "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
            "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
        },
        licence="For non-commercial use only; Netzer et al. (2011), NIPS Workshop on Deep "
        "Learning and Unsupervised Feature Learning.",
        homepage="http://ufldl.stanford.edu/housenumbers/",
    )
)
