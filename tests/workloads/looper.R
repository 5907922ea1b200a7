# looper.R N DELAY OUTFILE [MODE=append]: the Gizmo seed's looper in R
# (tests/e2e/test_jobs.py).  Each of N iterations draws random numbers
# (seeded: the sequence continues only if R's memory does), solves a small
# linear system, and writes "<i> x=<running sum> s=<solution sum>" to stdout
# and to OUTFILE, then sleeps DELAY seconds; then "done".  MODE append opens,
# appends and closes OUTFILE in every iteration (as the seed's first
# looper.py); MODE open keeps one connection open the whole run (the
# seed's second looper.py).
args <- commandArgs(trailingOnly = TRUE)
n <- as.integer(args[1])
delay <- as.numeric(args[2])
outfile <- args[3]
mode <- if (length(args) >= 4) args[4] else "append"
set.seed(42)
x <- 0
con <- if (mode == "open") file(outfile, open = "a") else NULL
for (i in 1:n) {
  x <- x + sum(rnorm(1000))
  m <- matrix(runif(400), 20) + diag(20)
  s <- sum(solve(m, rep(1, 20)))
  line <- sprintf("%d x=%.6f s=%.6f", i, x, s)
  if (is.null(con)) {
    cat(line, "\n", sep = "", file = outfile, append = TRUE)
  } else {
    cat(line, "\n", sep = "", file = con)
    flush(con)
  }
  cat(line, "\n", sep = "")
  flush(stdout())
  Sys.sleep(delay)
}
if (!is.null(con)) close(con)
cat("done\n")
