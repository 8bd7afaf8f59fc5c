job "a" {
  if "quote" {
    condition = "$A == 'x"
  }
  if "negation" {
    condition = "!$FLAG"
  }
  if "open" {
    condition = "($A == 'x'"
  }
  if "close" {
    condition = "$A == 'x')"
  }
  else_if "no-condition" {}
}
job "b" {
  else "orphan" {}
}
