resource "git" "up" {
  params {
    url  = "https://example.com/a.git"
    name = "../outside"
  }
}
resource "git" "root" {
  params {
    url  = "https://example.com/b.git"
    name = "/etc"
  }
}
resource "git" "fine" {
  params {
    url  = "https://example.com/c.git"
    name = "src/app"
  }
}
