#!/usr/bin/env bash
# The GPU measurements recorded in benchmarks/RESULTS.md, one stage per call.
# Written for a GPU machine that has CUDA JAX, flax, optax, chex and orbax but no
# package registry: the remaining packages travel as wheels in .whl/ (git-ignored;
# RESULTS.md lists them and how they were fetched).
#   bash benchmarks/gpu_session.sh STAGE OUTDIR
# Stages: setup-check, train1m, train10m, throughput, scaling, ablation (extra arguments go to the script).
set -uo pipefail
stage=$1; out=$2; shift 2
mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    >/dev/null 2>&1 || { echo "wheel install failed"; exit 1; }
fi
export PYTHONPATH=/tmp/site:$PWD:$PWD/benchmarks PYTHONUNBUFFERED=1 JAX_PLATFORMS=cuda
py=python3
versions() {
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $py -c "import jax, flax, optax, jaxmarl; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"
}
smax() {  # smax_5v5 ME-QMIX family run: smax ALG STEPS SEEDS DIR [overrides...]
  local alg=$1 steps=$2 seeds=$3 dir=$4; shift 4
  $py -m meigm_jax.train +env=smax_5v5 alg=$alg num_seeds=$seeds total_timesteps=$steps \
    wandb.mode=disabled hydra.run.dir=$dir "$@"
}
case $stage in
  setup-check)
    versions
    $py -m meigm_jax.train total_timesteps=2000 wandb.mode=disabled hydra.run.dir=/tmp/smoke | tail -5 ;;
  train1m)  # 1M env steps of ME-QMIX on smax_5v5, 4 seeds
    versions
    timeout ${LIMIT:-520} bash -c "$(declare -f smax); py=$py; smax me_qmix 1000000 4 /tmp/train1m" 2>&1 | tee "$out/train1m.log" | tail -30
    cp /tmp/train1m/metrics.jsonl "$out/train1m_metrics.jsonl" ;;
  train10m)  # 10M env steps of ME-QMIX on smax_5v5, 4 seeds, in parts: each call trains LIMIT
             # seconds, checkpointing, and the next call on the same machine resumes it (the
             # state is ~3 GiB, too big to copy elsewhere). The whole run takes about 25 minutes.
             # run_speed.py projects the whole run from the measured env steps/s.
             # A first part cut before its first checkpoint (EVERY updates) cannot resume: rm -rf /tmp/train10m.
    versions
    dir=/tmp/train10m; more=""
    [ -d $dir/checkpoints ] && more="resume=true"
    timeout ${LIMIT:-540} bash -c "$(declare -f smax); py=$py; smax me_qmix 10050000 4 $dir checkpoint.every=${EVERY:-2000} checkpoint.keep=1 $more" \
      2>&1 | tee -a "$out/train10m.log" | tail -15
    cp $dir/metrics.jsonl "$out/train10m_metrics.jsonl"
    $py benchmarks/run_speed.py $dir | tee "$out/train10m_speed.md" ;;
  throughput)
    versions
    timeout ${LIMIT:-520} $py benchmarks/throughput.py "$@" 2>&1 | tee "$out/throughput.log" ;;
  scaling)
    versions
    timeout ${LIMIT:-520} $py benchmarks/scaling.py "$@" 2>&1 | grep -v ubmoduled | tee "$out/scaling.log" ;;
  ablation)  # the four ablation variants at once, one process each sharing the GPU
    versions
    export XLA_PYTHON_CLIENT_MEM_FRACTION=0.2
    mkdir -p /tmp/abl
    for alg in qmix me_qmix_no_opt me_qmix me_qmix_mlp; do
      timeout ${LIMIT:-540} bash -c "$(declare -f smax); py=$py; smax $alg ${STEPS:-2000000} 4 /tmp/abl/$alg" \
        >/tmp/abl/$alg.log 2>&1 &
    done
    wait
    for alg in qmix me_qmix_no_opt me_qmix me_qmix_mlp; do
      cp /tmp/abl/$alg/metrics.jsonl "$out/abl_${alg}_metrics.jsonl"; tail -3 /tmp/abl/$alg.log | tee -a "$out/abl_logs.txt"
    done
    # The runs may have been cut short by LIMIT: tabulate the last evaluation all reached.
    $py -m meigm_jax.ablation +env=smax_5v5 out=/tmp/abl from_runs=true && cp /tmp/abl/ablation.md "$out/" ;;
  *) echo "unknown stage $stage"; exit 2 ;;
esac
