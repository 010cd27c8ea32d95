"""Runs `kfine` in-process through `kfine.cli.main`, reporting as a subprocess would."""

import re

from kfine.cli import main

# TensorFlow's C++ runtime logs whatever kfine does (e.g. "failed call to cuInit" without a GPU
# driver; lines logged before absl is initialized, "I0000 00:00:<epoch>...", pass any log level);
# those lines are not kfine's output.
_RUNTIME_LOG = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\]|WARNING: All log messages before absl)")


def kfine_lines(stderr):
    """The lines of `stderr` that kfine wrote."""
    return [line for line in stderr.splitlines() if line.strip() and not _RUNTIME_LOG.match(line)]


def in_process(arguments, capsys):
    """`main(arguments)` -> (returncode, stdout, stderr), as a subprocess reports them."""
    capsys.readouterr()
    try:
        returncode = main(arguments)
    except SystemExit as exit:  # argparse's errors
        returncode = exit.code
    captured = capsys.readouterr()
    return returncode, captured.out, captured.err
