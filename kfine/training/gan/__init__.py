"""Adversarial (GAN-style) fine-tuning, the parts of the `adversarial` method.

`trainer` (`AdversarialFineTuner`: the LM as a generator against a sequence
discriminator), `examples` (the facts rolled out on, with knowledge
corruptions and the KG's answers, as training arrays and a `tf.data`
pipeline) and `probe_hallucination` (the callback that judges the generator
on probe questions each epoch). The method that runs them after the
baseline's MLE stage is in `kfine.training.adversarial`.
"""
