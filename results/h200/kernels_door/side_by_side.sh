# the same benchmark on the code before (ab37f78, in .old/) and after the refactor, interleaved
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl
export JAX_COMPILATION_CACHE_DIR=/tmp/jaxcache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
for v in ar two_stream; do
  for rev in old new; do
    dir=.; [ $rev = old ] && dir=.old
    start=$(date +%s)
    (cd $dir && PYTHONPATH=/tmp/site:. python3 benchmarks/train_throughput.py --preset=gpt2 \
      --batch=32 --variants=$v --steps=100 --sync_steps=2 --json=$OUT/tp_${v}_$rev.json) \
      > $OUT/tp_${v}_$rev.log 2>&1
    echo "$v $rev: $(( $(date +%s) - start )) s wall; $(tail -2 $OUT/tp_${v}_$rev.log | tr '\n' ' ')" | tee -a $OUT/summary.txt
  done
done
export PYTHONPATH=/tmp/site
timeout 150 python3 -m pytest -q -m gpu tests -p no:cacheprovider -k "cudnn_attention or pallas_decode" 2>&1 | tail -5 | tee $OUT/pytest_gpu_rest.txt
