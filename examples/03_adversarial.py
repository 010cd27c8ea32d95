"""Adversarial fine-tuning: the shipped LM against a discriminator, watched in TensorBoard.

Run from the repository root (about 5 minutes on 2 CPU cores):

    .venv/bin/python examples/03_adversarial.py
    tensorboard --logdir runs/adversarial

It fine-tunes the shipped model on the bundled KG's quick finetune facts with
`AdversarialFineTuner` (straight-through Gumbel-softmax, non-saturating loss,
MLE term, corrupted facts as extra fakes), rolling out on prompts about the
probe subjects (kept out of the fine-tuning text, as the `adversarial` method
does) against a knowledge-aware discriminator, which reads whether the answer
spells one of the question's KG objects; logs d_loss, g_loss, D(real),
D(fake), their gap and the Gumbel temperature, plus sample generations as
text, then times one adversarial train step against one MLE train step on the
same batch (same batch size and sequence length) and prints the ratio.
"""

import argparse
import os
import time

import keras
import numpy as np

from kfine.datasets.geonames import default_kg_files
from kfine.knowledge.task import QUICK, FactTask
from kfine.models.discriminator import build_discriminator
from kfine.models.generation import Generator
from kfine.models.loading import load_model, on_pretraining_split
from kfine.models.shipped import shipped_model_path
from kfine.training.adversarial import MONITORED, AdversarialFineTuner, adversarial_dataset, adversarial_examples
from kfine.training.divergence_guard import DivergenceGuard
from kfine.training.mle import next_token_loss
from kfine.training.probe import ProbeSlice
from kfine.training.text_samples import TextSamples

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--estimator", default="gumbel", choices=["gumbel", "reinforce"])
parser.add_argument("--timing-steps", type=int, default=10, help="timed steps of each kind")
parser.add_argument("--jit-compile", action="store_true", help="compile both train steps with XLA")
parser.add_argument("--logdir", default="runs/adversarial")
args = parser.parse_args()

keras.utils.set_random_seed(0)
pretrained = shipped_model_path()
task = on_pretraining_split(FactTask.from_files(**default_kg_files(), size=QUICK), pretrained)
model = load_model(pretrained)

# === Adversarial fine-tuning ===
# Text alone cannot tell a wrong country from a right one; the KG feature can.
discriminator = build_discriminator(model, knowledge_aware=True)
fine_tuner = AdversarialFineTuner(model, discriminator, estimator=args.estimator, answer_length=4,
                                  adversarial_weight=0.5, label_smoothing=0.1, seed=0)
fine_tuner.compile(discriminator_optimizer=keras.optimizers.Adam(5e-4, global_clipnorm=1.0),
                   jit_compile=args.jit_compile)
# Rollouts about subjects the model never read, where its answers are wrong.
probe = ProbeSlice(task)
examples = adversarial_examples(task, model.tokenizer, fine_tuner.answer_length, model.sequence_length,
                                rollout_triples=probe.triples or None)
dataset = adversarial_dataset(examples, batch_size=32)
prompts = [prompt.text for prompt, _ in task.evaluation_prompts("seen")[:4]]
generator = Generator(model, model.tokenizer)
guard = DivergenceGuard(monitor=MONITORED, max_increase={"mle_loss": 5.0})
fine_tuner.fit(dataset, epochs=args.epochs, verbose=2, shuffle=False, callbacks=[
    keras.callbacks.TensorBoard(args.logdir, write_graph=False),  # epoch scalars (see fine_tune_adversarial)
    TextSamples(generator, prompts, os.path.join(args.logdir, "samples")),
    guard,
])
print("stopped early:", guard.stop_message or "no")
for prompt, completion in zip(prompts, generator.generate(prompts)):
    print(f"  {prompt} -> {completion}")

# === One adversarial step vs one MLE step, same batch, side by side ===
batch = next(iter(dataset))
inputs, targets = batch["token_ids"][:, :-1], batch["token_ids"][:, 1:]
mle_model = load_model(pretrained)
mle_model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=next_token_loss(), jit_compile=args.jit_compile)
steps = {"adversarial": lambda: fine_tuner.train_on_batch(batch),
         "mle": lambda: mle_model.train_on_batch(inputs, targets)}
timings = {name: [] for name in steps}
for step in steps.values():
    step(), step()  # warm-up: tracing (and XLA compilation)
for _ in range(args.timing_steps):
    for name, step in steps.items():  # interleaved, so both see the same machine load
        started = time.perf_counter()
        step()
        timings[name].append(time.perf_counter() - started)
adversarial, mle = (float(np.median(timings[name])) for name in ("adversarial", "mle"))
print(f"batch {inputs.shape[0]} x {inputs.shape[1]} tokens, jit_compile={args.jit_compile}: "
      f"adversarial step {adversarial * 1e3:.1f} ms, MLE step {mle * 1e3:.1f} ms (medians of {args.timing_steps}), "
      f"ratio {adversarial / mle:.2f}")
