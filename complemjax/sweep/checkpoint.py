"""The checkpoint folder of a sweep: manifest, chunk files, digests and the writer's lock.

Files are written atomically (temporary file in the same folder, ``fsync``,
``os.replace``); every chunk carries the hash of its run identity and a SHA-256 of its
contents, so a truncated, altered or foreign chunk is told apart from a finished one.
One process writes a folder at a time: it holds ``folder/LOCK``, created exclusively.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from complemjax.sweep import distributed
from complemjax.sweep.grid import dumps, jsonable, short
from complemjax.sweep.programs import RootKey

__all__ = [
    "LOCK",
    "MANIFEST",
    "acquire_lock",
    "atomic_write",
    "check_lock_identity",
    "check_manifest",
    "chunk_path",
    "finished_chunks",
    "identity_hash",
    "live_lock_holder",
    "move_aside",
    "read_chunk",
    "release_lock",
    "remove_partial_writes",
    "resume_state",
    "run_identity",
    "take_folder",
    "verify_finished",
    "write_chunk",
    "write_manifest",
]

MANIFEST = "manifest.json"
#: Lock file of the process writing a checkpoint folder (see :func:`run_grid`).
LOCK = "sweep.lock"
_FORMAT = "complemjax.sweep/2"
_log = logging.getLogger("complemjax.sweep")
_CHUNK_RE = re.compile(r"^chunk-s(\d{4})-c(\d{6})\.npz$")
_IDENTITY = ("grid", "static", "n_seeds", "key", "key_impl", "fingerprint")


def run_identity(
    grid: Mapping[str, Any],
    static: Mapping[str, Any],
    n_seeds: int,
    key: RootKey,
    fingerprint: str | None,
) -> dict[str, Any]:
    """What determines a sweep's results, as recorded in the manifest and checked on resume."""
    return {
        "grid": jsonable(dict(grid)),
        "static": jsonable(dict(static)),
        "n_seeds": n_seeds,
        "key": key.data.tolist(),
        "key_impl": key.impl,
        "fingerprint": fingerprint,
    }


def _fsync_dir(path: Path) -> None:
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


def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Write via a temporary file in the same folder, fsync, then ``os.replace``."""
    fd, tmp = tempfile.mkstemp(prefix=".chunk-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def chunk_path(folder: Path, s: int, c: int) -> Path:
    """File of chunk ``c`` of static bucket ``s``."""
    return folder / f"chunk-s{s:04d}-c{c:06d}.npz"


def identity_hash(identity: Mapping[str, Any]) -> str:
    """SHA-256 of the run identity (grid, static grid, seeds, key, fingerprint)."""
    return hashlib.sha256(dumps({k: identity[k] for k in _IDENTITY}).encode()).hexdigest()


def _chunk_digest(ident: str, rows: tuple[int, int], out: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over the run identity, the row range and every output (name, dtype, shape, bytes)."""
    h = hashlib.sha256()
    h.update(ident.encode())
    h.update(np.asarray(rows, dtype=np.int64).tobytes())
    for k in sorted(out):
        v = np.ascontiguousarray(out[k])
        h.update(f"|{k}|{v.dtype.str}|{v.shape}|".encode())
        h.update(v.tobytes())
    return h.hexdigest()


def write_chunk(
    path: Path, rows: tuple[int, int], out: Mapping[str, np.ndarray], ident: str = ""
) -> None:
    """Write one finished chunk with its run identity and a SHA-256 of its contents."""
    arrays = {f"out:{k}": np.asarray(v) for k, v in out.items()}
    arrays["__rows__"] = np.asarray(rows, dtype=np.int64)
    arrays["__identity__"] = np.asarray(ident)
    arrays["__sha256__"] = np.asarray(
        _chunk_digest(ident, rows, {k: np.asarray(v) for k, v in out.items()})
    )
    atomic_write(path, lambda fh: np.savez(fh, **arrays))


class _CorruptChunk(ValueError):
    """A chunk file that cannot be read back intact (truncated, empty, altered bytes)."""


def read_chunk(path: Path, rows: tuple[int, int], ident: str) -> dict[str, np.ndarray]:
    """Read and verify one chunk: checksum (else :class:`_CorruptChunk`), then identity and rows.

    Raises:
        _CorruptChunk: the file is unreadable or its contents do not match their checksum.
        ValueError: an intact file of another run (identity) or of other rows.
    """
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            files = set(z.files)
            if not {"__rows__", "__identity__", "__sha256__"} <= files:
                raise _CorruptChunk(
                    f"chunk file {path} lacks the run identity or checksum (written by "
                    f"another version of complemjax, or damaged)"
                )
            got_rows = tuple(int(r) for r in z["__rows__"])
            got_ident = str(z["__identity__"])
            digest = str(z["__sha256__"])
            out = {k[4:]: z[k] for k in sorted(files) if k.startswith("out:")}
    except _CorruptChunk:
        raise
    except Exception as err:  # BadZipFile, EOFError, OSError, ValueError from np.load ...
        raise _CorruptChunk(
            f"chunk file {path} is unreadable ({type(err).__name__}: {err})"
        ) from err
    if _chunk_digest(got_ident, got_rows, out) != digest:
        raise _CorruptChunk(f"chunk file {path} does not match its checksum (altered bytes)")
    if got_ident != ident:
        raise ValueError(
            f"`checkpoint_dir`: chunk file {path} was written by another run (run identity "
            f"{got_ident[:12]}..., this run is {ident[:12]}...); it was copied or mixed into "
            f"this folder. Remove it (it will be recomputed) or use the folder of its own run"
        )
    if got_rows != rows:
        raise ValueError(f"chunk file {path} holds rows {got_rows}, expected {rows}")
    for k, v in out.items():
        if v.ndim == 0 or v.shape[0] != rows[1] - rows[0]:
            raise _CorruptChunk(f"chunk file {path}: output `{k}` has shape {v.shape}")
    return out


def move_aside(path: Path) -> Path:
    """Rename a corrupt chunk to ``<name>.corrupt[-n]`` (kept for inspection, never read)."""
    target = path.with_name(path.name + ".corrupt")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{n}")
        n += 1
    os.replace(path, target)
    return target


# ---------------------------------------------------------------------------------------
# Folder lock: one writing process per checkpoint folder
# ---------------------------------------------------------------------------------------

_HELD_LOCKS: set[str] = set()  # lock files held by this process


def _proc_start_time(pid: int) -> str | None:
    """Start time of ``pid`` (field 22 of /proc/PID/stat), to tell reused pids apart."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def _pid_alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OSError:
        return True
    now = _proc_start_time(pid)
    return not (start is not None and now is not None and now != start)


def _describe_holder(h: Mapping[str, Any]) -> str:
    since = h.get("created_unix")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if since else "?"
    return f"pid {h.get('pid')} on host {h.get('host')!r} (since {when})"


def acquire_lock(folder: Path, ident: str) -> Path:
    """Create ``folder/LOCK`` exclusively (``O_CREAT | O_EXCL``) for this process.

    A lock whose holder is a dead process on this host (or a reused pid) is stale: it is
    reclaimed with a logged warning. A lock of a live process, or of another host (whose
    processes cannot be checked from here), raises a ValueError naming the holder.
    """
    path = folder / LOCK
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "start": _proc_start_time(os.getpid()),
        "identity": ident,
        "nonce": os.urandom(8).hex(),
        "created_unix": time.time(),
    }
    for _ in range(5):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
                fh.flush()
                os.fsync(fh.fileno())
            _HELD_LOCKS.add(str(path.resolve()))
            return path
        try:
            text = path.read_text()
            holder = json.loads(text)
        except FileNotFoundError:
            continue  # released meanwhile: try again
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(
                f"`checkpoint_dir` {folder} is locked ({path} exists but is unreadable: {err}); "
                f"another run may be starting. If no run uses this folder, delete {path}"
            ) from err
        ours = str(path.resolve()) in _HELD_LOCKS
        same_host = holder.get("host") == me["host"]
        pid = holder.get("pid")
        if (
            ours
            or not same_host
            or not isinstance(pid, int)
            or _pid_alive(pid, holder.get("start"))
        ):
            who = "this process (another run_grid call)" if ours else _describe_holder(holder)
            raise ValueError(
                f"`checkpoint_dir` {folder} is locked by {who}, which is writing a sweep "
                f"there; two runs must not share a folder. Wait for it, use another folder, "
                f"or, if that process is gone (e.g. another host that crashed), delete {path}"
            )
        # Stale: the holder died on this host. Reclaim by renaming, then re-check the
        # renamed content, so that two processes reclaiming at once cannot both win.
        aside = path.with_name(f"{LOCK}.stale-{me['nonce']}")
        try:
            os.replace(path, aside)
        except FileNotFoundError:
            continue
        if aside.read_text() != text:  # someone else took it meanwhile: give it back
            try:
                os.link(aside, path)
            except FileExistsError:
                pass
            aside.unlink(missing_ok=True)
            continue
        aside.unlink(missing_ok=True)
        _log.warning(
            "complemjax.sweep: reclaimed the stale lock of %s on %s (that process is gone)",
            folder,
            _describe_holder(holder),
        )
    raise ValueError(f"`checkpoint_dir` {folder}: could not take the lock {path} (contention)")


def live_lock_holder(folder: str | os.PathLike) -> str | None:
    """Who is writing the checkpoint folder now: ``"pid P on host 'H' (since ...)"``, or None.

    None when the folder has no lock or its holder is a dead process on this host (a
    stale lock, reclaimed by the next :func:`run_grid`). A lock of another host counts
    as live (its processes cannot be checked from here).
    """
    path = Path(folder) / LOCK
    try:
        holder = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError):
        return f"an unreadable lock file {path}"
    pid = holder.get("pid")
    if (
        holder.get("host") == socket.gethostname()
        and isinstance(pid, int)
        and not _pid_alive(pid, holder.get("start"))
        and str(path.resolve()) not in _HELD_LOCKS
    ):
        return None
    return _describe_holder(holder)


def release_lock(path: Path, created_folder: bool) -> None:
    """Remove the lock ``path``, and its folder too if this run created it and left it empty."""
    _HELD_LOCKS.discard(str(path.resolve()))
    path.unlink(missing_ok=True)
    folder = path.parent
    if created_folder and folder.exists() and not any(folder.iterdir()):
        folder.rmdir()  # nothing was written: leave no trace of a run that failed early


def check_lock_identity(folder: Path, ident: str) -> None:
    """Non-writing processes of a multi-host run: the lock of process 0 is this run's."""
    path = folder / LOCK
    try:
        holder = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(
            f"`checkpoint_dir` {folder}: cannot read the lock {path} of process 0 ({err}); "
            f"is the folder on a filesystem shared by every process?"
        ) from err
    if holder.get("identity") != ident:
        raise ValueError(
            f"`checkpoint_dir` {folder} is locked by {_describe_holder(holder)} for another "
            f"run (identity {str(holder.get('identity'))[:12]}..., this process has "
            f"{ident[:12]}...): every process must run the same grid, key and fingerprint"
        )


def take_folder(folder: Path, ident: str, writer: bool) -> tuple[Path | None, bool]:
    """Lock ``folder`` for this run before any work; every process agrees or all raise.

    Process 0 (the ``writer``) creates the folder if needed and takes its lock; the other
    processes then check that the lock is held for this very run (same identity).

    Returns:
        ``(lock, created_folder)``: the lock file held by this process (None on the
        others) and whether this call created the folder (removed again on release if
        nothing was written).

    Raises:
        ValueError: the folder is a file, is locked by another run, cannot be created, or
            the processes run different sweeps.
    """
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"`checkpoint_dir` {folder} exists and is not a folder")
    lock: Path | None = None
    created_folder = False
    err: Exception | None = None
    if writer:  # process 0 writes, so it alone holds the lock
        try:
            created_folder = not folder.exists()
            folder.mkdir(parents=True, exist_ok=True)
            lock = acquire_lock(folder, ident)
        except (ValueError, OSError) as e:
            if created_folder and folder.exists() and not any(folder.iterdir()):
                folder.rmdir()
            err = (
                e
                if isinstance(e, ValueError)
                else ValueError(
                    f"`checkpoint_dir` {folder}: cannot create the folder or its lock ({e})"
                )
            )
    distributed.agree(err, f"`checkpoint_dir` {folder}: process 0 could not take the folder's lock")
    err = None
    if not writer:  # the others verify that process 0 locked it for this very run
        try:
            check_lock_identity(folder, ident)
        except ValueError as e:
            err = e
    distributed.agree(err, f"`checkpoint_dir` {folder}: the processes run different sweeps")
    return lock, created_folder


def check_manifest(folder: Path, identity: Mapping[str, Any]) -> dict | None:
    """Return the recorded manifest (None if the folder is new) or raise on a mismatch."""
    path = folder / MANIFEST
    if not path.exists():
        if folder.exists() and any(p for p in folder.iterdir() if p.name not in (MANIFEST, LOCK)):
            raise ValueError(
                f"`checkpoint_dir` {folder} is not empty and has no {MANIFEST}; refusing to "
                f"write sweep results into it (use an empty or new folder)"
            )
        return None
    try:
        recorded = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"`checkpoint_dir` {folder}: unreadable {MANIFEST} ({err})") from err
    if recorded.get("format") != _FORMAT:
        raise ValueError(
            f"`checkpoint_dir` {folder}: {MANIFEST} has format {recorded.get('format')!r}, "
            f"expected {_FORMAT!r}"
        )
    for name in _IDENTITY:
        want = json.dumps(identity[name], separators=(",", ":"))
        got = json.dumps(recorded.get(name), separators=(",", ":"))
        if want != got:
            raise ValueError(
                f"`checkpoint_dir` {folder} holds results of a different sweep: `{name}` was "
                f"{short(got)} there and is {short(want)} now; finished results are never "
                f"overwritten, so use another folder (or delete this one to start again)"
            )
    return recorded


def write_manifest(
    folder: Path,
    identity: Mapping[str, Any],
    chunks: Sequence[int],
    n_flat: int,
    n_chunks: Sequence[int],
    description: str,
) -> None:
    """Record a new sweep's identity and chunk layout in ``folder/MANIFEST`` (atomically)."""
    manifest = {
        "format": _FORMAT,
        **identity,
        "chunk_sizes": chunks,
        "n_rows_per_static": n_flat,
        "n_chunks": n_chunks,
        "description": description,
        "jax_version": jax.__version__,
        "created_unix": time.time(),
    }
    text = json.dumps(manifest, indent=1)
    atomic_write(folder / MANIFEST, lambda fh: fh.write(text.encode()))


def remove_partial_writes(folder: Path) -> None:
    """Delete leftovers of a killed write (only safe while holding the folder's lock)."""
    for p in folder.glob(".chunk-*.tmp"):
        p.unlink(missing_ok=True)


def finished_chunks(folder: Path, n_static: int) -> set[tuple[int, int]]:
    """``(bucket, chunk)`` of every chunk file in ``folder`` (read nothing, trust nothing)."""
    done = set()
    if folder.exists():
        for p in folder.iterdir():
            m = _CHUNK_RE.match(p.name)
            if m and int(m.group(1)) < n_static:
                done.add((int(m.group(1)), int(m.group(2))))
    return done


def verify_finished(
    folder: Path, found: set[tuple[int, int]], chunks: Sequence[int], n_flat: int, ident: str
) -> tuple[set[tuple[int, int]], list[tuple[Path, str]]]:
    """Read every finished chunk; return the intact ones and the corrupt ones (path, why)."""
    n_chunks = [-(-n_flat // c) for c in chunks]
    good, bad = set(), []
    for s, c in sorted(found):
        if c >= n_chunks[s]:
            continue
        path = chunk_path(folder, s, c)
        try:
            read_chunk(path, (c * chunks[s], min((c + 1) * chunks[s], n_flat)), ident)
        except _CorruptChunk as e:
            bad.append((path, str(e)))
        else:
            good.add((s, c))
    return good, bad


def resume_state(
    folder: Path,
    identity: Mapping[str, Any],
    ident: str,
    n_static: int,
    n_flat: int,
    resume: bool,
    writer: bool,
) -> tuple[dict | None, set[tuple[int, int]]]:
    """The recorded manifest (None for a new folder) and the intact finished chunks.

    Corrupt chunk files are moved aside by the writer (with a logged warning) so that
    they are recomputed.

    Raises:
        ValueError: the folder holds another sweep, or finished chunks while ``resume``
            is False.
    """
    recorded = check_manifest(folder, identity)
    distributed.sync("complemjax.sweep.check")
    if recorded is None:
        return None, set()
    found = finished_chunks(folder, n_static)
    if found and not resume:
        raise ValueError(
            f"`checkpoint_dir` {folder} already holds {len(found)} finished chunks of "
            f"this sweep and `resume` is False; refusing to overwrite them (pass "
            f"resume=True, or delete the folder to start again)"
        )
    chunks_rec = [int(c) for c in recorded["chunk_sizes"]]
    done, corrupt = verify_finished(folder, found, chunks_rec, n_flat, ident)
    distributed.sync("complemjax.sweep.verified")
    if writer:
        for path, why in corrupt:
            aside = move_aside(path)
            _log.warning("complemjax.sweep: %s; moved to %s, recomputing it", why, aside)
    distributed.sync("complemjax.sweep.moved")
    return recorded, done
