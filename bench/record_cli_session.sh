#!/usr/bin/env bash
# Records a `chunkd upload` session in tmux and saves snapshots of the pane to docs/cli-session.txt.
#   bash bench/record_cli_session.sh        (needs tmux: apt-get install tmux)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'tmux kill-session -t chunkd-rec 2>/dev/null || true; kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
port=18765
.venv/bin/chunkd serve --port $port --data-dir "$work/data" --log-level warning >/dev/null 2>&1 &
server=$!
until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.2; done
head -c 200000000 /dev/urandom > "$work/microscope-stack.mrc"
head -c 30000000 /dev/urandom > "$work/meeting.wav"
tmux new-session -d -s chunkd-rec -x 110 -y 12
tmux send-keys -t chunkd-rec "CHUNKD_CLIENT_DIR=$work/client .venv/bin/chunkd upload $work/meeting.wav $work/microscope-stack.mrc --server http://127.0.0.1:$port --parallel 2" Enter
out=docs/cli-session.txt
: > "$out"
for i in 1 2 3 4 5 6; do
  sleep 0.8
  { echo "--- snapshot $i ($(date +%T)) ---"; tmux capture-pane -p -t chunkd-rec | sed "s#$work#/data#g"; } >> "$out"
done
echo "saved $out"
