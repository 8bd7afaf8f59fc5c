job "a" {
  get "git" "repo" { trigger = true }
}
