job "a" {
  task "detect-env" {
    run "exec" {
      path = "/bin/sh"
      args = ["-ec", "printf 'ENV=staging\\n' > $PIKOCI_OUTPUT"]
    }
  }
  if "check-prod" {
    condition = "$A=='x' && ($B contains 'y' || $C > '3')"
    task "deploy-prod" {
      run "exec" {
        path = "echo"
        args = ["prod"]
      }
    }
  }
  else_if "check-staging" {
    condition = "$TASK_DETECT_ENV_ENV == 'staging'"
    task "deploy-staging" {
      run "exec" {
        path = "echo"
        args = ["staging"]
      }
    }
  }
  else {
    task "skip" {
      run "exec" {
        path = "echo"
        args = ["unknown env"]
      }
    }
  }
  if "second-chain" {
    condition = "$BUILD_NUMBER > '1'"
    task "x" {
      run "shell" { cmd = "true" }
    }
  }
}
