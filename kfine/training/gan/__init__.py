"""Adversarial (GAN-style) fine-tuning, the parts of the `adversarial` method.

`trainer` (`AdversarialFineTuner`: the LM as a generator against a sequence
discriminator) and `examples` (the finetune facts, with knowledge
corruptions, as training arrays and a `tf.data` pipeline). The method that
runs them after the baseline's MLE stage is in `kfine.training.adversarial`.
"""
