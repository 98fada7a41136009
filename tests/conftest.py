"""Settings shared by the test suite (those of every collected test, doctests included,
are in the repository's top-level ``conftest.py``)."""
