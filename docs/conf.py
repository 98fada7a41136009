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
templates_path = ["_templates"]
html_static_path = ["_static"]
html_theme = "pydata_sphinx_theme"
html_title = "latentaudit"

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Cross-references to types written in docstrings ("array-like", "int, optional") are
# not all resolvable; numpydoc's validation is what we want, not link checking.
numpydoc_xref_param_type = False
intersphinx_mapping = {}
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]
