# Install the R packages listed in a file (name, name==version or name>=version per line)
# from a CRAN-like repository, in parallel; fail naming every package that did not install.
args <- commandArgs(trailingOnly = TRUE)
entries <- readLines(args[[1]])
repos <- if (file.exists(args[[2]])) readLines(args[[2]])[[1]] else getOption("repos")[["CRAN"]]
if (is.null(repos) || repos == "@CRAN@") repos <- "https://cloud.r-project.org"
destdir <- args[[3]]
dir.create(destdir, recursive = TRUE, showWarnings = FALSE)
options(repos = c(CRAN = repos), Ncpus = parallel::detectCores(), warn = 1)

parts <- regmatches(entries, regexec("^([A-Za-z][A-Za-z0-9.]*)(==|>=)?(.*)$", entries))
wanted <- data.frame(
  name = vapply(parts, `[`, "", 2),
  op = vapply(parts, `[`, "", 3),
  version = vapply(parts, `[`, "", 4),
  stringsAsFactors = FALSE
)
available <- available.packages()
missing <- setdiff(wanted$name, rownames(available))
if (length(missing) > 0) {
  message("pyrlab: not in the repository ", repos, ": ", paste(missing, collapse = ", "))
  quit(status = 1)
}
current <- available[wanted$name, "Version"]
archived <- wanted$op == "==" & current != wanted$version
too_old <- wanted$op == ">=" & package_version(current) < package_version(ifelse(wanted$op == ">=", wanted$version, "0"))
if (any(too_old)) {
  message("pyrlab: repository version too old for: ",
          paste0(wanted$name[too_old], ">=", wanted$version[too_old], collapse = ", "))
  quit(status = 1)
}
install.packages(wanted$name[!archived], destdir = destdir)
for (i in which(archived)) {
  url <- sprintf("%s/src/contrib/Archive/%s/%s_%s.tar.gz", repos, wanted$name[i], wanted$name[i], wanted$version[i])
  install.packages(url, repos = NULL, type = "source")
}
failed <- wanted$name[!vapply(wanted$name, requireNamespace, logical(1), quietly = TRUE)]
pinned <- wanted$op == "=="
wrong <- wanted$name[pinned][vapply(wanted$name[pinned], function(p) {
  !requireNamespace(p, quietly = TRUE) || as.character(packageVersion(p)) != wanted$version[wanted$name == p]
}, logical(1))]
failed <- union(failed, wrong)
if (length(failed) > 0) {
  message("pyrlab: R packages failed to install: ", paste(failed, collapse = ", "))
  quit(status = 1)
}
