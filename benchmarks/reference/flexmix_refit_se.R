# Wald standard errors from R flexmix's refit() on the motorcycle data:
# K = 2 linear-regression experts (accel ~ times) behind a multinomial-logit
# gate (FLXPmultinom(~ times)), best of several random starts.
# refit() maximises the log-likelihood again from the EM solution (optim,
# BFGS) and inverts the Hessian that optim returns (numerical).
# Usage: Rscript flexmix_refit_se.R path/to/mcycle.csv [nrep]
# Prints the summary, then machine-readable lines for
# benchmarks/bench_inference.py --flexmix:
#   LOGLIK,<best EM log-likelihood>
#   COEF,<name>,<estimate>            (refit's parameter vector)
#   VCOV,<i>,<j>,<value>              (refit's covariance, 1-based)
suppressPackageStartupMessages(library(flexmix))

args <- commandArgs(trailingOnly = TRUE)
csv  <- if (length(args) >= 1) args[1] else "mcycle.csv"
nrep <- if (length(args) >= 2) as.integer(args[2]) else 20L
mc   <- read.csv(csv)                      # columns: times, accel
ctrl <- list(iter.max = 1000, tolerance = 1e-10, minprior = 0)

set.seed(1)
fits <- lapply(seq_len(nrep), function(i) tryCatch(
  flexmix(accel ~ times, data = mc, k = 2, concomitant = FLXPmultinom(~ times),
          control = ctrl),
  error = function(e) NULL))
fits <- Filter(function(f) !is.null(f) && f@k == 2, fits)
best <- fits[[which.max(vapply(fits, function(f) as.numeric(logLik(f)), 0))]]

ref <- refit(best)                          # method = "optim"
show(summary(ref))
cat(sprintf("LOGLIK,%.10f\n", as.numeric(logLik(best))))
theta <- ref@coef                           # experts: coef.*, log(sigma); gate: concomitant_*
for (i in seq_along(theta)) cat(sprintf("COEF,%s,%.12g\n", names(theta)[i], theta[i]))
V <- ref@vcov
for (i in seq_len(nrow(V))) for (j in seq_len(ncol(V)))
  cat(sprintf("VCOV,%d,%d,%.12g\n", i, j, V[i, j]))
