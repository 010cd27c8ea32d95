"""tf.distribute strategies for fine-tuning: one flag, `--strategy`, picks the engine.

`fine_tune` and `run_bench` call a method inside `strategy.scope()`, so every
model, layer, optimizer and metric the method builds is a distributed
variable, and Keras `fit` (or a custom `train_step`, which `fit` runs) trains
with the strategy. A method needs no code of its own for this, as long as it
builds its models inside the method function and trains them with `fit`.
A method that runs its own loop instead of `fit` gets the strategy with
`tf.distribute.get_strategy()` and runs its step with `strategy.run`.
"""

import contextlib

import tensorflow as tf

from kfine.errors import KfineError, first_line

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")


def make_strategy(name="default", tpu=None):
    """Returns the `tf.distribute.Strategy` called `name`.

    - `"default"`: TensorFlow's default strategy (one device, no replication).
    - `"mirrored"`: `MirroredStrategy` over every GPU of this machine; without
      a GPU, over every logical CPU device (one unless
      `tf.config.set_logical_device_configuration` split the CPU).
    - `"multiworker"`: `MultiWorkerMirroredStrategy`; the cluster comes from the
      `TF_CONFIG` environment variable, one process per worker. Create it
      before TensorFlow runs any op.
    - `"tpu"`: `TPUStrategy` on the TPU named by `tpu` (a name or `grpc://`
      address; default: the `TPU_NAME` variable or the local TPU VM).

    Args:
        name: str. One of `STRATEGIES`.
        tpu: str or None. The TPU for `"tpu"`.

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        KfineError: an unknown name, or the devices or cluster it needs are absent.

    Example:

    >>> strategy = make_strategy("mirrored")
    >>> with strategy.scope():  # doctest: +SKIP
    ...     model = load_model("saved_models/geonames-lm")
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if name == "multiworker":
        try:
            return MultiWorkerMirroredStrategy()
        except (ValueError, RuntimeError) as error:
            raise KfineError(f"--strategy multiworker: {first_line(error)} (set TF_CONFIG; see README)") from None
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as error:
            raise KfineError(f"--strategy tpu: no TPU found ({first_line(error)})") from None
        return tf.distribute.TPUStrategy(resolver)
    raise KfineError(f"--strategy must be one of {', '.join(STRATEGIES)}. Received: {name!r}")


class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """`tf.distribute.MultiWorkerMirroredStrategy` whose `reduce` takes what Keras 3 passes it.

    Keras 3's TensorFlow trainer (3.15) calls `strategy.reduce` on a nested
    batch (`(inputs, targets)`) before the first step and with `axis=0` on
    scalar losses after each one; the multi-worker strategy accepts neither
    (keras-team/keras#20329), so `fit` fails on the first batch. This
    subclass reduces nested structures leaf by leaf and reduces a scalar
    across replicas only, which is what both calls mean; any other value is
    reduced exactly as by the parent.
    """

    def reduce(self, reduce_op, value, axis):
        def reduce_one(leaf):
            scalar = getattr(getattr(leaf, "shape", None), "rank", None) == 0
            return super(MultiWorkerMirroredStrategy, self).reduce(reduce_op, leaf, None if scalar else axis)

        return tf.nest.map_structure(reduce_one, value)


def strategy_scope(strategy=None):
    """`strategy.scope()`, or a no-op context when `strategy` is None.

    Example:

    >>> with strategy_scope(make_strategy("mirrored")):  # doctest: +SKIP
    ...     generator = get_method("knowledge")(task, pretrained, seed, log_dir)
    """
    return contextlib.nullcontext() if strategy is None else strategy.scope()

