# Builtin resource type "fs": a file or directory on the worker's filesystem.
#
# Params:
#   path  absolute path of the file or directory to watch (checks run in a
#         fresh scratch directory, so relative paths are not useful)
#
# Versions:
#   file       {"path","hash","modified","size"}  hash = sha256 of the content
#   directory  {"path","hash"}  hash = sha256 over the sorted list of
#              "<sha256>  <relative path>" of every file below it, so a
#              rename, an added or a changed file gives a new version
#
# check prints [] when the path does not exist or its hash is unchanged.
# pull copies it into $WORKDIR/<basename of path>. push does nothing.
# With several workers, the path is read on whichever worker runs the check,
# so tag the resource when only some workers have it.
resource_type "fs" {
  params = ["path"]

  check "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      p="$param_path"
      if [ -z "$p" ]; then echo "fs: the path param is required" >&2; exit 1; fi
      json_esc() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g'; }
      if [ -f "$p" ]; then
        hash=$(sha256sum < "$p" | cut -d ' ' -f 1)
        size=$(wc -c < "$p" | tr -d ' ')
        modified=$(date -u -r "$p" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || true)
        if [ "$hash" = "$version_hash" ]; then echo "[]"; exit 0; fi
        echo "[{\"path\":\"$(json_esc "$p")\",\"hash\":\"$hash\",\"modified\":\"$modified\",\"size\":$size}]"
      elif [ -d "$p" ]; then
        hash=$(cd "$p" && find . \( -type f -o -type l \) -exec sha256sum {} + | LC_ALL=C sort -k 2 | sha256sum | cut -d ' ' -f 1)
        if [ "$hash" = "$version_hash" ]; then echo "[]"; exit 0; fi
        echo "[{\"path\":\"$(json_esc "$p")\",\"hash\":\"$hash\"}]"
      else
        echo "[]"
      fi
    EOT
    ]
  }

  pull "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      p="$param_path"
      if [ -z "$p" ]; then echo "fs: the path param is required" >&2; exit 1; fi
      if [ ! -e "$p" ]; then echo "fs: $p does not exist" >&2; exit 1; fi
      base=$(basename "$p")
      case "$base" in /|.|..) base=fs ;; esac
      if [ "$p" -ef "$WORKDIR/$base" ]; then echo "$p is already in place"; exit 0; fi
      rm -rf "$${WORKDIR:?}/$base"
      cp -pR "$p" "$WORKDIR/$base"
      echo "copied $p to $base"
    EOT
    ]
  }

  push "exec" {}
}
