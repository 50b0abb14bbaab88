# pyrlab's R installer (build time only):
#   Rscript --vanilla r-install.R LISTS_DIR CACHE_DIR [PINS_DIR]
#
# 1. Points R at the configured CRAN-like repository for everyone (R_HOME/etc/Rprofile.site;
#    LISTS_DIR/site-repos.txt, which has no credentials) and makes the lab user's library.
# 2. Installs LISTS_DIR/cran.txt (one `name`, `name==1.2.3` or `name>=1.2` per line) from it:
#    what is already installed at a wanted version is skipped; a package built here before
#    (same name, version and source tarball, same R and Debian release) is unpacked from
#    CACHE_DIR/built instead of compiled again; everything else is installed from source,
#    Ncpus packages at a time, with its source tarball kept in CACHE_DIR/src.
#    With PINS_DIR/cran.txt (`build --locked`: `name==1.2.3` lines from pyrlab.lock), every
#    listed package is wanted at its locked version, and so is every locked package the
#    image lacks (the listed ones' dependencies); a version the repository no longer has
#    (current or in its Archive) fails before anything is installed.
# 3. Fails naming every package that could not be installed, with the end of R's output.
# The list lines were validated on the host; nothing here goes through a shell unquoted.

main <- function(args) {
  lists <- args[[1L]]
  cache <- args[[2L]]
  # A repository URL with credentials comes as a build secret (lists/repos.txt has it masked).
  secret <- "/run/pyrlab/secret/repos.txt"
  repos <- read_repos(if (file.exists(secret)) secret else file.path(lists, "repos.txt"))
  configure_site(read_repos(file.path(lists, "site-repos.txt")))
  options(repos = c(CRAN = repos), Ncpus = parallel::detectCores(), warn = 1L,
          HTTPUserAgent = user_agent())
  wanted <- read_wanted(file.path(lists, "cran.txt"))
  if (length(args) >= 3L) wanted <- with_locked(wanted, read_wanted(file.path(args[[3L]], "cran.txt")))
  if (nrow(wanted) == 0L) return(invisible())
  install_wanted(wanted, repos, cache)
}

say <- function(...) message("pyrlab: ", ...)

fail <- function(...) {
  message("pyrlab: error: ", ...)
  quit(save = "no", status = 1L)
}

read_repos <- function(file) {
  lines <- if (file.exists(file)) trimws(readLines(file, warn = FALSE)) else character()
  lines <- lines[nzchar(lines)]
  sub("/+$", "", if (length(lines)) lines[[1L]] else "https://cloud.r-project.org")
}

# Posit Package Manager serves Linux binaries only to clients that say which R they are.
user_agent <- function() {
  sprintf("R/%s R (%s)", getRversion(),
          paste(getRversion(), R.version[["platform"]], R.version[["arch"]], R.version[["os"]]))
}

# The repository (and the user agent binary repositories need) for every R session in the
# image, in a marked block of Rprofile.site that a rebuild replaces.
configure_site <- function(repos) {
  file <- Sys.getenv("PYRLAB_R_SITE_PROFILE", file.path(R.home("etc"), "Rprofile.site"))
  old <- if (file.exists(file)) readLines(file, warn = FALSE) else character()
  begin <- grep("^# >>> pyrlab", old)
  end <- grep("^# <<< pyrlab", old)
  if (length(begin) && length(end) && end[[1L]] >= begin[[1L]]) {
    old <- old[-seq(begin[[1L]], end[[1L]])]
  }
  block <- c(
    "# >>> pyrlab: written at build time from pyrlab.toml ([proxy] cran); do not edit",
    sprintf("options(repos = c(CRAN = %s))", deparse(repos)),
    if (grepl("/__linux__/", repos, fixed = TRUE)) c(
      "options(HTTPUserAgent = sprintf(\"R/%s R (%s)\", getRversion(), paste(getRversion(),",
      "  R.version[[\"platform\"]], R.version[[\"arch\"]], R.version[[\"os\"]])))"
    ),
    "# The lab's user library (R_LIBS_USER: per image, in the mounted home), made when missing",
    "# so that install.packages() uses it; R leaves a missing one out of .libPaths(). Not for",
    "# root (/proc/self is the process's own), who builds the image and writes its library.",
    "local({",
    "  lib <- path.expand(Sys.getenv(\"R_LIBS_USER\"))",
    "  if (nzchar(Sys.getenv(\"PYRLAB_IMAGE\")) && nzchar(lib) && !dir.exists(lib) &&",
    "      isTRUE(file.info(\"/proc/self\")$uid != 0L) &&",
    "      dir.create(lib, recursive = TRUE, showWarnings = FALSE)) .libPaths(c(lib, .libPaths()))",
    "})",
    "# <<< pyrlab"
  )
  writeLines(c(old, block), file)
}

read_wanted <- function(file) {
  lines <- if (file.exists(file)) trimws(readLines(file, warn = FALSE)) else character()
  lines <- lines[nzchar(lines)]
  parts <- regmatches(lines, regexec("^([A-Za-z][A-Za-z0-9.]*[A-Za-z0-9])(==|>=)?(.*)$", lines))
  bad <- lengths(parts) == 0L
  if (any(bad)) fail("unreadable line in cran.txt: ", paste(lines[bad], collapse = ", "))
  data.frame(name = vapply(parts, `[`, "", 2L), op = vapply(parts, `[`, "", 3L),
             version = vapply(parts, `[`, "", 4L), stringsAsFactors = FALSE)
}

# `build --locked`: the locked version for every listed package, and the locked packages this
# image does not hold at their locked version yet, at that version.
with_locked <- function(wanted, locked) {
  if (nrow(locked) == 0L) return(wanted)
  at <- match(wanted$name, locked$name)
  pinned <- !is.na(at)
  wanted$op[pinned] <- "=="
  wanted$version[pinned] <- locked$version[at[pinned]]
  extra <- locked[!locked$name %in% wanted$name, , drop = FALSE]
  have <- installed_versions(extra$name)
  rbind(wanted, extra[is.na(have) | have != extra$version, , drop = FALSE])
}

# The first installed version of each package, in .libPaths() order (NA: not installed).
installed_versions <- function(names) {
  ip <- installed.packages(fields = character(), noCache = TRUE)
  ip <- ip[!duplicated(ip[, "Package"]), , drop = FALSE]
  unname(ifelse(names %in% ip[, "Package"], ip[match(names, ip[, "Package"]), "Version"], NA))
}

satisfies <- function(version, op, wanted) {
  if (is.na(version)) return(FALSE)
  switch(op,
         "==" = package_version(version) == package_version(wanted),
         ">=" = package_version(version) >= package_version(wanted),
         TRUE)
}

read_index <- function(repos) {
  problem <- NULL
  db <- withCallingHandlers(
    tryCatch(available.packages(repos = repos), error = function(e) {
      problem <<- conditionMessage(e)
      NULL
    }),
    warning = function(w) {
      problem <<- conditionMessage(w)
      invokeRestart("muffleWarning")
    })
  if (is.null(db) || nrow(db) == 0L) {
    fail("cannot read the package index of the R repository ", repos,
         if (!is.null(problem)) paste0(": ", problem))
  }
  db
}

md5 <- function(file) unname(tools::md5sum(file))

md5_text <- function(text) {
  file <- tempfile()
  on.exit(unlink(file))
  writeLines(text, file)
  md5(file)
}

# The DESCRIPTION fields of a source tarball that decide what it needs.
tarball_fields <- function(tarball, name) {
  tmp <- tempfile("description")
  on.exit(unlink(tmp, recursive = TRUE))
  utils::untar(tarball, files = file.path(name, "DESCRIPTION"), exdir = tmp)
  read.dcf(file.path(tmp, name, "DESCRIPTION"),
           fields = c("Version", "Depends", "Imports", "LinkingTo"))[1L, ]
}

download_to <- function(url, dest) {
  tmp <- paste0(dest, ".part", Sys.getpid())
  ok <- tryCatch(download.file(url, tmp, mode = "wb", quiet = TRUE) == 0L,
                 error = function(e) FALSE, warning = function(w) FALSE)
  if (!ok || !file.exists(tmp) || file.size(tmp) == 0L) {
    unlink(tmp)
    return(FALSE)
  }
  file.rename(tmp, dest)
}

# Where packages built here are kept: only reused by the same R minor version on the same
# Debian release and platform.
built_dir <- function(cache) {
  os <- if (file.exists("/etc/os-release")) readLines("/etc/os-release", warn = FALSE) else ""
  field <- function(key) {
    line <- grep(paste0("^", key, "="), os, value = TRUE)
    if (length(line)) gsub("\"", "", sub("^[^=]*=", "", line[[1L]])) else "unknown"
  }
  release <- field("VERSION_CODENAME")
  if (release == "unknown") release <- field("VERSION_ID")
  minor <- paste(R.version[["major"]], sub("\\..*$", "", R.version[["minor"]]), sep = ".")
  file.path(cache, "built", paste0(field("ID"), "-", release),
            paste0("R-", minor, "-", R.version[["platform"]]))
}

# name_version_md5.tar.gz: the md5 of the source tarball, so that a different package that
# happens to have the same name and version (another repository) is never mistaken for it.
built_name <- function(name, version, source_md5) {
  suffix <- if (is.na(source_md5) || !nzchar(source_md5)) "" else
    paste0("_", substr(source_md5, 1L, 12L))
  paste0(name, "_", version, suffix, ".tar.gz")
}

install_wanted <- function(wanted, repos, cache) {
  lib <- .libPaths()[[1L]]
  src_dir <- file.path(cache, "src")
  built <- built_dir(cache)
  dir.create(src_dir, recursive = TRUE, showWarnings = FALSE)
  dir.create(built, recursive = TRUE, showWarnings = FALSE)

  have <- installed_versions(wanted$name)
  done <- mapply(satisfies, have, wanted$op, wanted$version)
  for (i in which(done)) say(wanted$name[[i]], " ", have[[i]], " is already installed")
  todo <- wanted[!done, , drop = FALSE]
  if (nrow(todo) == 0L) return(verify(wanted))

  db <- read_index(repos)
  problems <- character()
  missing <- setdiff(todo$name, rownames(db))
  if (length(missing)) {
    everything <- suppressWarnings(available.packages(repos = repos, filters = list()))
    for (name in missing) {
      problems <- c(problems, if (name %in% rownames(everything)) {
        sprintf("%s: the repository's %s does not install on R %s (it needs %s)", name,
                everything[name, "Version"], getRversion(), everything[name, "Depends"])
      } else sprintf("%s: there is no package called '%s' in the R repository %s",
                     name, name, repos))
    }
  }
  db <- cbind(db, SourceMD5 = db[, "MD5sum"])
  for (i in seq_len(nrow(todo))) {
    name <- todo$name[[i]]
    op <- todo$op[[i]]
    version <- todo$version[[i]]
    if (!name %in% rownames(db)) next
    current <- db[name, "Version"]
    if (op == ">=" && package_version(current) < package_version(version)) {
      problems <- c(problems, sprintf("%s>=%s: the repository only has %s", name, version, current))
    } else if (op == "==" && package_version(current) != package_version(version)) {
      # An older version: CRAN-like repositories keep those in src/contrib/Archive/NAME/.
      # The index has no checksum for it, so the kept copy is only trusted for the same
      # repository (archived versions do not change).
      file <- paste0(name, "_", version, ".tar.gz")
      archive_dir <- file.path(src_dir, "archive", substr(md5_text(repos), 1L, 12L))
      dir.create(archive_dir, recursive = TRUE, showWarnings = FALSE)
      dest <- file.path(archive_dir, file)
      url <- paste(repos, "src/contrib/Archive", name, file, sep = "/")
      if (!file.exists(dest) && !download_to(url, dest)) {
        problems <- c(problems, sprintf("%s==%s: not in the repository (it has %s) nor at %s",
                                        name, version, current, url))
        next
      }
      fields <- tarball_fields(dest, name)
      db[name, c("Version", "Depends", "Imports", "LinkingTo")] <-
        fields[c("Version", "Depends", "Imports", "LinkingTo")]
      db[name, c("Repository", "File", "MD5sum", "SourceMD5")] <-
        c(paste0("file://", archive_dir), file, NA, md5(dest))
    }
  }
  if (length(problems)) {
    fail("R packages that cannot be installed:\n  ", paste(problems, collapse = "\n  "))
  }

  # Everything the wanted packages need that is not installed yet.
  deps <- tools::package_dependencies(todo$name, db = db, recursive = TRUE,
                                      which = c("Depends", "Imports", "LinkingTo"))
  needed <- union(todo$name, unlist(deps, use.names = FALSE))
  needed <- needed[needed %in% rownames(db)]
  needed <- needed[needed %in% todo$name | is.na(installed_versions(needed))]

  # Built here before: unpack instead of compiling. Else reuse a kept source tarball.
  from_cache <- character()
  for (name in needed) {
    tarball <- file.path(built, built_name(name, db[name, "Version"], db[name, "SourceMD5"]))
    if (file.exists(tarball)) {
      unlink(file.path(lib, name), recursive = TRUE)
      if (utils::untar(tarball, exdir = lib) == 0L) {
        from_cache <- c(from_cache, name)
        next
      }
    }
    file <- paste0(name, "_", db[name, "Version"], ".tar.gz")
    kept <- file.path(src_dir, file)
    expected <- db[name, "MD5sum"]
    if (!is.na(expected) && file.exists(kept) && md5(kept) == expected) {
      db[name, c("Repository", "File")] <- c(paste0("file://", src_dir), file)
    }
  }
  if (length(from_cache)) {
    say("unpacked ", length(from_cache), " package(s) built before: ",
        paste(from_cache, collapse = ", "))
  }
  to_build <- setdiff(needed, from_cache)
  logs <- file.path(tempdir(), "logs")
  downloads <- file.path(tempdir(), "downloads")
  dir.create(downloads)
  if (length(to_build)) {
    say("installing ", length(to_build), " package(s) with Ncpus = ", getOption("Ncpus"), ": ",
        paste(to_build, collapse = ", "))
    # install.packages orders them by their dependencies and builds Ncpus at a time.
    utils::install.packages(to_build, lib = lib, available = db,
                            dependencies = c("Depends", "Imports", "LinkingTo"),
                            destdir = downloads, keep_outputs = logs)
  }
  keep_sources(downloads, src_dir)
  now <- installed_versions(to_build)
  ok <- !is.na(now) & now == db[to_build, "Version"] & dir.exists(file.path(lib, to_build))
  keep_built(to_build[ok], db, lib, built)
  report_failures(to_build[!ok], db, logs)
  verify(wanted, logs, reported = to_build[!ok])
}

keep_sources <- function(downloads, src_dir) {
  for (file in list.files(downloads, pattern = "\\.tar\\.gz$", full.names = TRUE)) {
    dest <- file.path(src_dir, basename(file))
    part <- paste0(dest, ".part", Sys.getpid())
    if (!file.exists(dest) && file.copy(file, part)) file.rename(part, dest)
  }
}

# Tar up what was built here (as R CMD INSTALL --build would) for the next build to unpack.
keep_built <- function(names, db, lib, built) {
  for (name in names) {
    dest <- file.path(built, built_name(name, db[name, "Version"], db[name, "SourceMD5"]))
    part <- paste0(dest, ".part", Sys.getpid())
    status <- system2("tar", c("-czf", shQuote(part), "-C", shQuote(lib), shQuote(name)))
    if (status == 0L) file.rename(part, dest) else unlink(part)
  }
}

# Root causes first, with R's output; then what was not even tried because of them.
report_failures <- function(failed, db, logs) {
  if (!length(failed)) return(invisible())
  needs <- tools::package_dependencies(failed, db = db, recursive = TRUE,
                                       which = c("Depends", "Imports", "LinkingTo"))
  blocked <- vapply(failed, function(name) length(intersect(needs[[name]], failed)) > 0L, NA)
  for (name in failed[!blocked]) show_log(name, logs, "failed to install")
  for (name in failed[blocked]) {
    message("pyrlab: error: R package '", name, "' was not installed: it needs ",
            paste(intersect(needs[[name]], failed), collapse = ", "), ", which failed")
  }
}

show_log <- function(name, logs, problem) {
  message("pyrlab: error: R package '", name, "' ", problem)
  log <- if (is.null(logs)) "" else file.path(logs, paste0(name, ".out"))
  if (nzchar(log) && file.exists(log)) {
    message("pyrlab: the end of its installation output:\n",
            paste0("  | ", utils::tail(readLines(log, warn = FALSE), 12L), collapse = "\n"))
  }
}

# Every wanted package must now load at a wanted version; name each that does not, with
# the end of its installation output (R's own error message).
verify <- function(wanted, logs = NULL, reported = character()) {
  have <- installed_versions(wanted$name)
  failed <- character()
  for (i in seq_len(nrow(wanted))) {
    name <- wanted$name[[i]]
    problem <- if (is.na(have[[i]])) {
      "was not installed"
    } else if (!satisfies(have[[i]], wanted$op[[i]], wanted$version[[i]])) {
      sprintf("is installed at %s, not %s%s", have[[i]], wanted$op[[i]], wanted$version[[i]])
    } else {
      tryCatch({
        loadNamespace(name)
        NULL
      }, error = function(e) paste("does not load:", conditionMessage(e)))
    }
    if (is.null(problem)) next
    failed <- c(failed, name)
    if (!name %in% reported) show_log(name, logs, problem)
  }
  failed <- union(failed, reported)
  if (length(failed)) fail("R packages failed to install: ", paste(failed, collapse = ", "))
  say("R packages ready: ", paste(wanted$name, collapse = ", "))
}

main(commandArgs(trailingOnly = TRUE))
