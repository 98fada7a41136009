"""Sphinx configuration for latentaudit's documentation."""

import os

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
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip"]
html_theme = "pydata_sphinx_theme"
html_title = "latentaudit"

autosummary_generate = True
# Inherited members are documented: a class written as several mixins (one module per job,
# e.g. ClusterAuditor) shows every public method on its own page.
autodoc_default_options = {"members": True, "inherited-members": True}


def _skip_foreign_members(app, what, name, obj, skip, options):
    # scikit-learn generates set_*_request methods on every estimator; their docstrings
    # point into scikit-learn's own glossary, so they are left out of our pages, as is
    # everything inherited from outside latentaudit (scikit-learn, torch.nn.Module).
    if name.startswith("set_") and name.endswith("_request"):
        return True
    target = getattr(obj, "fget", obj)
    module = getattr(target, "__module__", None) if callable(target) else None
    if what == "class" and isinstance(module, str) and not module.startswith("latentaudit"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_foreign_members)


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

# The gallery: every examples/plot_*.py runs at every docs build (run_stale_examples), on
# the CPU, and a failing example fails the build; tests/test_docs.py then checks the
# rendered pages in a browser.  LATENTAUDIT_GALLERY=0 renders the pages without running
# the examples (a quick build while editing text only; never in CI).
plot_gallery = "False" if os.environ.get("LATENTAUDIT_GALLERY") == "0" else "True"
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"(__init__|_helpers)\.py",
    "within_subsection_order": "FileNameSortKey",
    "run_stale_examples": True,
    "abort_on_example_error": True,
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_signature": False,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "capture_repr": ("_repr_html_", "__repr__"),
}
