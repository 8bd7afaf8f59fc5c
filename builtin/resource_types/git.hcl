# Builtin resource type "git": a branch (or the tags) of a git repository.
#
# Params:
#   url       repository URL (https://, ssh://, git@host:..., file://)
#   name      directory under $WORKDIR to clone into (default: the last part
#             of the URL without ".git")
#   branch    branch to follow (default: the remote's HEAD)
#   token     access token; for https URLs it is put into the URL as
#             https://oauth2:<token>@host/... for clone, fetch and push
#   pr        "true": versions are the open pull/merge requests {"ref","pr"}
#   tag       "true": versions are the tags {"ref","tag"}
#   provider  github, gitlab, gitea or forgejo (auto-detected for github.com,
#             gitlab.com and codeberg.org); only used by the provider API checks
#   api_url   the provider's API base URL, when it cannot be derived from url
#             (default: https://api.github.com, <host>/api/v3 for GitHub
#             Enterprise, <host>/api/v4 for GitLab, <host>/api/v1 for Gitea)
#
# Versions are {"ref":"<commit sha>"} (plus "pr" or "tag" in those modes).
#
# The checks that need a provider API (commits, pull requests and tags when a
# token is set) are made by the worker itself over HTTP, so the scripts below
# only need git (and sh, sed, awk). The check here is the plain-git path:
# `git ls-remote` of the branch, or of the tags in tag mode; pr mode has no
# plain-git equivalent and fails here.
#
# The scripts set GIT_TERMINAL_PROMPT=0: without it, git asks for a username
# and password on the terminal when a server wants credentials that the URL
# does not carry, and a step run from a terminal (pikoci run) hangs there.
#
# With caching on (the default) each pull first updates a bare mirror in
# $CACHE_DIR/repo and the clone copies its objects from there, so only what
# is new is downloaded. The clone does not depend on the cache afterwards.
#
# put attributes (all optional):
#   branch  push to this branch instead of the resource's branch
#   tag     also create this tag at HEAD and push it (in tag mode: only the tag)
#   force   "true" to force the push
resource_type "git" {
  params = ["url", "branch", "name", "token", "pr", "tag", "provider", "api_url"]
  cache  = true

  # Prints [{"ref":"<sha>"}] for the head of the branch, or in tag mode the
  # tags newer (in version order) than $version_tag, oldest first: only the
  # newest tag on the first check.
  check "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      # Never wait for a password: a step has no terminal to type it in.
      export GIT_TERMINAL_PROMPT=0
      is_true() { case "$1" in true|True|TRUE|yes|1) return 0 ;; *) return 1 ;; esac; }

      url="$param_url"
      if [ -z "$url" ]; then echo "git: the url param is required" >&2; exit 1; fi
      auth_url="$url"
      if [ -n "$param_token" ]; then
        case "$url" in
          https://*)
            rest="$${url#https://}"
            case "$${rest%%/*}" in
              *@*) ;;
              *) auth_url="https://oauth2:$param_token@$rest" ;;
            esac
            ;;
        esac
      fi

      if is_true "$param_pr"; then
        echo "git: pr mode lists open pull requests through the provider API, which the worker" >&2
        echo "does itself when the token param is set (and provider, for a self-hosted server)" >&2
        exit 1
      fi

      if is_true "$param_tag"; then
        # "<sha> <tag>" per tag in version order, annotated tags peeled to their commit.
        refs=$(git ls-remote --tags --sort=version:refname "$auth_url")
        list=$(printf '%s\n' "$refs" | awk '
          {
            ref = $2
            sub(/^refs\/tags\//, "", ref)
            if (ref ~ /\^\{\}$/) { sub(/\^\{\}$/, "", ref); peeled[ref] = $1; next }
            if (!(ref in sha)) order[n++] = ref
            sha[ref] = $1
          }
          END { for (i = 0; i < n; i++) { r = order[i]; print ((r in peeled) ? peeled[r] : sha[r]), r } }')
        if [ -z "$list" ]; then echo "[]"; exit 0; fi
        new=""
        if [ -n "$version_tag" ]; then
          new=$(printf '%s\n' "$list" | awk -v t="$version_tag" 'found { print } $2 == t { found = 1 }')
          if ! printf '%s\n' "$list" | awk -v t="$version_tag" '$2 == t { f = 1 } END { exit !f }'; then
            new=$(printf '%s\n' "$list" | tail -n 1)
          fi
        else
          new=$(printf '%s\n' "$list" | tail -n 1)
        fi
        printf '%s\n' "$new" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | awk '
          BEGIN { printf "[" }
          NF { printf "%s{\"ref\":\"%s\",\"tag\":\"%s\"}", sep, $1, $2; sep = "," }
          END { print "]" }'
        exit 0
      fi

      case "$param_branch" in
        "") pattern=HEAD ;;
        refs/*) pattern="$param_branch" ;;
        *) pattern="refs/heads/$param_branch" ;;
      esac
      refs=$(git ls-remote "$auth_url" "$pattern")
      sha=$(printf '%s\n' "$refs" | awk -v p="$pattern" '$2 == p { print $1; exit }')
      if [ -z "$sha" ]; then
        echo "git: no ref found for $pattern in $url" >&2
        exit 1
      fi
      echo "[{\"ref\":\"$sha\"}]"
    EOT
    ]
  }

  # Clones into $WORKDIR/<name> and checks out $version_ref (the pull/merge
  # request head in pr mode). The token is not left in .git/config.
  pull "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      # Never wait for a password: a step has no terminal to type it in.
      export GIT_TERMINAL_PROMPT=0
      url="$param_url"
      if [ -z "$url" ]; then echo "git: the url param is required" >&2; exit 1; fi
      auth_url="$url"
      if [ -n "$param_token" ]; then
        case "$url" in
          https://*)
            rest="$${url#https://}"
            case "$${rest%%/*}" in
              *@*) ;;
              *) auth_url="https://oauth2:$param_token@$rest" ;;
            esac
            ;;
        esac
      fi
      name="$param_name"
      if [ -z "$name" ]; then
        name=$(basename "$${url%/}" .git)
      fi
      dest="$${WORKDIR:?}/$name"
      rm -rf "$dest"

      case "$param_branch" in
        refs/heads/*) branch="$${param_branch#refs/heads/}" ;;
        refs/*) branch="" ;;
        *) branch="$param_branch" ;;
      esac

      set -- -q
      if [ -n "$branch" ]; then set -- "$@" --branch "$branch"; fi
      if [ -n "$CACHE_DIR" ]; then
        mirror="$CACHE_DIR/repo"
        if [ ! -d "$mirror" ]; then git init -q --bare "$mirror" || true; fi
        if git -C "$mirror" fetch -q --prune --force "$auth_url" \
             '+refs/heads/*:refs/heads/*' '+refs/tags/*:refs/tags/*'; then
          # --dissociate: the clone must not depend on the cache, which is
          # not visible inside containers (docker runner).
          set -- "$@" --reference-if-able "$mirror" --dissociate
        else
          echo "git: could not update the cache in $mirror, cloning without it" >&2
        fi
      fi
      git clone "$@" "$auth_url" "$dest"
      cd "$dest"
      git remote set-url origin "$url"

      has() { git cat-file -e "$1^{commit}" 2>/dev/null; }
      if [ -n "$version_pr" ]; then
        if ! has "$version_ref"; then
          git fetch -q "$auth_url" "refs/pull/$version_pr/head" 2>/dev/null \
            || git fetch -q "$auth_url" "refs/merge-requests/$version_pr/head" 2>/dev/null \
            || true
        fi
        if [ -z "$version_ref" ]; then version_ref=$(git rev-parse FETCH_HEAD); fi
        if ! has "$version_ref"; then git fetch -q "$auth_url" "$version_ref"; fi
        git -c advice.detachedHead=false checkout -q "$version_ref"
      elif [ -n "$version_tag" ]; then
        target="$${version_ref:-refs/tags/$version_tag}"
        if ! has "$target"; then git fetch -q "$auth_url" "refs/tags/$version_tag:refs/tags/$version_tag"; fi
        git -c advice.detachedHead=false checkout -q "$target"
      elif [ -n "$version_ref" ]; then
        if ! has "$version_ref" && ! git fetch -q "$auth_url" "$version_ref"; then
          echo "git: commit $version_ref is no longer in $url (force-pushed away?)" >&2
          exit 1
        fi
        current=$(git symbolic-ref -q --short HEAD || true)
        if [ -n "$current" ]; then
          git checkout -q -B "$current" "$version_ref"
        else
          git -c advice.detachedHead=false checkout -q "$version_ref"
        fi
      fi
      echo "$name: $(git log -1 --format='%H %s')"
    EOT
    ]
  }

  # Pushes HEAD of $WORKDIR/<name> to the branch (and/or a tag) and emits the
  # pushed commit as a version of this resource.
  push "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      # Never wait for a password: a step has no terminal to type it in.
      export GIT_TERMINAL_PROMPT=0
      is_true() { case "$1" in true|True|TRUE|yes|1) return 0 ;; *) return 1 ;; esac; }
      json_esc() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g'; }

      url="$param_url"
      if [ -z "$url" ]; then echo "git: the url param is required" >&2; exit 1; fi
      auth_url="$url"
      if [ -n "$param_token" ]; then
        case "$url" in
          https://*)
            rest="$${url#https://}"
            case "$${rest%%/*}" in
              *@*) ;;
              *) auth_url="https://oauth2:$param_token@$rest" ;;
            esac
            ;;
        esac
      fi
      name="$param_name"
      if [ -z "$name" ]; then
        name=$(basename "$${url%/}" .git)
      fi
      if is_true "$param_pr"; then
        echo "git: cannot push to a pull request resource" >&2
        exit 1
      fi
      cd "$WORKDIR/$name"

      force=""
      if is_true "$put_force"; then force="--force"; fi
      sha=$(git rev-parse HEAD)

      if [ -n "$put_tag" ]; then
        git tag -f "$put_tag" HEAD >/dev/null
      fi
      if is_true "$param_tag"; then
        if [ -z "$put_tag" ]; then
          echo "git: this resource follows tags; set tag = \"<name>\" on the put step" >&2
          exit 1
        fi
        git push -q $force "$auth_url" "refs/tags/$put_tag"
        echo "[{\"ref\":\"$sha\",\"tag\":\"$(json_esc "$put_tag")\"}]"
        exit 0
      fi

      tracked="$${param_branch#refs/heads/}"
      if [ -z "$tracked" ]; then
        # The resource follows the remote's HEAD: find out which branch that is.
        tracked=$(git ls-remote --symref "$auth_url" HEAD \
          | awk '$1 == "ref:" { sub(/^refs\/heads\//, "", $2); print $2; exit }')
      fi
      branch="$${put_branch:-$tracked}"
      branch="$${branch#refs/heads/}"
      if [ -z "$branch" ]; then
        branch=$(git symbolic-ref -q --short HEAD || true)
      fi
      if [ -z "$branch" ]; then
        echo "git: cannot tell which branch to push to; set the branch param" >&2
        exit 1
      fi
      git push -q $force "$auth_url" "HEAD:refs/heads/$branch"
      if [ -n "$put_tag" ]; then
        git push -q $force "$auth_url" "refs/tags/$put_tag"
      fi
      if [ "$branch" = "$tracked" ]; then
        echo "[{\"ref\":\"$sha\"}]"
      else
        echo "[]"
      fi
    EOT
    ]
  }
}
