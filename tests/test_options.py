"""Tests of the typed options schema: no coercion, clear messages, one source of defaults."""

from __future__ import annotations

import pytest

from latentaudit.errors import ConfigError
from latentaudit.options import AUDIT_SECTIONS, OPTIONS, Flag, Option, OptionSchema, Source
from latentaudit.pipeline import AUDIT_DEFAULTS, check_audit_options

TOML = Source("config file 'study.toml'", "toml")


@pytest.mark.parametrize("key, value, fragments", [
    ("train.steps", "2", ["train.steps must be an integer", "the text '2'",
                          "without quotes: steps = 2"]),
    ("train.steps", 2.9, ["train.steps must be an integer", "2.9 (a decimal number)",
                          "whole number, e.g. steps = 3"]),
    ("train.batch_size", 8.5, ["train.batch_size must be an integer", "batch_size = 8"]),
    ("encoder.latent_dim", True, ["encoder.latent_dim must be an integer", "true (a boolean)"]),
    ("data.size", "sixteen", ["data.size must be an integer", "the text 'sixteen'",
                              "size = 64"]),
    ("data.size", 0, ["data.size must be at least 2, got 0"]),
    ("output", 5, ["output must be a file or folder path", "5 (an integer)",
                   'output = "runs/study"']),
    ("explain.enabled", "false", ["must be true or false", "without quotes: enabled = false"]),
    ("explain.enabled", 1, ["must be true or false", "enabled = true or enabled = false"]),
    ("audit.alpha", 1.5, ["audit.alpha must be in (0, 1), got 1.5"]),
    ("audit.alpha", "0.1", ["must be a number", "without quotes: alpha = 0.1"]),
    ("train.lr", 0, ["train.lr must be greater than 0"]),
    ("projection.perplexity", float("nan"), ["must be a number, got nan"]),
    ("audit.nuisance", 3, ["must be a list of texts", 'nuisance = ["site", "sex"]']),
    ("encoder.channels", [4, 8.5], ["list of integers each >= 1", "the element 8.5"]),
    ("encoder.channels", [], ["non-empty list of integers"]),
    ("encoder.kind", "dea", ["must be one of", "did you mean 'dae'?"]),
    ("seed", -1, ["seed must be in [0, 4294967295], got -1"]),
])
def test_values_of_the_wrong_type_are_refused_not_coerced(key, value, fragments):
    section, _, name = key.rpartition(".")
    layer = {section: {name: value}} if section else {name: value}
    with pytest.raises(ConfigError) as info:
        OPTIONS.merge(layer, sources=[TOML])
    message = str(info.value)
    assert message.startswith("config file 'study.toml': ")
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize("key, value, expected", [
    ("train.steps", 2, 2), ("train.lr", 1, 1.0), ("audit.alpha", 0.1, 0.1),
    ("audit.nuisance", "site", ["site"]), ("encoder.channels", (4, 8), [4, 8]),
    ("explain.enabled", False, False), ("audit.n_clusters", None, None),
])
def test_good_values_are_kept_and_normalised(key, value, expected):
    section, _, name = key.rpartition(".")
    merged = OPTIONS.merge({section: {name: value}})
    assert merged[section][name] == expected
    assert type(merged[section][name]) is type(expected)


def test_the_fix_is_written_in_the_syntax_of_the_source():
    option = OPTIONS["train.steps"]
    cases = {Source("x", "toml"): "steps = 3", Source("x", "set"): "--set train.steps=3",
             Source("x", "flag"): "--steps 3", Source("x", "json"): '"steps": 3',
             Source("x", "python"): "steps=3"}
    for source, fix in cases.items():
        with pytest.raises(ConfigError, match=fix):
            option.check(2.9, source)


def test_unknown_keys_suggest_the_closest_one():
    with pytest.raises(ConfigError, match=r"unknown option 'audit.clusterr'; did you mean "
                                          r"'clusterer'\?"):
        OPTIONS.merge({"audit": {"clusterr": "kmeans"}})
    with pytest.raises(ConfigError, match="did you mean 'audit'"):
        OPTIONS.merge({"audti": {}})
    with pytest.raises(ConfigError, match="is a section of options"):
        OPTIONS.merge({"train": 3})
    # only the audit's sections are options of run_audit
    with pytest.raises(ConfigError, match="unknown option 'train'"):
        OPTIONS.merge({"train": {"steps": 3}}, sections=AUDIT_SECTIONS)


def test_the_audit_defaults_and_checks_come_from_the_schema():
    assert AUDIT_DEFAULTS == OPTIONS.defaults(AUDIT_SECTIONS)
    assert set(AUDIT_DEFAULTS) == set(AUDIT_SECTIONS)
    # the Python API refuses what the CLI refuses
    with pytest.raises(ConfigError, match="audit.n_permutations must be an integer"):
        check_audit_options({"audit": {"n_permutations": 9.5}})
    with pytest.raises(ConfigError, match="explain.enabled must be true or false"):
        check_audit_options({"explain": {"enabled": "no"}})


def test_every_default_fits_its_option_and_keys_are_unique():
    for option in OPTIONS:
        assert option.check(option.default) == option.default
        assert option.help
    with pytest.raises(ValueError, match="defined twice"):
        OptionSchema([Option("a.b", "int", 1, "x"), Option("a.b", "int", 2, "y")])
    with pytest.raises(ValueError, match="kind must be one of"):
        Option("a.b", "number", 1, "x")
    with pytest.raises(ConfigError):  # a default that does not fit is a bug of the entry
        OptionSchema([Option("a.b", "int", 1.5, "x")])


def test_a_switch_flag_has_no_value():
    assert Flag(("--resume",), ("train",), const=True).switch
    assert not Flag(("--steps",), ("train",)).switch
