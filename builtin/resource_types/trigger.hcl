# Builtin resource type "trigger": a team-wide event stream between jobs and
# pipelines, with no external system behind it.
#
# Everything is handled inside PikoCI, so the type has no commands and no
# params:
#   put    `put "trigger" "<name>" { key = "value" ... }` stores an event for
#          `trigger.<name>` in the team, with the put's attributes as payload
#          plus trigger_pipeline, trigger_job and trigger_build.
#   check  turns the events stored since the last seen one into versions
#          (the payload plus a numeric trigger_id), for every resource
#          "trigger" "<name>" of the team, on the resource's check_interval
#          or its webhook.
#   get    records the version (usable with `passed`) and exports
#          GET_<NAME>_<KEY> for each payload key; nothing is fetched.
resource_type "trigger" {}
