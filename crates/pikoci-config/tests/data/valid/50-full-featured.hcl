# A pipeline using most of the language at once.
variable "repo_url" {
  type    = string
  default = "https://example.com/app.git"
}
variable "regions" {
  type    = string
  default = "eu,us"
}

resource_type "my-git" { source = "pikoci://git" }
resource_type "docker-git" {
  source = "pikoci://git"
  cache  = true
  runner "docker" { image = "alpine/git" }
}
resource_type "counter" {
  params = ["start"]
  check "exec" {
    path = "/bin/sh"
    args = ["-ec", "echo '[{\"n\":\"1\"}]'"]
  }
}
runner_type "bash" {
  run {
    path = "/bin/bash"
    args = ["-c", "$script"]
  }
}
runner_type "my-docker" { source = "pikoci://docker" }
secret_type "aws-ssm" {
  params = ["name", "region"]
  region = "us-east-1"
  get "exec" {
    path = "/bin/sh"
    args = ["-ec", "echo '{\"value\":\"x\"}'"]
  }
}
service_type "postgresql" { source = "pikoci://postgresql" }
service_type "cache" {
  params = ["size"]
  start "exec" { path = "true" }
  ready_check "exec" {
    path     = "true"
    interval = "2s"
    timeout  = "30s"
  }
  stop "exec" { path = "true" }
}
notification_type "slack" { source = "pikoci://slack" }

resource "my-git" "app" {
  params {
    url    = var.repo_url
    name   = "app"
    branch = "main"
  }
  check_interval = "*/5 * * * *"
  tags           = ["linux"]
}
resource "counter" "c" {
  params { start = 1 }
  cache = false
}
resource "trigger" "deploy" {}
notification "slack" "team" {
  params { webhook_url = "https://hooks.example.com/x" }
  message = "Build $BUILD_NUMBER of ${var.repo_url}"
  on      = ["failure", "success"]
  exclude = ["lint"]
}

job "lint" {
  get "my-git" "app" { trigger = true }
  task "lint" {
    run "bash" { script = "make lint" }
  }
}
job "test" {
  serial_groups = ["db"]
  tags          = ["linux", "big"]
  concurrency   = 2
  service "postgresql" { version = "16" }
  service "cache" { size = "${2 * 64}m" }
  in_parallel {
    limit     = 2
    fail_fast = true
    get "my-git" "app" {
      trigger = true
      passed  = ["lint"]
    }
    get "counter" "c" {}
    on_failure "exec" {
      path = "echo"
      args = ["group failed"]
    }
  }
  task "unit" {
    inputs   = ["app/"]
    outputs  = ["app/report.xml"]
    timeout  = "10m"
    attempts = 2
    run "shell" { cmd = "cd app && make test" }
    on_failure "exec" {
      path = "echo"
      args = ["unit failed"]
    }
    ensure "exec" { path = "true" }
  }
  on_success {
    put "trigger" "deploy" { build_sha = "$GET_APP_REF" }
    notify "slack" "team" { message = "tests passed" }
  }
  ensure "exec" { path = "true" }
  ensure "exec" { path = "false" }
  on_trigger {
    notify "slack" "team" { status = "queued" }
  }
}
job "deploy" {
  for_each      = { for r in split(",", var.regions) : r => upper(r) }
  interruptible = true
  disable_retry = true
  allow_failure = true
  timeout       = "1h"
  get "trigger" "deploy" { trigger = true }
  approve "deploy to production" {
    approvals = 2
    timeout   = "2d"
    notify "slack" "team" { message = "approve please" }
  }
  task "ship" {
    run "my-docker" {
      image = "alpine"
      cmd   = "echo ${each.value}"
      args  = ["-e", "REGION=${each.key}"]
    }
  }
  ensure {
    task "cleanup" {
      run "exec" { path = "true" }
    }
  }
}
