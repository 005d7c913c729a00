#!/usr/bin/env bash
# Benchmarks `fixclf embed` against the Python references on WikiText-2 train, same
# hyperparameters and threads: word2vec (ours vs gensim Word2Vec, words/s and CPU-s) and
# PPMI+SVD (ours vs scipy svds: wall time, peak RSS), then evaluates all four vector sets
# (nearest neighbours, WordSim-353 Spearman, Google analogies from gensim's test data).
# Usage: bench/embed.sh            (env: EPOCHS=1 THREADS=2 DIM=512 WINDOW=5 NEG=5 CORPUS=...)
#        FIXCLF_EMBED overrides the command (default: target/release/fixclf embed; `make build` first).
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${EPOCHS:-1}; THREADS=${THREADS:-2}; DIM=${DIM:-512}; WINDOW=${WINDOW:-5}; NEG=${NEG:-5}
CORPUS=${CORPUS:-data/wikitext-2/train.txt}
OUT=${OUT:-runs/bench-embed}
VENV=${VENV:-$HOME/.cache/fixclf/bench-venv}
FIXCLF_EMBED=${FIXCLF_EMBED:-target/release/fixclf embed}
mkdir -p "$OUT"

# Idempotent venv with gensim + scipy.
if ! "$VENV/bin/python" -c "import gensim, scipy" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q gensim scipy numpy
fi
PY="$VENV/bin/python"
TD=$("$PY" -c "import gensim, os; print(os.path.join(os.path.dirname(gensim.__file__), 'test', 'test_data'))")

cargo build --release -q
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "settings: dim $DIM window $WINDOW negative $NEG epochs $EPOCHS threads $THREADS sample 1e-3 corpus $CORPUS"

timev() { /usr/bin/time -f "%e %M" -o "$1" "${@:2}"; }

echo "== word2vec: ours"
timev "$OUT/ours_w2v.time" $FIXCLF_EMBED word2vec --corpus "$CORPUS" --out "$OUT/ours_w2v" --dim "$DIM" \
    --window "$WINDOW" --negative "$NEG" --epochs "$EPOCHS" --threads "$THREADS" --force 2>&1 | grep -v "%" || true
echo "== word2vec: gensim"
timev "$OUT/gensim_w2v.time" "$PY" bench/gensim_word2vec.py "$CORPUS" "$OUT/gensim_w2v.npy" --dim "$DIM" \
    --window "$WINDOW" --negative "$NEG" --epochs "$EPOCHS" --threads "$THREADS" > "$OUT/gensim_w2v.stats"
cat "$OUT/gensim_w2v.stats"
echo "== pmi: ours"
timev "$OUT/ours_pmi.time" $FIXCLF_EMBED pmi --corpus "$CORPUS" --out "$OUT/ours_pmi" --dim "$DIM" \
    --window "$WINDOW" --threads "$THREADS" --force 2>&1
echo "== pmi: scipy"
timev "$OUT/scipy_pmi.time" "$PY" bench/scipy_pmi.py "$CORPUS" "$OUT/scipy_pmi.npy" --dim "$DIM" \
    --window "$WINDOW" --threads "$THREADS" > "$OUT/scipy_pmi.stats"
cat "$OUT/scipy_pmi.stats"

for v in ours_w2v gensim_w2v ours_pmi scipy_pmi; do
    $FIXCLF_EMBED eval "$OUT/$v.npy" --neighbours the,king,city,music,war,1995 --k 5 \
        --similarity "$TD/wordsim353.tsv" --analogy "$TD/questions-words.txt" --json > "$OUT/$v.eval.json"
done
"$PY" bench/summarize.py "$OUT"
