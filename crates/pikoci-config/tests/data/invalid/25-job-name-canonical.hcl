job "Build" {}
