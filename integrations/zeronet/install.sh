#!/bin/sh
# Installs the NatTraversal plugin into a ZeroNet data directory without changing ZeroNet's
# source: copies the plugin to DATA_DIR/__plugins__/local/NatTraversal and enables it in
# DATA_DIR/plugins.json (ZeroNet loads enabled plugins listed there from DATA_DIR/__plugins__).
#   usage: install.sh DATA_DIR
set -eu
if [ $# -ne 1 ]; then
  echo "usage: $0 DATA_DIR   (ZeroNet's --data_dir, e.g. ZeroNet/data)" >&2
  exit 2
fi
data=$1
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$data/__plugins__/local"
rm -rf "$data/__plugins__/local/NatTraversal"
cp -R "$here/NatTraversal" "$data/__plugins__/local/NatTraversal"
rm -rf "$data/__plugins__/local/NatTraversal/__pycache__"
python3 - "$data/plugins.json" <<'PY'
import json, os, sys
path = sys.argv[1]
config = json.load(open(path, encoding="utf8")) if os.path.isfile(path) else {}
config.setdefault("builtin", {})
config.setdefault("local", {})["NatTraversal"] = {"enabled": True, "rev": 0}
with open(path, "w", encoding="utf8") as f:
    json.dump(config, f, ensure_ascii=False, sort_keys=True, indent=2)
PY
echo "NatTraversal installed in $data/__plugins__/local/NatTraversal and enabled in $data/plugins.json"
