# vars: {"n": "3"}
variable "n" { type = number }
