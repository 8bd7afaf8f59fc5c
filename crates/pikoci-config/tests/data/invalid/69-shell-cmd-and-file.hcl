resource_type "deploy" {
  check "shell" {
    cmd  = "echo '[]'"
    file = "check.sh"
  }
}
job "a" {
  task "both" {
    run "shell" {
      cmd  = "make"
      file = "build.sh"
    }
  }
  task "neither" {
    run "shell" {
      shell = "/bin/bash"
    }
  }
  task "one" {
    run "shell" {
      file = "build.sh"
    }
  }
  on_failure "shell" {
    shell = "/bin/bash"
  }
}
resource_type "scripted" {
  runner "shell" {
    file = "wrapper.sh"
  }
  check "exec" {
    path = "./check"
  }
}
