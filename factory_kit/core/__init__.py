"""The small core every stage may use: paths, errors, console, atomic file io, YAML scalars, templates,
options declared as dataclass fields.

It imports nothing else from factory_kit.
"""
