job "a" {
  timeout = 
}

job "b" {
  tags = ["x",
}

job "c" {
  task "t" { run "exec" { path = "x" } }
}

job "ok" {}

job "d" {
  task "t" {

job "e" {}
