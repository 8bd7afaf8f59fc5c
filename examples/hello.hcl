# A small pipeline: a cron resource triggers a build that tests and reports.
# Check it with:  cargo run -p pikoci -- validate examples/hello.hcl

variable "greeting" {
  type    = string
  default = "hello"
}

resource "cron" "every-hour" {
  check_interval = "@hourly"
}

job "test" {
  get "cron" "every-hour" { trigger = true }

  task "greet" {
    run "shell" {
      cmd = "echo '${var.greeting}' from build $BUILD_NUMBER; echo GREETED=yes > $PIKOCI_OUTPUT"
    }
  }

  if "greeted" {
    condition = "$TASK_GREET_GREETED == 'yes'"
    task "celebrate" {
      run "exec" {
        path = "echo"
        args = ["all good"]
      }
    }
  }

  ensure "shell" {
    cmd = "echo build finished: $BUILD_STATUS"
  }
}

job "matrix" {
  matrix {
    os   = ["linux", "darwin"]
    arch = ["amd64", "arm64"]
  }
  get "cron" "every-hour" {
    trigger = true
    passed  = ["test"]
  }
  task "build" {
    run "exec" {
      path = "echo"
      args = ["building for ${each.value.os}/${each.value.arch}"]
    }
  }
}
