"""Files payroute writes for a user: whole or not at all, and only where the user asked.

Every file the project writes (decision logs, HTML and JSON reports, evaluation tables and plots, run-folder
state, bundles) goes through this module. A file is written into a temporary file beside its target
(``.NAME.partial-PID-N``), flushed and fsynced, then renamed over the target with :func:`os.replace`; a folder
(a bundle, a checkpoint) is written into a temporary folder beside it and renamed into place. A reader, or a
process killed at any instant (``kill -9`` included), finds the previous complete file or the new complete one,
never a torn one. A temporary file left by a killed process is removed the next time its target is written.

Output paths are checked before any work starts (:func:`check_output_file`, :func:`check_output_folder`): a file
path that is a folder, a parent that is a file, or a folder that cannot be written is refused with one line
naming the option and the path. A missing parent folder is not an error: it is created when the file is written,
so a run that fails leaves no empty folders behind. A target that is neither a regular file nor a folder (a
terminal, a pipe, ``/dev/stdout``) is written straight into, since nothing can be renamed over it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from payroute.errors import PayrouteError

_COUNTER = itertools.count()
PARTIAL = ".partial-"


def partial_path(path: Path) -> Path:
    """A fresh temporary path beside ``path``, named after it, this process and a counter."""
    return path.with_name(f".{path.name}{PARTIAL}{os.getpid()}-{next(_COUNTER)}")


def _is_special(path: Path) -> bool:
    """An existing target that is neither a regular file nor a folder (a terminal, a pipe, a device)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process, or no way to ask: assume it is alive
        return True
    return True


def remove_stale_partials(folder: Path, name: str | None = None) -> None:
    """Remove the temporary files and folders in ``folder`` (of the target ``name``, or of any target) that
    were left by processes that no longer run."""
    prefix = f".{name}{PARTIAL}" if name is not None else "."
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(prefix) or PARTIAL not in entry.name:
            continue
        pid_text = entry.name.rsplit(PARTIAL, 1)[1].split("-", 1)[0]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            _remove(entry)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(path: Path) -> None:
    """Make a rename in ``path`` durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_error(path: Path, exc: OSError) -> PayrouteError:
    return PayrouteError(f"could not write {str(path)!r}: {exc.strerror or exc}")


class AtomicFile:
    """A file written over time (a streamed log) that replaces its target only when committed.

    Write to :attr:`partial`; :meth:`commit` fsyncs it and renames it over :attr:`path`; :meth:`discard` removes
    it and leaves :attr:`path` as it was. Made: the parent folder (if missing), and the stale temporary files of
    the target removed. A target that is not a regular file (``/dev/stdout``) is written straight into.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.direct = _is_special(self.path)
        self.partial = self.path if self.direct else partial_path(self.path)
        if not self.direct:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise _write_error(self.path, exc) from None
            remove_stale_partials(self.path.parent, self.path.name)

    def commit(self) -> Path:
        if self.direct:
            return self.path
        try:
            if not self.partial.is_file():
                raise FileNotFoundError(f"nothing was written to {self.partial}")
            _fsync_file(self.partial)
            os.replace(self.partial, self.path)
        except OSError as exc:
            self.discard()
            raise _write_error(self.path, exc) from None
        _fsync_folder(self.path.parent)
        return self.path

    def discard(self) -> None:
        if not self.direct:
            _remove(self.partial)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to; on success it replaces ``path`` in one rename.

    The parent folder is created if missing. If the block raises, the temporary file is removed and ``path`` is
    left as it was; an ``OSError`` becomes a :class:`~payroute.errors.PayrouteError` naming ``path``. Use it for
    writers that want a path (Parquet, matplotlib, zip files)::

        with atomic_path(out) as tmp:
            table.to_parquet(tmp)
    """
    target = AtomicFile(path)
    try:
        yield target.partial
    except OSError as exc:
        target.discard()
        raise _write_error(target.path, exc) from None
    except BaseException:
        target.discard()
        raise
    target.commit()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a torn one."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never a torn one."""
    atomic_write_bytes(path, text.encode(encoding))


@contextlib.contextmanager
def atomic_folder(path: str | Path, replace: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success its files are fsynced and it is renamed to ``path``.

    With ``replace`` an existing ``path`` is swapped out for the new folder (and removed); without it an
    existing ``path`` is an error, also when it appears while the block runs. If the block raises, the
    temporary folder is removed and ``path`` is left as it was. An ``OSError`` becomes a
    :class:`~payroute.errors.PayrouteError` naming ``path``.
    """
    path = Path(path)
    tmp = partial_path(path)
    old: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(path.parent, path.name)
        tmp.mkdir()
        yield tmp
        for folder, _dirs, files in os.walk(tmp):
            for name in files:
                _fsync_file(Path(folder) / name)
            _fsync_folder(Path(folder))
        if path.exists() or path.is_symlink():
            if not replace:
                raise PayrouteError(f"{str(path)!r} already exists; choose a new path")
            old = partial_path(path)
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException as exc:
        _remove(tmp)
        if old is not None and not path.exists():
            os.replace(old, path)
        if isinstance(exc, OSError):
            raise _write_error(path, exc) from None
        raise
    if old is not None:
        _remove(old)
    _fsync_folder(path.parent)


# ---------------------------------------------------------------------------- output paths, checked up front
def _nearest_existing(path: Path) -> Path:
    """``path`` itself or its nearest ancestor that exists (the current folder for a bare relative name)."""
    probe = path
    while not probe.exists() and not probe.is_symlink():
        parent = probe.parent
        if parent == probe:
            break
        probe = parent
    return probe


def _check_parent(path: Path, option: str) -> None:
    start = path.parent if str(path.parent) else Path(".")
    base = _nearest_existing(start)
    if not base.is_dir():
        raise PayrouteError(f"{option} = {str(path)!r}: {str(base)!r} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise PayrouteError(f"{option} = {str(path)!r}: the folder {str(base)!r} is not writable")


def check_output_file(path: str | Path | None, option: str) -> Path | None:
    """Refuse an output file path that cannot be written, before the work that makes its content starts.

    Refused: a path that is a folder, one under a file, one in a folder this process cannot write. A missing
    parent folder is created when the file is written. ``option`` (``--report``) names the path in the message.
    """
    if path is None:
        return None
    path = Path(path)
    if str(path) in ("", ".") or path.name in ("", ".", ".."):
        raise PayrouteError(f"{option} = {str(path)!r}: allowed: a file path such as out.json")
    if path.is_dir():
        raise PayrouteError(f"{option} = {str(path)!r}: is a folder; allowed: a file path")
    if _is_special(path):
        return path
    _check_parent(path, option)
    return path


def check_output_folder(path: str | Path | None, option: str, new: bool = False) -> Path | None:
    """Refuse an output folder that cannot be written (a file, under a file, not writable) before work starts;
    with ``new``, also one that already exists."""
    if path is None:
        return None
    path = Path(path)
    if new and (path.exists() or path.is_symlink()):
        raise PayrouteError(f"{option} = {str(path)!r}: already exists; choose a new path")
    if path.exists() and not path.is_dir():
        raise PayrouteError(f"{option} = {str(path)!r}: is a file; allowed: a folder")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise PayrouteError(f"{option} = {str(path)!r}: the folder is not writable")
        return path
    _check_parent(path, option)
    return path


def check_inside(root: str | Path, path: str | Path, what: str) -> Path:
    """``path`` if it lies inside the folder ``root`` (symbolic links and ``..`` resolved), else an error."""
    base, full = Path(root).resolve(), Path(path).resolve()
    if full == base or not full.is_relative_to(base):
        raise PayrouteError(f"{what} {str(path)!r} is not inside {str(root)!r}")
    return Path(path)


__all__ = [
    "AtomicFile",
    "atomic_folder",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_inside",
    "check_output_file",
    "check_output_folder",
    "partial_path",
    "remove_stale_partials",
]
