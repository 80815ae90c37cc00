# Sourced by the launch scripts whose steps run one after another in one device call:
# `step LIMIT CMD...` runs CMD under `timeout LIMIT` only while LIMIT seconds are still left of
# BUDGET (default 560; bash's SECONDS counts from the script's start), else prints on stderr why
# not. A step is never given a shortened limit: a compile-heavy step cut short prints nothing.
step() {
  local limit=$1; shift
  if [ $((${BUDGET:-560} - SECONDS)) -lt "$limit" ]; then echo "[skipped: <$limit s left] $*" >&2
  else timeout "$limit" "$@"; fi
}
