# Reference fits from R flexmix: softmax-gated (FLXPmultinom) mixture of
# linear regressions on the motorcycle data, k = 2 and 3, many random starts.
# Usage: Rscript flexmix_motorcycle.R path/to/mcycle.csv [nrep]
# Also refits with times + 2000 (calendar-year-like scale) to check stalling.
# Independent check: the best flexmix fit is then polished by maximising the
# exact log-likelihood directly (nlminb + BFGS on centred x), because flexmix's
# gate M-step (nnet, maxit 100, restarted from zero) stops short of the MLE.
suppressPackageStartupMessages(library(flexmix))

args <- commandArgs(trailingOnly = TRUE)
csv  <- if (length(args) >= 1) args[1] else "../shared/data/mcycle.csv"
nrep <- if (length(args) >= 2) as.integer(args[2]) else 50L
mc   <- read.csv(csv)                      # columns: times, accel
ctrl <- list(iter.max = 1000, tolerance = 1e-10, minprior = 0)

# One flexmix fit from a random start (flexmix draws a random cluster
# assignment internally); errors are caught and returned as NULL.
fit_once <- function(dat, k) tryCatch(
  flexmix(accel ~ x, data = dat, k = k,
          concomitant = FLXPmultinom(~ x), control = ctrl),
  error = function(e) { message("  start failed: ", conditionMessage(e)); NULL })

# Negative log-likelihood; th = (b0[k], b1[k], log sigma[k], g0[-1], g1[-1]),
# gate logits relative to component 1 (as flexmix's concomitant coefficients).
lse <- function(a) { m <- apply(a, 1, max); m + log(rowSums(exp(a - m))) }
nll <- function(th, k, x, y) {
  i <- function(j) th[j * k + seq_len(k)]
  g <- cbind(0, outer(rep(1, length(x)), th[3 * k + 1:(k - 1)]) +
                outer(x, th[4 * k - 1 + 1:(k - 1)]))
  d <- sapply(1:k, function(j) dnorm(y, i(0)[j] + i(1)[j] * x, exp(i(2)[j]), log = TRUE))
  -sum(lse(g - lse(g) + d))
}
polish <- function(fit, dat, k) {
  p <- parameters(fit); g <- parameters(fit, which = "concomitant")
  m <- mean(dat$x); xc <- dat$x - m                 # centre x for conditioning
  th <- c(p[1, ] + m * p[2, ], p[2, ], log(p[3, ]), g[1, -1] + m * g[2, -1], g[2, -1])
  for (r in 1:3) {
    th <- nlminb(th, nll, k = k, x = xc, y = dat$accel,
                 control = list(iter.max = 1e4, eval.max = 2e4, rel.tol = 1e-15))$par
    th <- optim(th, nll, k = k, x = xc, y = dat$accel, method = "BFGS",
                control = list(maxit = 1e4, reltol = 1e-16))$par
  }
  b1 <- th[k + 1:k]; g1 <- th[4 * k - 1 + 1:(k - 1)]  # back to uncentred x
  cat(sprintf("polished (direct MLE) logLik = %.6f\n", -nll(th, k, xc, dat$accel)))
  print(rbind(intercept = th[1:k] - m * b1, slope = b1, sigma = exp(th[2 * k + 1:k]),
              gate_intercept = c(0, th[3 * k + 1:(k - 1)] - m * g1),
              gate_slope = c(0, g1)), digits = 10)
}

report <- function(dat, k, label) {
  set.seed(1)
  fits <- lapply(seq_len(nrep), function(i) fit_once(dat, k))
  ok   <- !vapply(fits, is.null, TRUE)
  ll   <- vapply(fits[ok], function(f) as.numeric(logLik(f)), 0)
  kk   <- vapply(fits[ok], function(f) f@k, 0)        # components kept
  it   <- vapply(fits[ok], function(f) f@iter, 0)     # EM iterations used
  conv <- vapply(fits[ok], function(f) f@converged, TRUE)
  best <- fits[ok][[which.max(ll)]]
  cat(sprintf("\n===== %s, k = %d (%d/%d starts ok) =====\n",
              label, k, sum(ok), nrep))
  cat(sprintf("best logLik = %.6f  (df = %d, iter = %d, converged = %s)\n",
              max(ll), attr(logLik(best), "df"), best@iter, best@converged))
  cat(sprintf("starts within 0.01 of best: %d\n", sum(ll >= max(ll) - 0.01)))
  cat(sprintf("starts that kept all %d components: %d; not converged: %d; ",
              k, sum(kk == k), sum(!conv)))
  cat(sprintf("EM iterations median %g, max %g\n", median(it), max(it)))
  cat("expert parameters (coef.(Intercept), coef.x = slope, sigma):\n")
  print(parameters(best), digits = 10)
  cat("concomitant multinomial coefficients (Comp.1 is the reference):\n")
  print(parameters(best, which = "concomitant"), digits = 10)
  cat("prior (mean gate probability) per component:\n")
  print(prior(best), digits = 6)
  cat("logLik distribution over starts (rounded to 0.1: value count):\n")
  tab <- table(round(ll, 1))
  print(data.frame(logLik = rev(names(tab)), count = rev(as.integer(tab))),
        row.names = FALSE)
  polish(best, dat, k)
}

for (k in 2:3) report(data.frame(x = mc$times, accel = mc$accel), k,
                      "x = times")
for (k in 2:3) report(data.frame(x = mc$times + 2000, accel = mc$accel), k,
                      "x = times + 2000")
