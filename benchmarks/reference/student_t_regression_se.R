# Maximum-likelihood Student-t linear regression (one expert, K = 1) and its
# Wald standard errors, in base R, on R's stackloss data (Brownlee 1965; 21
# rows with gross outliers): stack.loss ~ Air.Flow + Water.Temp + Acid.Conc.
# with t noise of unknown scale sigma and degrees of freedom nu.
# Debian packages no R package for t regression (r-cran-hett and
# r-cran-heavy are not in the archive), so the likelihood is written with
# stats::dt and maximised by nlminb over (beta, log sigma, log nu); the
# Hessian is optimHess's (finite differences of a finite-difference
# gradient, ndeps = 1e-5: the default 1e-3 is too coarse for the unscaled
# inputs and gives standard errors off by up to 4%). Standard errors of sigma
# and nu by the delta method from their logs.
# Usage: Rscript student_t_regression_se.R [path/to/write/stackloss.csv]
# Prints the fit, then machine-readable lines for tests/test_inference_student_t.py:
#   LOGLIK,<log-likelihood>
#   COEF,<name>,<estimate>,<standard error>
args <- commandArgs(trailingOnly = TRUE)
if (length(args) >= 1) write.csv(stackloss, args[1], row.names = FALSE)
X <- cbind(1, as.matrix(stackloss[, c("Air.Flow", "Water.Temp", "Acid.Conc.")]))
y <- stackloss$stack.loss

negloglik <- function(theta) {
  beta <- theta[1:4]; sigma <- exp(theta[5]); nu <- exp(theta[6])
  -sum(dt((y - X %*% beta) / sigma, df = nu, log = TRUE) - log(sigma))
}
start <- c(coef(lm(y ~ X - 1)), log(3), log(5))
fit <- nlminb(start, negloglik,
              control = list(eval.max = 1e4, iter.max = 1e4, rel.tol = 1e-15, x.tol = 1e-12))
theta <- fit$par
H <- optimHess(theta, negloglik, control = list(ndeps = rep(1e-5, 6)))
est <- c(theta[1:4], exp(theta[5:6]))
se <- sqrt(diag(solve(H))) * c(1, 1, 1, 1, exp(theta[5:6]))   # delta method
names(est) <- c("intercept", "Air.Flow", "Water.Temp", "Acid.Conc.", "sigma", "dof")
print(cbind(estimate = est, std_err = se), digits = 8)
# (at rel.tol = 1e-15 nlminb may call its stop "singular convergence"; its optimum
# agrees with mixexp's to 1e-10 in the log-likelihood)
cat(sprintf("nlminb: %s\n", fit$message))
cat(sprintf("LOGLIK,%.10f\n", -fit$objective))
for (i in seq_along(est)) cat(sprintf("COEF,%s,%.12g,%.12g\n", names(est)[i], est[i], se[i]))
