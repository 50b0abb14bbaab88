"""Bytecode for an environment, each file compiled once ever (uv-install runs it).

    python -I pyc_cache.py [--skip SKIPFILE] CACHE SITE            every .py file under SITE
    python -I pyc_cache.py [--skip SKIPFILE] CACHE SITE LISTFILE   the .py files LISTFILE
                                                                   names (a delta)

A .pyc is keyed by what makes its code differ: the interpreter's magic number and cache
tag, the optimization level, the source's path (the code records co_filename) and its
bytes. A hit is the cached code under a header that names the installed file's own mtime
and size (uv does not keep mtimes across builds): a plain timestamp pyc, as compileall
writes, so imports cost what they did and a file replaced later (uv leaves old pycs behind)
is seen as changed. A miss is compiled on every core and stored. The folders SKIPFILE names
(the test suites nothing imports, test_folders.py's list) are skipped, and a file that does
not compile never fails the build. Writes go to a temporary name renamed into place (two
builds may share the cache), and entries unused for PRUNE_DAYS are removed once a day.
Builds sharing the cache take turns (a lock file in it, waited on for at most LOCK_WAIT
seconds): of two images built at the same time with files in common (pylab and rlab both
hold JupyterLab), the second finds the first's work done instead of compiling the same
files beside it on the same cores.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import marshal
import multiprocessing
import os
import sys
import time
import warnings
from collections.abc import Iterator

MASK = 0xFFFFFFFF
PRUNE_DAYS = 30
CHUNK = 64
LOCK_WAIT = 900


def write(target: str, data: bytes) -> None:
    """`data` into `target` through a temporary file beside it, renamed into place."""
    tmp = f"{target}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)  # umask 022: 0644
    except FileNotFoundError:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def one(cache: str, path: str) -> str:
    """'reused', 'compiled' or 'failed' for one source file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
            st = os.fstat(f.fileno())
    except OSError:
        return "failed"
    key = hashlib.sha256(b"%d\0%s\0" % (sys.flags.optimize, os.fsencode(path)))
    key.update(data)
    name = key.hexdigest()
    entry = os.path.join(cache, name[:2], name + ".pyc")
    pyc = importlib.util.cache_from_source(path)
    try:
        with open(entry, "rb") as f:
            cached = f.read()
    except OSError:
        cached = b""
    # The installed file's own mtime and size: what the import checks.
    header = b"%s\0\0\0\0%s%s" % (importlib.util.MAGIC_NUMBER,
                                      (int(st.st_mtime) & MASK).to_bytes(4, "little"),
                                      (st.st_size & MASK).to_bytes(4, "little"))
    if cached[:4] == importlib.util.MAGIC_NUMBER:
        try:
            write(pyc, header + cached[16:])
            os.utime(entry)  # recently used: kept by the pruning
            return "reused"
        except OSError:
            pass
    bad = entry[:-4] + ".bad"  # known not to compile (Python 2 in some package's examples)
    if os.path.exists(bad):
        return "failed"
    try:
        # What the import system itself does (importlib's source_to_code).
        body = marshal.dumps(compile(data, path, "exec", dont_inherit=True))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        try:
            os.makedirs(os.path.dirname(bad), exist_ok=True)
            open(bad, "ab").close()
        except OSError:
            pass
        return "failed"
    try:
        write(pyc, header + body)
    except OSError:
        return "failed"
    try:
        write(entry, header + body)
    except OSError:
        pass  # a cache that cannot be written is no cache: the image has its bytecode
    return "compiled"


def work(args: tuple[str, list[str]]) -> dict[str, int]:
    cache, paths = args
    warnings.simplefilter("ignore")  # SyntaxWarnings of packages' code: not the build's news
    counts = {"reused": 0, "compiled": 0, "failed": 0}
    for path in paths:
        counts[one(cache, path)] += 1
    return counts


def sources(site: str) -> Iterator[str]:
    for folder, dirs, files in os.walk(site):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__"
                         and not os.path.islink(os.path.join(folder, d)))
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(folder, name)


def prune(root: str) -> int:
    """Once a day: remove the entries (of any interpreter) unused for PRUNE_DAYS."""
    stamp = os.path.join(root, "pruned")
    now = time.time()
    try:
        if now - os.stat(stamp).st_mtime < 86400:
            return 0
    except OSError:
        pass
    removed = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            try:
                if now - os.stat(path).st_mtime > PRUNE_DAYS * 86400:
                    os.unlink(path)
                    removed += 1
            except OSError:
                pass
    try:
        with open(stamp, "w"):
            pass
    except OSError:
        pass
    return removed


@contextlib.contextmanager
def turn(root: str) -> Iterator[float]:
    """The cache to this build alone while it compiles; yields the seconds it waited for
    another. Past LOCK_WAIT, or where the lock cannot be had, it goes on without."""
    started = time.monotonic()
    try:
        os.makedirs(root, exist_ok=True)
        fd = os.open(os.path.join(root, "compile.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield 0.0
        return
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - started > LOCK_WAIT:
                    break
                time.sleep(0.1)
            except OSError:
                break
        yield time.monotonic() - started
    finally:
        os.close(fd)  # the lock goes with it


def lines(listfile: str) -> list[str]:
    with open(listfile, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def main(argv: list[str]) -> None:
    args = argv[1:]
    skipped: tuple[str, ...] = ()
    if args[:1] == ["--skip"]:
        skipped = tuple(folder.rstrip("/") + "/" for folder in lines(args[1]))
        args = args[2:]
    root, site = args[0], args[1]
    paths = lines(args[2]) if len(args) > 2 else list(sources(site))
    paths = [p for p in paths if p.endswith(".py") and not p.startswith(skipped)]
    tag = f"{sys.implementation.cache_tag}-{importlib.util.MAGIC_NUMBER.hex()}"
    cache = os.path.join(root, tag)
    chunks = [(cache, paths[i:i + CHUNK]) for i in range(0, len(paths), CHUNK)]
    totals = {"reused": 0, "compiled": 0, "failed": 0}
    with turn(root) as waited:
        started = time.monotonic()
        if waited >= 1:
            print(f"pyrlab: bytecode: waited {waited:.1f}s for another build compiling "
                  "into the same cache")
        if len(chunks) > 1 and (os.cpu_count() or 1) > 1:
            with multiprocessing.Pool() as pool:
                results = list(pool.imap_unordered(work, chunks))
        else:
            results = [work(chunk) for chunk in chunks]
    for counts in results:
        for k, v in counts.items():
            totals[k] += v
    removed = prune(root)
    pruned = f"; {removed} unused cache entries removed" if removed else ""
    print(f"pyrlab: bytecode for {len(paths)} files: {totals['compiled']} compiled, "
          f"{totals['reused']} reused from the cache, {totals['failed']} not compilable, "
          f"in {time.monotonic() - started:.1f}s{pruned}")

if __name__ == "__main__":
    main(sys.argv)
