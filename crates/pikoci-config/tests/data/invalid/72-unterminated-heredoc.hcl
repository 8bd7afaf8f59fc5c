job "a" {
  task "t" {
    run "shell" {
      cmd = <<-EOT
        echo hi
        echo there
    }
  }
}
