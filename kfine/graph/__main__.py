"""`python -m kfine.graph COMMAND ...`: the graph stage's process.

TF-GNN needs `tf.keras` to be Keras 2, which TensorFlow decides from
`TF_USE_LEGACY_KERAS` when `tf.keras` is first touched. Importing `kfine`
already touches it (with Keras 3), so when the variable is not set the
process starts itself again with it set, before anything is imported.
"""

import argparse
import os
import sys

LEGACY_KERAS = "TF_USE_LEGACY_KERAS"


def main(argv=None):
    from kfine.errors import KfineError
    from kfine.graph.commands import RUNNERS, add_commands

    parser = argparse.ArgumentParser(prog="kfine kg", description="The TF-GNN graph stage of kfine.")
    add_commands(parser)
    args = parser.parse_args(argv)
    try:
        RUNNERS[args.kg_command](args)
    except KfineError as error:
        print(f"kfine: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    if os.environ.get(LEGACY_KERAS) != "1":
        os.execve(sys.executable, [sys.executable, "-m", "kfine.graph", *sys.argv[1:]],
                  {**os.environ, LEGACY_KERAS: "1"})
    sys.exit(main())
