# in_parallel, exports between steps, an if chain and hooks, all runnable on a laptop:
#   cargo run -p pikoci -- run --pipeline-config examples/parallel.hcl --job release

job "release" {
  task "version" {
    run "shell" {
      cmd = "echo VERSION=1.4.2 > $PIKOCI_OUTPUT; echo CHANNEL=stable >> $PIKOCI_OUTPUT"
    }
  }

  in_parallel {
    limit = 2

    task "lint" {
      run "shell" {
        cmd = "echo linting $TASK_VERSION_VERSION"
      }
    }
    task "unit" {
      attempts = 2
      run "shell" {
        cmd = "echo testing $TASK_VERSION_VERSION; echo PASSED=42 > $PIKOCI_OUTPUT"
      }
    }
    task "docs" {
      run "shell" {
        cmd = "echo building docs"
      }
    }
  }

  if "stable" {
    condition = "$TASK_VERSION_CHANNEL == 'stable' && $TASK_UNIT_PASSED > '10'"
    task "publish" {
      run "shell" {
        cmd = "echo publishing $TASK_VERSION_VERSION"
      }
    }
  }
  else {
    task "skip" {
      run "shell" {
        cmd = "echo nothing to publish"
      }
    }
  }

  on_success "shell" {
    cmd = "echo released: $BUILD_STATUS"
  }
}

job "flaky" {
  allow_failure = true

  task "sometimes" {
    timeout  = "5s"
    attempts = 2
    run "shell" {
      cmd = "echo trying; exit 1"
    }
    on_failure "shell" {
      cmd = "echo the task failed twice"
    }
  }

  ensure "shell" {
    cmd = "echo finished with $BUILD_STATUS"
  }
}
