"""Command-line flags from a training config dataclass: one --flag per field, defaults from the class."""
import argparse
from dataclasses import asdict
from typing import Type, TypeVar

C = TypeVar("C")


def parse_config(config_cls: Type[C]) -> C:
    ap = argparse.ArgumentParser()
    for key, default in asdict(config_cls()).items():
        flag = f"--{key.replace('_', '-')}"
        if isinstance(default, bool):
            ap.add_argument(flag, action="store_true", default=default)
        else:
            ap.add_argument(flag, type=type(default), default=default)
    return config_cls(**vars(ap.parse_args()))
