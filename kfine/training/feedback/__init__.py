"""Fact-check feedback: the parts of the `factcheck` methods' rounds.

`config` (how the rounds run), `checkers` (the checker fed back, and its
evaluation), `losses` (unlikelihood, DPO), `trainer` (the Keras model whose
`train_step` combines them), `round_data` (a round's samples and verdicts as
`tf.data` batches), `summaries` (TensorBoard) and `rounds`
(`FactCheckFineTuner`: sample, check, train). The methods that run them
after the baseline's MLE stage are in `kfine.training.factcheck`.
"""
