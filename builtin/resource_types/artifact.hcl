# Builtin resource type "artifact": stores directories produced by builds as
# versioned tarballs, so later jobs (with `passed`) can get exactly what an
# earlier job built.
#
# Params:
#   dir       get: the directory under $WORKDIR to extract into
#             (default: $WORKDIR itself)
#   base_dir  the store, an absolute path on the worker; default $CACHE_DIR
#             (caching is on by default for this type). The cache is per
#             worker, so with several workers use a shared base_dir (an NFS
#             mount, ...) or run all jobs that use the resource on one worker.
#
# put attributes:
#   dir       the directory to store, relative to $WORKDIR (default: the
#             resource's dir param)
#
# Store layout:
#   <base_dir>/data/<sha256>.tar.gz          one tarball per stored content
#   <base_dir>/versions/<time>-<sha256>.json one file per put, holding the
#                                            version {"sha","timestamp"}
# Every put makes a new version (the timestamp differs), even when the
# content is the same. Needs sh, tar (with -z), and sha256sum.
resource_type "artifact" {
  params = ["dir", "base_dir"]
  cache  = true

  # The newest version on the first check, later every version stored after
  # the current one, oldest first.
  check "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      store="$${param_base_dir:-$CACHE_DIR}"
      if [ -z "$store" ]; then
        echo "artifact: set the base_dir param (or enable caching)" >&2
        exit 1
      fi
      if [ ! -d "$store/versions" ]; then echo "[]"; exit 0; fi
      files=$(cd "$store/versions" && for f in *.json; do
        if [ -f "$f" ]; then printf '%s\n' "$f"; fi
      done | LC_ALL=C sort)
      if [ -z "$files" ]; then echo "[]"; exit 0; fi
      new=""
      if [ -n "$version_sha" ]; then
        current="$(printf '%s' "$version_timestamp" | tr -d ':-')-$version_sha.json"
        new=$(printf '%s\n' "$files" | LC_ALL=C awk -v c="$current" '$0 > c')
        if ! printf '%s\n' "$files" | grep -qxF "$current"; then
          # The current version is gone from the store: offer the newest.
          new=$(printf '%s\n' "$files" | tail -n 1)
        fi
      else
        new=$(printf '%s\n' "$files" | tail -n 1)
      fi
      out=""
      for f in $new; do
        out="$out$${out:+,}$(cat "$store/versions/$f")"
      done
      echo "[$out]"
    EOT
    ]
  }

  # Extracts data/<version_sha>.tar.gz into $WORKDIR/<dir>.
  pull "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      store="$${param_base_dir:-$CACHE_DIR}"
      if [ -z "$store" ]; then
        echo "artifact: set the base_dir param (or enable caching)" >&2
        exit 1
      fi
      archive="$store/data/$version_sha.tar.gz"
      if [ ! -f "$archive" ]; then
        echo "artifact: $archive not found (stored on another worker? use a shared base_dir)" >&2
        exit 1
      fi
      dest="$WORKDIR/$${param_dir:-.}"
      mkdir -p "$dest"
      tar -xzf "$archive" -C "$dest"
      echo "extracted $version_sha into $${param_dir:-.}"
    EOT
    ]
  }

  # Packs $WORKDIR/<dir> into the store and emits the new version.
  push "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      store="$${param_base_dir:-$CACHE_DIR}"
      if [ -z "$store" ]; then
        echo "artifact: set the base_dir param (or enable caching)" >&2
        exit 1
      fi
      src="$${put_dir:-$param_dir}"
      if [ -z "$src" ]; then
        echo "artifact: set dir on the put step (the directory to store)" >&2
        exit 1
      fi
      if [ ! -d "$WORKDIR/$src" ]; then
        echo "artifact: $src is not a directory under the build's workdir" >&2
        exit 1
      fi
      mkdir -p "$store/data" "$store/versions"
      tmp="$store/data/.tmp-$$-$(date +%s)"
      trap 'rm -f "$tmp" "$tmp.json"' EXIT
      tar -czf "$tmp" -C "$WORKDIR/$src" .
      sha=$(sha256sum "$tmp" | cut -d ' ' -f 1)
      if [ -f "$store/data/$sha.tar.gz" ]; then
        rm -f "$tmp"
      else
        mv "$tmp" "$store/data/$sha.tar.gz"
      fi
      ts=$(date -u +%Y-%m-%dT%H:%M:%SZ)
      version="{\"sha\":\"$sha\",\"timestamp\":\"$ts\"}"
      printf '%s\n' "$version" > "$tmp.json"
      mv "$tmp.json" "$store/versions/$(printf '%s' "$ts" | tr -d ':-')-$sha.json"
      echo "stored $src as $sha"
      echo "[$version]"
    EOT
    ]
  }
}
