"""Write the vendored intersphinx inventories (``python.inv``, ``numpy.inv``, ``torch.inv``).

The build runs offline, so it cannot fetch those projects' ``objects.inv``; these small ones
list the names hvaelab's signatures and docstrings refer to, each with its address in that
project's documentation. A name the build cannot resolve fails it (``nitpicky``): add the name
here and rerun ``python docs/_inventories/make_inventories.py``.
"""

from __future__ import annotations

import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (role, page relative to the project's documentation root, anchor or "" for the name)
PYTHON = {
    "pathlib.Path": ("class", "library/pathlib.html", ""),
    "collections.abc.Iterator": ("class", "library/collections.abc.html", ""),
    "collections.abc.Iterable": ("class", "library/collections.abc.html", ""),
    "collections.abc.Sequence": ("class", "library/collections.abc.html", ""),
    "collections.abc.Mapping": ("class", "library/collections.abc.html", ""),
    "collections.abc.Callable": ("class", "library/collections.abc.html", ""),
    "typing.Any": ("data", "library/typing.html", ""),
    "typing.Literal": ("data", "library/typing.html", ""),
    "typing.Protocol": ("class", "library/typing.html", ""),
    "argparse.ArgumentParser": ("class", "library/argparse.html", ""),
    "argparse.Namespace": ("class", "library/argparse.html", ""),
    "subprocess.Popen": ("class", "library/subprocess.html", ""),
    "threading.Thread": ("class", "library/threading.html", ""),
    "logging.Logger": ("class", "library/logging.html", ""),
    "os.PathLike": ("class", "library/os.html", ""),
    "enum.Enum": ("class", "library/enum.html", ""),
    "io.BytesIO": ("class", "library/io.html", ""),
    "datetime.datetime": ("class", "library/datetime.html", ""),
    "contextlib.AbstractContextManager": ("class", "library/contextlib.html", ""),
    "importlib.resources.files": ("function", "library/importlib.resources.html", ""),
    "functools.lru_cache": ("function", "library/functools.html", ""),
    "enum.StrEnum": ("class", "library/enum.html", ""),
    "ValueError": ("exception", "library/exceptions.html", ""),
    "TypeError": ("exception", "library/exceptions.html", ""),
    "RuntimeError": ("exception", "library/exceptions.html", ""),
    "FileNotFoundError": ("exception", "library/exceptions.html", ""),
    "OSError": ("exception", "library/exceptions.html", ""),
    "KeyError": ("exception", "library/exceptions.html", ""),
    "Exception": ("exception", "library/exceptions.html", ""),
    "SystemExit": ("exception", "library/exceptions.html", ""),
}
NUMPY = {
    "numpy.ndarray": ("class", "reference/generated/numpy.ndarray.html", ""),
    "numpy.dtype": ("class", "reference/generated/numpy.dtype.html", ""),
    "numpy.random.Generator": ("class", "reference/random/generator.html", ""),
    "numpy.uint8": ("class", "reference/arrays.scalars.html", ""),
    "numpy.uint64": ("class", "reference/arrays.scalars.html", ""),
    "numpy.float32": ("class", "reference/arrays.scalars.html", ""),
    "numpy.float64": ("class", "reference/arrays.scalars.html", ""),
    "numpy.bool": ("class", "reference/arrays.scalars.html", ""),
    "numpy.integer": ("class", "reference/arrays.scalars.html", ""),
    "numpy.floating": ("class", "reference/arrays.scalars.html", ""),
    "numpy.generic": ("class", "reference/arrays.scalars.html", ""),
    "numpy.random._generator.Generator": (
        "class",
        "reference/random/generator.html",
        "numpy.random.Generator",
    ),
    "numpy.typing.NDArray": ("data", "reference/typing.html", ""),
}
TORCH = {
    "torch.Tensor": ("class", "tensors.html", ""),
    "torch.nn.Module": ("class", "generated/torch.nn.Module.html", ""),
    "torch.nn.Parameter": ("class", "generated/torch.nn.parameter.Parameter.html", ""),
    # the names annotations resolve to at run time
    "torch._C.Generator": ("class", "generated/torch.Generator.html", "torch.Generator"),
    "torch.nn.modules.module.Module": (
        "class",
        "generated/torch.nn.Module.html",
        "torch.nn.Module",
    ),
    "torch.nn.modules.container.ModuleList": (
        "class",
        "generated/torch.nn.ModuleList.html",
        "torch.nn.ModuleList",
    ),
    "torch.nn.parameter.Parameter": (
        "class",
        "generated/torch.nn.parameter.Parameter.html",
        "torch.nn.parameter.Parameter",
    ),
    "torch.nn.ModuleList": ("class", "generated/torch.nn.ModuleList.html", ""),
    "torch.nn.Conv2d": ("class", "generated/torch.nn.Conv2d.html", ""),
    "torch.nn.Linear": ("class", "generated/torch.nn.Linear.html", ""),
    "torch.nn.ConvTranspose2d": ("class", "generated/torch.nn.ConvTranspose2d.html", ""),
    "torch.Generator": ("class", "generated/torch.Generator.html", ""),
    "torch.device": ("class", "tensor_attributes.html", ""),
    "torch.dtype": ("class", "tensor_attributes.html", ""),
    "torch.Size": ("class", "size.html", ""),
    "torch.optim.Optimizer": ("class", "optim.html", ""),
    "torch.distributions.Distribution": ("class", "distributions.html", ""),
    "torch.utils.data.DataLoader": ("class", "data.html", ""),
    "torch.compile": ("function", "generated/torch.compile.html", ""),
    "torch.autocast": ("class", "amp.html", ""),
}


def write(path: Path, project: str, names: dict[str, tuple[str, str, str]]) -> None:
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n# Version: \n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    lines = [
        f"{name} py:{role} 1 {page}#{anchor or '$'} -\n"
        for name, (role, page, anchor) in sorted(names.items())
    ]
    path.write_bytes(header.encode() + zlib.compress("".join(lines).encode(), 9))


if __name__ == "__main__":
    write(HERE / "python.inv", "Python", PYTHON)
    write(HERE / "numpy.inv", "NumPy", NUMPY)
    write(HERE / "torch.inv", "PyTorch", TORCH)
