"""Configs written inline in tests, as a user would write config.yaml."""

import textwrap

import pytest

from compute_endpoint.config import Config, ConfigError, load_yaml_text


def load(text: str) -> Config:
    return load_yaml_text(textwrap.dedent(text), "config.yaml")


def error_of(text: str) -> str:
    """The message a config is refused with (it must be refused)."""
    with pytest.raises(ConfigError) as caught:
        load(text)
    return str(caught.value)
