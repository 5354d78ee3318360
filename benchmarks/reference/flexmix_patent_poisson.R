# Poisson experts with a concomitant gate on R flexmix's bundled `patent`
# data (Wang, Cockburn & Puterman 1998): Patents ~ lgRD, K = 3, the gate a
# multinomial logit in RDS. The best of many EM starts (stepFlexmix).
# Usage: Rscript flexmix_patent_poisson.R [out.csv] [nrep]
# Writes the data (Company dropped) to out.csv for the Python side
# (tests/data/patent.csv) and prints, machine-readable:
#   LOGLIK,<best log-likelihood>
#   COEF,<component>,<name>,<estimate>     (experts: intercept, lgRD)
#   GATE,<name>,<estimate>                 (concomitant coefficients)
suppressPackageStartupMessages(library(flexmix))

args <- commandArgs(trailingOnly = TRUE)
out  <- if (length(args) >= 1) args[1] else "patent.csv"
nrep <- if (length(args) >= 2) as.integer(args[2]) else 200L
data("patent", package = "flexmix")
write.csv(patent[, c("Patents", "RDS", "lgRD")], out, row.names = FALSE)

set.seed(1)
ctrl <- list(iter.max = 1000, tolerance = 1e-8, minprior = 0)
fit <- stepFlexmix(Patents ~ lgRD, data = patent, k = 3, nrep = nrep,
                   model = FLXMRglm(family = "poisson"),
                   concomitant = FLXPmultinom(~ RDS), control = ctrl, verbose = FALSE)
show(fit)
cat(sprintf("LOGLIK,%.10f\n", as.numeric(logLik(fit))))
p <- parameters(fit)
for (j in seq_len(ncol(p))) for (i in seq_len(nrow(p)))
  cat(sprintf("COEF,%d,%s,%.10g\n", j, rownames(p)[i], p[i, j]))
g <- parameters(fit, which = "concomitant")
for (j in seq_len(ncol(g))) for (i in seq_len(nrow(g)))
  cat(sprintf("GATE,%d,%s,%.10g\n", j, rownames(g)[i], g[i, j]))
