"""YAML scalars written by hand, so rendered configs are deterministic and read back the same
by YAML 1.2 (ruamel) and by PyYAML/OmegaConf (what LLaMA-Factory uses)."""

from __future__ import annotations

import json
import re
from typing import Any

from factory_kit.core.errors import FactoryKitError

_PLAIN = re.compile(r"^[A-Za-z_./][A-Za-z0-9_./,:=+-]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "none", "~", "y", "n"}


def to_yaml(value: Any) -> str:
    """One YAML scalar that both YAML 1.2 and PyYAML (OmegaConf) read back as the same type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        if "e" in text:  # PyYAML needs "1.0e-04", not "1e-04"
            mantissa, exp = text.split("e")
            if "." not in mantissa:
                mantissa += ".0"
            sign = exp[0] if exp[0] in "+-" else "+"
            text = f"{mantissa}e{sign}{exp.lstrip('+-')}"
        return text
    if isinstance(value, str):
        if _PLAIN.match(value) and value.lower() not in _YAML_WORDS:
            return value
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, sort_keys=isinstance(value, dict))
    raise FactoryKitError(f"cannot write {value!r} ({type(value).__name__}) into a config")
