"""Infrastructure that knows nothing of models: imports nothing from the rest of aoarm.

- `checkpointing` (Orbax, sealed steps), `workdir` (atomic files, locks), `sharding` (logical
  axes, meshes), `distributed` (several processes), `interrupts` (Ctrl-C, SIGTERM),
  `compile_cache`, `metrics` (metrics.jsonl, TensorBoard, progress), `timing` (DIR/timing.json),
  `errors`.
"""
