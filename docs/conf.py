"""Sphinx configuration of the mixexp documentation.

Build: ``sphinx-build -W -b html docs docs/_build/html`` (warnings are
errors). It needs no network: intersphinx is not used, so references to
NumPy, scikit-learn or Matplotlib objects are rendered as plain names.
"""

import os
import re
import sys
import warnings
from pathlib import Path

# Build against the checkout even when the package is not installed.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Examples draw with the non-interactive backend; set before pyplot loads.
os.environ.setdefault("MPLBACKEND", "Agg")

import mixexp  # noqa: E402

project = "mixexp"
author = "The mixexp developers"
copyright = "The mixexp developers"
version = release = mixexp.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
root_doc = "index"
default_role = "obj"

# ---- API reference -------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True}
autodoc_typehints = "none"
# numpydoc renders the docstrings; the class template lists the members
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# Methods inherited from scikit-learn (score, get_params, set_*_request, ...)
# carry cross-references into scikit-learn's own documentation, which this
# offline build cannot resolve; keep their text, drop the link.
_SKLEARN_ROLE = re.compile(r":(?:ref|term):`([^`<]*?)(?:\s*<[^`>]*>)?`")


def _unlink_sklearn_references(app, what, name, obj, options, lines):
    module = getattr(obj, "__module__", None) or ""
    if module.split(".")[0] != "sklearn":
        return
    lines[:] = [_SKLEARN_ROLE.sub(lambda m: m.group(1).strip(), line) for line in lines]


def setup(app):
    app.connect("autodoc-process-docstring", _unlink_sklearn_references)


# ---- example gallery -----------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": ["../examples"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "doc_module": ("mixexp",),
    "backreferences_dir": "generated/backreferences",
    "reference_url": {"mixexp": None},
    "abort_on_example_error": True,
    "download_all_examples": False,
    "remove_config_comments": True,
    "min_reported_time": 1,
    "matplotlib_animations": False,
    "show_memory": False,
}

# Under Agg, plt.show() warns that it cannot show anything; sphinx-gallery
# collects the figures itself, so the warning is noise.
warnings.filterwarnings("ignore", category=UserWarning,
                        message="Matplotlib is currently using agg")

# ---- HTML ------------------------------------------------------------------
html_theme = "furo"
html_title = f"mixexp {release}"
html_static_path = []
html_show_sourcelink = False
