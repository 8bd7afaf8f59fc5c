# Builtin notification type "discord": posts a message to a Discord webhook.
#
# Params:
#   webhook_url  the channel webhook URL (keep it in a secret variable)
#   base_url     PikoCI's web address; when set, the default message links to
#                the build
#
# The content is the notification's (or notify step's) message. Without one
# it is "[<pipeline>/<job>] Build #<n>", followed by the status for automatic
# notifications and by the build's URL when base_url is set. Discord refuses
# messages longer than 2000 characters. Needs curl.
notification_type "discord" {
  params = ["webhook_url", "base_url"]

  notify "exec" {
    path = "/bin/sh"
    args = ["-ec", <<-EOT
      if [ -z "$param_webhook_url" ]; then
        echo "discord: the webhook_url param is required" >&2
        exit 1
      fi
      tab=$(printf '\t')
      # Escapes a string for a JSON string literal (without the quotes).
      json_str() {
        printf '%s' "$1" | tr -d '\000-\010\013-\037' \
          | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e "s/$tab/\\\\t/g" \
          | awk 'NR > 1 { printf "%s", "\\n" } { printf "%s", $0 }'
      }

      msg="$NOTIFY_MESSAGE"
      if [ -z "$msg" ]; then
        msg="[$BUILD_PIPELINE_NAME/$BUILD_JOB_NAME] Build #$BUILD_NUMBER"
        case "$notify_build_status" in
          "") ;;
          success) msg="$msg - :white_check_mark: success" ;;
          failure) msg="$msg - :x: failure" ;;
          cancel) msg="$msg - :no_entry_sign: cancelled" ;;
          *) msg="$msg - $notify_build_status" ;;
        esac
        if [ -n "$param_base_url" ]; then
          msg="$msg - $${param_base_url%/}/teams/$BUILD_TEAM_NAME/pipelines/$BUILD_PIPELINE_NAME/jobs/$BUILD_JOB_NAME/builds/$BUILD_NUMBER"
        fi
      fi

      body="{\"content\":\"$(json_str "$msg")\"}"
      resp="$${WORKDIR:-/tmp}/.discord-response-$$"
      trap 'rm -f "$resp"' EXIT
      code=$(printf '%s' "$body" | curl -sS -o "$resp" -w '%%{http_code}' -X POST \
        -H 'Content-Type: application/json' --data-binary @- "$param_webhook_url")
      case "$code" in
        2??) echo "discord: message sent" ;;
        *)
          echo "discord: the webhook answered HTTP $code:" >&2
          cat "$resp" >&2 || true
          echo >&2
          exit 1
          ;;
      esac
    EOT
    ]
  }
}
