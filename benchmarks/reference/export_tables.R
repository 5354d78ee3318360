# Export the public regression tables of benchmarks/bench_defaults.py to CSV.
# Needs R's MASS and mlbench (Debian: apt-get install r-cran-mass r-cran-mlbench).
#     Rscript benchmarks/reference/export_tables.R /tmp/moe_tables
# Every file has the target in its last column, named "target"; factors are
# one-hot coded (model.matrix, first level dropped); rows with NA dropped.
library(MASS)
library(mlbench)
out <- commandArgs(trailingOnly = TRUE)[1]
dir.create(out, showWarnings = FALSE, recursive = TRUE)
save <- function(name, frame, target) {
  frame <- na.omit(frame)
  X <- model.matrix(reformulate(setdiff(names(frame), target)), frame)[, -1, drop = FALSE]
  table <- data.frame(X, target = frame[[target]], check.names = TRUE)
  write.csv(table, file.path(out, paste0(name, ".csv")), row.names = FALSE)
}
save("Boston", MASS::Boston, "medv")
data(BostonHousing2)
save("BostonHousing2", BostonHousing2[, c("cmedv", "crim", "zn", "indus", "chas", "nox", "rm",
                                         "age", "dis", "rad", "tax", "ptratio", "b", "lstat",
                                         "lon", "lat")], "cmedv")
data(Ozone)
save("Ozone", transform(Ozone, V1 = as.numeric(V1), V2 = as.numeric(V2),
                        V3 = as.numeric(V3)), "V4")
data(Servo)
save("Servo", Servo, "Class")
save("cpus", transform(MASS::cpus[, c("syct", "mmin", "mmax", "cach", "chmin", "chmax",
                                      "perf")], perf = log10(perf)), "perf")
save("birthwt", transform(MASS::birthwt[, setdiff(names(MASS::birthwt), "low")],
                          race = factor(race)), "bwt")
save("UScrime", MASS::UScrime, "y")
save("mammals", log10(MASS::mammals), "brain")
save("hills", MASS::hills, "time")
save("rock", datasets::rock, "perm")
