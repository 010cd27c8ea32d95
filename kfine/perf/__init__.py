"""`kfine bench --perf`: kfine's speed side by side with its peers and the machine's own limit.

One module per measurement (training, linking, kg_scaling, generation, methods);
`harness.run_perf` runs them all and writes perf.json and perf.md.
"""
