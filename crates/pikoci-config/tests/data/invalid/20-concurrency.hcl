job "a" { concurrency = -1 }
