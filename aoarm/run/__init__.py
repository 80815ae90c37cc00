"""Running an experiment.

- `setup`: every check before anything is compiled or written, the data, the mesh, restoring.
- `modes`: `--mode=train` and `--mode=eval` (sampling is `aoarm.sample.front`).
- `train`: the `Trainer` (optimizer, compiled step) and the loop; `train_config`: the typed,
  frozen sections of the config they receive.
- `early_stop`: `train.patience`, the stop once in-training evals find no new lowest loss.
- `evaluate`: held-out NLL per window, for each order a variant reports.
- `placed_model`: a model with its sharding rules on a mesh.
- `flops`: the FLOP count of a step (and `python -m aoarm.run.flops`).
"""
