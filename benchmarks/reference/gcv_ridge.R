# Reference for alpha="auto": the ridge penalty that generalised
# cross-validation chooses, by MASS::lm.ridge, for one Gaussian expert.
#
# lm.ridge centres X and y, scales each column of X by its population
# standard deviation (divisor n), and for every lambda on the grid reports
# GCV = RSS / (n - sum_j d_j^2 / (d_j^2 + lambda))^2, d the singular values
# of the scaled X: the criterion and the grid (10^seq(-4, 4, by = 0.25))
# that mixexp's alpha="auto" uses for each expert, with the penalty per
# weight of the standardised features. One expert (n_experts=1) must choose
# the same lambda and give the same coefficients.
#
#     Rscript benchmarks/reference/gcv_ridge.R tests/data/longley.csv
#     Rscript benchmarks/reference/gcv_ridge.R tests/data/stackloss.csv
#
# (a CSV with a header, the target last; longley.csv is R's datasets::longley,
# written by: write.csv(longley, "tests/data/longley.csv", row.names = FALSE))
suppressPackageStartupMessages(library(MASS))
path <- commandArgs(trailingOnly = TRUE)[1]
data <- read.csv(path)
target <- names(data)[ncol(data)]
grid <- 10^seq(-4, 4, by = 0.25)
fit <- lm.ridge(as.formula(paste(target, "~ .")), data = data, lambda = grid)
best <- which.min(fit$GCV)
options(digits = 15)
cat("table:", path, " rows:", nrow(data), " features:", ncol(data) - 1, "\n")
cat("lambda chosen by GCV:", grid[best], " (grid index", best - 1, "from 0)\n")
cat("GCV at the chosen lambda:", fit$GCV[best], "\n")
cat("coefficients on the user's scale (intercept first):\n")
print(unname(coef(fit)[best, ]))
