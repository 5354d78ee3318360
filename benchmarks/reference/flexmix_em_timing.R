# Time a fixed number of flexmix EM iterations for a softmax-gated mixture of
# linear regressions (experts y ~ x1..x5, gate FLXPmultinom(~ x1..x5)).
# Usage: Rscript flexmix_em_timing.R data.csv [K=3] [iterations=10]
# data.csv has columns x1..x5, y (no index column).
# Prints one line: FLEXMIX_SECONDS <elapsed> LOGLIK <loglik> ITER <iterations>
suppressPackageStartupMessages(library(flexmix))

args  <- commandArgs(trailingOnly = TRUE)
csv   <- args[1]
K     <- if (length(args) >= 2) as.integer(args[2]) else 3L
niter <- if (length(args) >= 3) as.integer(args[3]) else 10L
dat   <- read.csv(csv)

# Fixed random hard initialisation (every component gets some rows).
set.seed(0)
cl <- sample.int(K, nrow(dat), replace = TRUE)

# tolerance = 0 => the convergence test never fires, so exactly niter EM
# iterations run; minprior = 0 => no component is ever dropped.
t0  <- proc.time()[["elapsed"]]
fit <- flexmix(y ~ ., data = dat, k = K, cluster = cl,
               concomitant = FLXPmultinom(~ x1 + x2 + x3 + x4 + x5),
               control = list(iter.max = niter, tolerance = 0, minprior = 0))
sec <- proc.time()[["elapsed"]] - t0

cat(sprintf("FLEXMIX_SECONDS %.3f LOGLIK %.6f ITER %d\n",
            sec, as.numeric(logLik(fit)), fit@iter))
