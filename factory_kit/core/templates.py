"""The one Jinja environment over the shipped ``templates/`` folder (configs, prompts)."""

from __future__ import annotations

import functools

import jinja2

from factory_kit.core import paths
from factory_kit.core.yamlio import to_yaml


@functools.cache
def environment() -> jinja2.Environment:
    """One Jinja environment per process (templates compile once); StrictUndefined: a
    missing variable is an error, never an empty string."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(paths.TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["yaml"] = to_yaml
    return env
