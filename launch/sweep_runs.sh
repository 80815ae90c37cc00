# Sourced by the device scripts that run a sweep's entries at once, one process each
# (evidence_gpu.sh, subword_gpu_sweep.sh):
# `sweep_names CONFIG DIR REGEX`: the run folders' names of the entries matching REGEX;
# `stamp`: each line of stdin with the epoch second in front (a run's log), cut to 300 chars.
sweep_names() {
  python3 launch/sweep.py --config="$1" --sweep_dir="$2" --only="$3" --dry_run \
    | grep -- '--mode=train' | sed -E 's/.*--workdir=[^ ]*\/([^ /]+) .*/\1/'
}
stamp() { while IFS= read -r l; do printf '%(%s)T %s\n' -1 "${l:0:300}"; done; }
