job "a" { serial_groups = ["INVALID NAME"] }
