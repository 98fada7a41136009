"""Sphinx configuration for latentaudit's documentation."""

import latentaudit

project = "latentaudit"
author = "latentaudit developers"
copyright = "2026, the latentaudit developers"
release = latentaudit.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "pydata_sphinx_theme"
html_title = "latentaudit"

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}


def _skip_metadata_requests(app, what, name, obj, skip, options):
    # scikit-learn generates set_*_request methods on every estimator; their docstrings
    # point into scikit-learn's own glossary, so they are left out of our pages.
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_metadata_requests)


autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Cross-references to types written in docstrings ("array-like", "int, optional") are
# not all resolvable; numpydoc's validation is what we want, not link checking.
numpydoc_xref_param_type = False
intersphinx_mapping = {}
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]
numpydoc_attributes_as_param_list = True
