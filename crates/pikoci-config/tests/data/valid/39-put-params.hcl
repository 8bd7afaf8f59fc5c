resource "git" "r" {
  params { url = "https://x/r.git" }
}
job "a" {
  put "git" "r" { name = "r" }
  put "git" "r" {
    attempts = 2
    params { name = "r" }
  }
}
