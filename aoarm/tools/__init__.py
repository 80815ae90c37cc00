"""Command-line tools over runs and data (each is `python -m aoarm.tools.<name>`).

- `report` (with `evidence`: the statistics, and `report_plots`): tables of a sweep.
- `runs`: one line per run of a folder. `gen_eval`, `frontier_plot`, `text_metrics`: the
  coherence-diversity frontier. `diagnostics`: attention diagnostics. `prepare_data`: build
  a token store ahead of training.
"""
