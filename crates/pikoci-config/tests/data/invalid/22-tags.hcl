job "a" { tags = ["t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9", "t10", "t11"] }
job "b" { tags = ["gpu", "gpu"] }
job "c" { tags = ["GPU"] }
