variable "v" { type = string }
resource "git" "r" {
  params { url = var.v }
}
