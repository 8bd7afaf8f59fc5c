resource "git" "r" {
  params {
    url  = "https://x/y.git"
    name = "y"
  }
}
resource "artifact" "o" {
  params { dir = "o" }
}
resource "trigger" "t" {}
resource "fs" "f" {
  params { path = "/tmp/x" }
}
