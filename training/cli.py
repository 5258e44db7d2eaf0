"""Command-line flags from a training config dataclass: one --flag per field, defaults from the class."""
import argparse
from dataclasses import asdict
from typing import Type, TypeVar

C = TypeVar("C")


def parse_config(config_cls: Type[C], argv=None) -> C:
    ap = argparse.ArgumentParser()
    for key, default in asdict(config_cls()).items():
        flag = f"--{key.replace('_', '-')}"
        if isinstance(default, bool):                  # --flag / --no-flag, so a default-True field can be turned off
            ap.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            ap.add_argument(flag, type=type(default), default=default)
    return config_cls(**vars(ap.parse_args(argv)))


def to_flags(cfg) -> list:
    """The command line that parse_config turns back into cfg (only fields that differ from the defaults)."""
    out = []
    for key, value in asdict(cfg).items():
        if value == getattr(type(cfg)(), key):
            continue
        flag = f"--{key.replace('_', '-')}"
        if isinstance(value, bool):
            out += [flag if value else f"--no-{key.replace('_', '-')}"]
        else:
            out += [flag, str(value)]
    return out
