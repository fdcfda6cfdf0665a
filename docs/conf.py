"""Sphinx configuration of hvaelab's documentation (``make docs``; CI: warnings are errors).

The site is built offline and requests nothing from another host when read: the theme is
Sphinx's own alabaster, math is rendered by a local copy of MathJax (the
``sphinx-mathjax-offline`` package copies it into ``_static/mathjax``), and references into
Python, NumPy and PyTorch resolve through small inventories vendored in ``docs/_inventories``
(written by ``docs/_inventories/make_inventories.py``; no download at build time).
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))  # autodoc imports hvaelab from this checkout

import hvaelab  # noqa: E402

project = "hvaelab"
author = "hvaelab contributors"
copyright = "hvaelab contributors (MIT)"
release = version = hvaelab.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # sets mathjax_path to the local copy
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# package-description.md is the distribution's long description (pyproject's `readme`), not a
# page of the site; _build is the output.
exclude_patterns = ["_build", "package-description.md", "_inventories"]

myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3  # GitHub-style anchors for `page.md#heading` links

html_theme = "alabaster"
html_theme_options = {
    "description": "Hierarchical VAEs Know What They Don't Know, runnable",
    "page_width": "1160px",  # room for the measured tables
}
html_static_path: list[str] = []
html_show_sourcelink = False

# ----------------------------------------------------------------------------- autodoc
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True}
autoclass_content = "both"
# not torch.nn.Module.forward's docstring under every forward() (it refers to torch's own names)
autodoc_inherit_docstrings = False

# ------------------------------------------------- references: broken ones fail the build
nitpicky = True

# Vendored inventories (a few kB each): the names hvaelab's signatures and docstrings use, with
# the addresses of those projects' own documentation. Links to them are plain <a> links; the
# build reads only these files.
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", str(DOCS / "_inventories" / "python.inv")),
    "numpy": ("https://numpy.org/doc/stable", str(DOCS / "_inventories" / "numpy.inv")),
    "torch": ("https://docs.pytorch.org/docs/stable", str(DOCS / "_inventories" / "torch.inv")),
}

# Ignored on purpose: names from libraries whose inventories are not vendored (plotly,
# ipywidgets, scikit-learn, safetensors, traitlets, anywidget, voila, jupyter_server, onnx,
# tqdm), and the type aliases and private helpers that annotations mention but that are not
# public names of hvaelab. Everything else that does not resolve fails the build.
nitpick_ignore_regex = [
    (r"py:.*", r"(plotly|go|ipywidgets|widgets|sklearn|safetensors|traitlets|anywidget)\..*"),
    (r"py:.*", r"(voila|jupyter_server|jupyter_client|tornado|onnx|onnxruntime|tqdm|ort)\..*"),
    (r"py:.*", r"(nbformat|nbclient|pooch|platformdirs|PIL|scipy)\..*"),
    # serving.ClassroomVoila's signature, inherited from Voila (a traitlets Application)
    (r"py:class", r"(Application|t\.Any)"),
]


# ------------------------------------------------- one home per object, re-exports resolve there
# A class or function is documented once, in the module that defines it (``obj.__module__``); a
# package's ``__all__`` that re-exports it (``hvaelab.data.load_dataset`` is
# ``hvaelab.data.load.load_dataset``) lists it without documenting it twice, and references to
# the re-exported name resolve to that one description.
_current_module: list[str] = []


def _record_module(app, what, name, obj, options, lines):
    if what == "module":
        _current_module[:] = [name]
    # a constant without a docstring of its own shows none, not its type's (dict's, tuple's)
    if what == "data" and lines and obj.__doc__ is type(obj).__doc__:
        lines.clear()


def _skip_reexports(app, what, name, obj, skip, options):
    home = getattr(obj, "__module__", None)
    is_def = isinstance(obj, type) or callable(obj)
    if what == "module" and is_def and home and _current_module and home != _current_module[0]:
        return True
    return None


_ALIASES = {"np": "numpy", "Path": "pathlib.Path"}  # as annotations spell them


def _find(target: str, module: str | None, cls: str | None):
    """The object ``target`` names, looked up as Python would from ``module`` (and ``cls``),
    then in the packages above it; None if there is no such object."""
    import importlib

    scopes = [""]
    if module:
        parts = module.split(".")
        scopes = [".".join(parts[:i]) for i in range(len(parts), 0, -1)] + [""]
        if cls:
            scopes.insert(0, f"{module}.{cls}")
    for scope in scopes:
        dotted = f"{scope}.{target}" if scope else target
        head, _, rest = dotted.partition(".")
        try:
            obj = importlib.import_module(head)
        except ImportError:
            continue
        for part in rest.split(".") if rest else []:
            nxt = getattr(obj, part, None)
            if nxt is None:
                try:
                    nxt = importlib.import_module(f"{obj.__name__}.{part}")
                except (ImportError, AttributeError):
                    nxt = None
            obj = nxt
            if obj is None:
                break
        if obj is not None:
            return obj
    return None


def _resolve_hvaelab(app, env, node, contnode):
    """References that the Python domain did not resolve, for names that exist in hvaelab:

    - a name re-exported or imported elsewhere (``hvaelab.data.load_dataset``, ``ChecksumError``
      in a module that imports it) resolves to the one place its object is documented;
    - a name that exists but is not public (a module constant or helper outside ``__all__``,
      ``GATE``, ``_WeightNorm``) is shown as code without a link;
    - a name that does not exist is left unresolved, and the build fails (nitpicky, -W).
    """
    from sphinx.ext import intersphinx

    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    head, _, rest = target.partition(".")
    if head in _ALIASES:  # np.ndarray, Path: the annotation's spelling of a vendored name
        alias = node.deepcopy()
        alias["reftarget"] = _ALIASES[head] + (f".{rest}" if rest else "")
        return intersphinx.missing_reference(app, env, alias, contnode)
    module, cls = node.get("py:module"), node.get("py:class")
    if not (target.startswith("hvaelab") or (module or "").startswith("hvaelab")):
        return None
    obj = _find(target.lstrip(".~"), module, cls)
    if obj is None:
        return None
    home = getattr(obj, "__module__", None)
    qual = getattr(obj, "__qualname__", None)
    if home and qual and home.startswith("hvaelab"):
        resolved = env.get_domain("py").resolve_xref(
            env, node["refdoc"], app.builder, node["reftype"], f"{home}.{qual}", node, contnode
        )
        if resolved is not None:
            return resolved
    return contnode  # exists, not public: code without a link


def _public_data(app, docname, source):
    """Module constants named in ``__all__`` are documented even without a ``#:`` comment or a
    docstring (autodoc's ``automodule`` takes only those that have one): each gets a
    ``py:data`` entry (its name and short value) after its module's."""
    import importlib
    import inspect
    import re

    from sphinx.pycode import ModuleAnalyzer

    if not docname.startswith("api/"):
        return

    def entries(match: re.Match) -> str:
        name = match.group(1)
        module = importlib.import_module(name)
        try:
            documented = {n for (_, n) in ModuleAnalyzer.for_module(name).find_attr_docs()}
        except Exception:  # no source to analyse
            documented = set()
        out = [match.group(0)]
        for member in getattr(module, "__all__", []):
            obj = getattr(module, member)
            if callable(obj) or inspect.ismodule(obj) or member in documented:
                continue
            out += ["", f".. py:data:: {member}", f"   :module: {name}"]
            if len(repr(obj)) <= 80 and "\n" not in repr(obj):
                out.append(f"   :value: {obj!r}")
        return "\n".join(out)

    source[0] = re.sub(r"^\.\. api-modules:: (\S+)$", _api_modules, source[0], flags=re.M)
    source[0] = re.sub(r"^\.\. automodule:: (\S+)$", entries, source[0], flags=re.M)


SUBPACKAGES = ("hvaelab.app", "hvaelab.data", "hvaelab.model")


def api_modules(package: str) -> list[str]:
    """Every module of ``package`` (for ``hvaelab``: the top level, without the subpackages,
    which have pages of their own), the package first; ``__main__`` is the command line."""
    folder = DOCS.parent / Path(*package.split("."))
    names = [package]
    for path in sorted(folder.glob("*.py")):
        name = f"{package}.{path.stem}"
        if path.stem not in ("__init__", "__main__"):
            names.append(name)
    if package == "hvaelab":
        names = [n for n in names if n not in SUBPACKAGES]
    return names


def _api_modules(match) -> str:
    return "\n\n".join(f".. automodule:: {m}" for m in api_modules(match.group(1)))


def setup(app):
    app.connect("source-read", _public_data)
    app.connect("autodoc-process-docstring", _record_module)
    app.connect("autodoc-skip-member", _skip_reexports)
    app.connect("missing-reference", _resolve_hvaelab)
