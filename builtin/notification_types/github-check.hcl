# Builtin notification type "github-check": reports a build as a GitHub check
# run on a commit, authenticating as a GitHub App.
#
# Params:
#   app_id           the GitHub App's id
#   installation_id  the id of the App's installation on the repository's owner
#   private_key      the App's private key (PEM text, or the path of a PEM file
#                    on the worker; keep it in a secret variable)
#   repository       "owner/repo"
#   base_url         PikoCI's web address, for the default details_url
#   api_url          GitHub API address (default https://api.github.com; for
#                    GitHub Enterprise Server: https://<host>/api/v3)
#
# notify step attributes:
#   status       queued or in_progress: creates the check run (its id is kept in
#                $WORKDIR/.github-check-<name>.id, so later notifies of the
#                same build update it)
#   conclusion   success, failure, neutral, cancelled, skipped, timed_out or
#                action_required: completes the check run (creating it when
#                this build has none yet)
#   head_sha     the commit (default: HEAD of the first git repository under
#                $WORKDIR, else $version_ref of an on_trigger notify)
#   name         the check's name (default "<pipeline>/<job>")
#   details_url  link shown on GitHub (default: the build's page under base_url)
# Automatic notifications (on = [...]) complete the check run with the build's
# result. Without status, conclusion or a build result it is set in_progress.
# The message, when there is one, becomes the check run's summary.
# Needs curl and openssl (jq is used when present).
notification_type "github-check" {
  params = ["app_id", "installation_id", "private_key", "repository", "base_url", "api_url"]

  notify "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      status="$notify_status"
      conclusion="$notify_conclusion"
      head_sha="$notify_head_sha"
      name="$notify_name"
      details_url="$notify_details_url"
      summary="$NOTIFY_MESSAGE"
      build_status="$notify_build_status"

      for p in app_id installation_id private_key repository; do
        eval "v=\$param_$p"
        if [ -z "$v" ]; then echo "github-check: the $p param is required" >&2; exit 1; fi
      done
      api="$${param_api_url:-https://api.github.com}"
      api="$${api%/}"
      repo="$${param_repository#https://github.com/}"
      repo="$${repo%.git}"

      tab=$(printf '\t')
      json_str() {
        printf '%s' "$1" | tr -d '\000-\010\013-\037' \
          | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e "s/$tab/\\\\t/g" \
          | awk 'NR > 1 { printf "%s", "\\n" } { printf "%s", $0 }'
      }
      # json_get KEY < file: the first value of KEY (a string or a number).
      json_get() {
        if command -v jq >/dev/null 2>&1; then
          jq -r --arg k "$1" '.[$k] // empty'
        else
          tr -d '\n' | awk -v k="$1" '{
            if (match($0, "\"" k "\"[ \t]*:[ \t]*(\"[^\"]*\"|[0-9]+)")) {
              s = substr($0, RSTART, RLENGTH); sub(/^[^:]*:[ \t]*/, "", s); gsub(/"/, "", s); print s
            }
          }'
        fi
      }
      b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

      tmp="$${WORKDIR:-/tmp}/.github-check-tmp-$$"
      trap 'rm -f "$tmp".*' EXIT
      umask 077

      # GitHub App JWT (RS256), valid for 9 minutes.
      if [ -f "$param_private_key" ]; then
        cp "$param_private_key" "$tmp.key"
      else
        printf '%b\n' "$param_private_key" > "$tmp.key"
      fi
      now=$(date +%s)
      header=$(printf '{"alg":"RS256","typ":"JWT"}' | b64url)
      payload=$(printf '{"iat":%s,"exp":%s,"iss":"%s"}' "$((now - 60))" "$((now + 540))" "$param_app_id" | b64url)
      printf '%s.%s' "$header" "$payload" > "$tmp.in"
      openssl dgst -sha256 -binary -sign "$tmp.key" -out "$tmp.sig" "$tmp.in"
      jwt="$header.$payload.$(b64url < "$tmp.sig")"

      # call METHOD PATH AUTHORIZATION BODY: the answer goes to $tmp.resp.
      call() {
        code=$(printf '%s' "$4" | curl -sS -o "$tmp.resp" -w '%%{http_code}' -X "$1" \
          -H "Authorization: $3" \
          -H 'Accept: application/vnd.github+json' \
          -H 'X-GitHub-Api-Version: 2022-11-28' \
          -H 'Content-Type: application/json' \
          --data-binary @- "$api$2")
        case "$code" in
          2??) ;;
          *)
            echo "github-check: $1 $2 answered HTTP $code:" >&2
            cat "$tmp.resp" >&2 || true
            echo >&2
            exit 1
            ;;
        esac
      }

      call POST "/app/installations/$param_installation_id/access_tokens" "Bearer $jwt" "{}"
      token=$(json_get token < "$tmp.resp")
      if [ -z "$token" ]; then echo "github-check: no installation token in GitHub's answer" >&2; exit 1; fi

      if [ -z "$status$conclusion" ]; then
        case "$build_status" in
          "") status=in_progress ;;
          *) conclusion="$build_status" ;;
        esac
      fi
      case "$conclusion" in
        succeeded) conclusion=success ;;
        failed|error|errored) conclusion=failure ;;
        cancel|canceled) conclusion=cancelled ;;
        warning) conclusion=neutral ;;
      esac
      if [ -n "$conclusion" ]; then status=completed; fi

      if [ -z "$name" ]; then name="$BUILD_PIPELINE_NAME/$BUILD_JOB_NAME"; fi
      if [ -z "$head_sha" ]; then
        for d in "$WORKDIR"/*/; do
          if [ -e "$d.git" ]; then
            head_sha=$(git -C "$d" rev-parse HEAD 2>/dev/null || true)
            if [ -n "$head_sha" ]; then break; fi
          fi
        done
      fi
      if [ -z "$head_sha" ]; then head_sha="$version_ref"; fi
      if [ -z "$head_sha" ]; then
        echo "github-check: no commit to report on; set head_sha" >&2
        exit 1
      fi
      if [ -z "$details_url" ] && [ -n "$param_base_url" ]; then
        details_url="$${param_base_url%/}/teams/$BUILD_TEAM_NAME/pipelines/$BUILD_PIPELINE_NAME/jobs/$BUILD_JOB_NAME/builds/$BUILD_NUMBER"
      fi

      body="\"status\":\"$(json_str "$status")\""
      if [ -n "$conclusion" ]; then
        body="$body,\"conclusion\":\"$(json_str "$conclusion")\",\"completed_at\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\""
      fi
      if [ -n "$details_url" ]; then
        body="$body,\"details_url\":\"$(json_str "$details_url")\""
      fi
      if [ -n "$summary" ]; then
        body="$body,\"output\":{\"title\":\"$(json_str "$name")\",\"summary\":\"$(json_str "$summary")\"}"
      fi

      idfile="$WORKDIR/.github-check-$(printf '%s' "$name" | tr -c 'A-Za-z0-9._-' '_').id"
      id=""
      if [ -f "$idfile" ]; then id=$(cat "$idfile"); fi
      if [ -n "$id" ]; then
        call PATCH "/repos/$repo/check-runs/$id" "token $token" "{$body}"
        echo "github-check: check run $id of $head_sha is now $status $conclusion"
      else
        call POST "/repos/$repo/check-runs" "token $token" \
          "{\"name\":\"$(json_str "$name")\",\"head_sha\":\"$(json_str "$head_sha")\",$body}"
        id=$(json_get id < "$tmp.resp")
        if [ -n "$id" ] && [ -n "$WORKDIR" ]; then printf '%s\n' "$id" > "$idfile"; fi
        echo "github-check: created check run $id on $head_sha ($status $conclusion)"
      fi
    EOT
    ]
  }
}
