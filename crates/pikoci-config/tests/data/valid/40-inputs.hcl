job "deploy" {
  input "version" {
    type        = "string"
    description = "Version to deploy"
    default     = "latest"
  }
  input "environment" {
    type    = "string"
    options = ["staging", "production"]
    default = "staging"
  }
  input "dry_run" {
    type    = "bool"
    default = "false"
  }
  input "regions" {
    type     = "string"
    options  = ["eu-west-1", "us-east-1"]
    multiple = true
  }
}
