job "a" {}

/* job "b" is switched off for now
job "b" {}
