"""Downloading and verifying registry files (`lihq weights fetch | verify | list`).

Download contract (per file)
----------------------------
- A present file is left alone unless `force`. Bytes stream to `<dest>.part`; an existing `.part`
  is resumed with `Range: bytes=N-` (a server that answers 200 instead of 206 restarts it).
- URLs are tried in registry order (official first, then mirrors). An HTML answer (a login or
  virus-scan page), an HTTP error or an unreachable host moves on to the next URL.
- The finished `.part` is checked against the known size, sha256, md5 or file-name hash prefix; a
  mismatch deletes it (ChecksumMismatch if no URL gives the right bytes). Only a verified file is
  renamed onto `dest` (atomic `os.replace`), and a stale `.synthetic.json` sidecar is removed.
- No URL reachable -> Unavailable: "cannot reach <host>: <reason>; download <url> by hand and put it
  at <path>, then run `lihq weights verify NAME`". Browser-only files (Google Drive) ->
  FailedPrecondition with the same by-hand instruction. An interrupted transfer keeps its `.part`.
Two processes fetching the same file at once are not coordinated (no lock).
"""

from __future__ import annotations

import hashlib
import http.client
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from lihq.config import WeightsConfig
from lihq.errors import FailedPrecondition, LihqError, Unavailable
from lihq.weights.registry import WeightFile, WeightsEntry, get_entries, get_entry, local_path
from lihq.weights.synth import file_sha256, is_synthetic, sidecar_path

USER_AGENT = "lihq-weights/0.1 (+https://github.com/johnGettings/LIHQ)"
CHUNK = 1 << 20
_BROWSER_HOSTS = {
    "drive.google.com": "Google Drive",
    "docs.google.com": "Google Drive",
    "yadi.sk": "Yandex Disk",
    "disk.yandex.ru": "Yandex Disk",
}


class ChecksumMismatch(FailedPrecondition):
    """Downloaded bytes do not match the registry's size / hash; the partial file was deleted."""


class _AttemptFailed(Exception):
    """One URL did not deliver the file (internal; collected across mirrors)."""

    def __init__(self, url: str, reason: str, *, reachable: bool) -> None:
        super().__init__(reason)
        self.url = url
        self.reason = reason
        self.reachable = reachable


@dataclass(frozen=True)
class FetchResult:
    entry: str
    file: str
    path: Path
    action: str  # "downloaded" | "present"
    url: str | None = None
    synthetic: bool = False


@dataclass(frozen=True)
class FileStatus:
    """One verify row. status: ok | unverified (no hash known) | synthetic | missing | bad."""

    entry: str
    file: str
    path: Path
    status: str
    size: int | None
    expected_size: int | None
    hash_check: str  # "sha256 ok", "sha256 mismatch", "md5 ok", "prefix ok", "unknown", "-"
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "bad"


@dataclass(frozen=True)
class ListRow:
    name: str
    model: str
    service: str
    files: int
    size: int | None  # total bytes when every file's size is known
    present: int
    synthetic: int
    license: str
    optional: bool


def _root(cfg: WeightsConfig | Path | str) -> Path:
    return cfg.dir if isinstance(cfg, WeightsConfig) else Path(cfg)


def _host(url: str) -> str:
    return urlsplit(url).hostname or url


def _part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


# ----------------------------------------------------------------------------- progress


class _Bar:
    """A rich progress bar, started on the first download (nothing printed when disabled or idle)."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._progress: Progress | None = None

    def start(self, label: str, total: int | None, done: int) -> TaskID | None:
        if not self._enabled:
            return None
        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
            )
            self._progress.start()
        return self._progress.add_task(label, total=total, completed=done)

    def advance(self, task: TaskID | None, n: int) -> None:
        if self._progress is not None and task is not None:
            self._progress.advance(task, n)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[_Bar]:
    bar = _Bar(enabled)
    try:
        yield bar
    finally:
        bar.stop()


# ----------------------------------------------------------------------------- one attempt


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse | None:
    """The response for `url` from byte `offset`; None when a resumed range is past the end (416)."""
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            return None
        raise _AttemptFailed(url, f"HTTP {exc.code} {exc.reason}", reachable=True) from exc
    except URLError as exc:
        raise _AttemptFailed(url, str(exc.reason), reachable=False) from exc
    except (TimeoutError, OSError, http.client.HTTPException) as exc:
        raise _AttemptFailed(url, f"{type(exc).__name__}: {exc}", reachable=False) from exc


def _resume_offset(resp: http.client.HTTPResponse, offset: int, url: str) -> int:
    """Where the body starts: `offset` on a matching 206, 0 when the server sent the whole file."""
    if not offset or resp.status == 200:
        return 0
    content_range = resp.headers.get("Content-Range", "")
    if resp.status == 206 and content_range.startswith(f"bytes {offset}-"):
        return offset
    raise _AttemptFailed(url, f"bad range answer {resp.status} {content_range!r}", reachable=True)


def _read(resp: http.client.HTTPResponse, url: str, written: int) -> bytes:
    try:
        return resp.read(CHUNK)
    except (TimeoutError, OSError, http.client.HTTPException) as exc:
        raise _AttemptFailed(
            url, f"transfer interrupted after {written} bytes ({exc})", reachable=False
        ) from exc


def _stream(resp: http.client.HTTPResponse, part: Path, start: int, bar: _Bar, label: str, url: str) -> None:
    """Append (start > 0) or write the body to `part`. Network trouble -> _AttemptFailed (part kept);
    a local write error (disk full, permissions) -> FailedPrecondition."""
    length = resp.headers.get("Content-Length")
    total = start + int(length) if length and length.isdigit() else None
    task = bar.start(label, total, start)
    written = start
    try:
        with part.open("ab" if start else "wb") as fh:
            while block := _read(resp, url, written):
                fh.write(block)
                written += len(block)
                bar.advance(task, len(block))
    except OSError as exc:
        raise FailedPrecondition(f"cannot write {part}: {exc}") from exc
    if total is not None and written != total:
        raise _AttemptFailed(url, f"transfer ended at {written} of {total} bytes", reachable=False)


def _download(url: str, part: Path, expected_size: int | None, timeout: float, bar: _Bar, label: str) -> None:
    """Fill `part` from `url`, resuming it when present. Raises _AttemptFailed."""
    offset = part.stat().st_size if part.exists() else 0
    if expected_size is not None and offset >= expected_size:
        if offset == expected_size:
            return  # complete already; verification decides
        part.unlink()
        offset = 0
    resp = _open(url, offset, timeout)
    if resp is None:
        return  # the .part already holds everything the server has; verification decides
    with resp:
        if "text/html" in resp.headers.get("Content-Type", "").lower():
            raise _AttemptFailed(
                url, "answered with an HTML page, not the file (login or confirmation page?)", reachable=True
            )
        start = _resume_offset(resp, offset, url)
        _stream(resp, part, start, bar, label, url)


# ----------------------------------------------------------------------------- checks


def _digests(path: Path, want_md5: bool) -> tuple[str, str | None]:
    sha = hashlib.sha256()
    md5 = hashlib.md5() if want_md5 else None
    with path.open("rb") as fh:
        while block := fh.read(1 << 22):
            sha.update(block)
            if md5 is not None:
                md5.update(block)
    return sha.hexdigest(), (md5.hexdigest() if md5 is not None else None)


def check_file(path: Path, wfile: WeightFile) -> tuple[str, str]:
    """(hash_check, problem) for a present file: problem is "" when size and known hashes match."""
    size = path.stat().st_size
    if wfile.size is not None and size != wfile.size:
        return "-", f"size {size} != expected {wfile.size}"
    if wfile.sha256 is None and wfile.md5 is None and wfile.hash_prefix is None:
        return "unknown", ""
    sha, md5 = _digests(path, wfile.md5 is not None)
    if wfile.sha256 is not None:
        ok = sha == wfile.sha256
        return ("sha256 ok", "") if ok else ("sha256 mismatch", f"sha256 {sha} != expected {wfile.sha256}")
    if wfile.md5 is not None:
        ok = md5 == wfile.md5
        return ("md5 ok", "") if ok else ("md5 mismatch", f"md5 {md5} != expected {wfile.md5}")
    assert wfile.hash_prefix is not None
    ok = sha.startswith(wfile.hash_prefix)
    return (
        ("prefix ok", "")
        if ok
        else ("prefix mismatch", f"sha256 {sha} does not start with {wfile.hash_prefix}")
    )


# ----------------------------------------------------------------------------- fetch


def _by_hand(url: str, dest: Path, name: str) -> str:
    return f"download {url} by hand and put it at {dest}, then run `lihq weights verify {name}`"


def _manual_error(entry: WeightsEntry, wfile: WeightFile, dest: Path) -> FailedPrecondition:
    url = wfile.manual_urls[0] if wfile.manual_urls else "(no known URL)"
    where = _BROWSER_HOSTS.get(_host(url), _host(url))
    return FailedPrecondition(
        f"{wfile.filename} is published only on {where}, which needs a browser: {_by_hand(url, dest, entry.name)}"
    )


def _final_error(entry: WeightsEntry, wfile: WeightFile, dest: Path, failures: list[Exception]) -> LihqError:
    mismatches = [f for f in failures if isinstance(f, ChecksumMismatch)]
    if mismatches:
        return mismatches[0]
    attempts = [f for f in failures if isinstance(f, _AttemptFailed)]
    url = wfile.urls[0] if wfile.urls else wfile.manual_urls[0]
    reasons = "; ".join(
        f"{'cannot reach' if not a.reachable else 'failed at'} {_host(a.url)}: {a.reason}" for a in attempts
    )
    if any(not a.reachable for a in attempts) and _part_path(dest).exists():
        reasons += " (partial download kept; run the fetch again to resume)"
    return Unavailable(f"{reasons}; {_by_hand(url, dest, entry.name)}")


def _try_url(url: str, part: Path, wfile: WeightFile, timeout: float, bar: _Bar) -> None:
    """Leave a verified `part` from `url`. A resumed part that fails the check is fetched once afresh.

    Raises _AttemptFailed (network / HTTP) or ChecksumMismatch (the .part is deleted).
    """
    retry_fresh = part.exists()
    while True:
        _download(url, part, wfile.size, timeout, bar, wfile.filename)
        _, problem = check_file(part, wfile)
        if not problem:
            return
        part.unlink(missing_ok=True)
        if not retry_fresh:
            raise ChecksumMismatch(f"{wfile.filename} from {url}: {problem}; the partial file was deleted")
        retry_fresh = False


def _fetch_file(
    entry: WeightsEntry, wfile: WeightFile, dest: Path, *, force: bool, timeout: float, bar: _Bar
) -> FetchResult:
    if dest.is_file() and not force:
        return FetchResult(
            entry.name, wfile.filename, dest, "present", synthetic=is_synthetic(dest) is not None
        )
    if wfile.manual_only:
        raise _manual_error(entry, wfile, dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FailedPrecondition(f"cannot create {dest.parent}: {exc}") from exc
    part = _part_path(dest)
    failures: list[Exception] = []
    for url in wfile.urls:
        try:
            _try_url(url, part, wfile, timeout, bar)
        except (_AttemptFailed, ChecksumMismatch) as exc:
            failures.append(exc)
            continue
        sidecar_path(dest).unlink(missing_ok=True)
        os.replace(part, dest)
        return FetchResult(entry.name, wfile.filename, dest, "downloaded", url=url)
    raise _final_error(entry, wfile, dest, failures)


def fetch(
    name: str | WeightsEntry,
    cfg: WeightsConfig | Path | str,
    *,
    progress: bool = True,
    force: bool = False,
    timeout: float = 30.0,
) -> list[FetchResult]:
    """Download every file of entry `name` into the weights dir (see the module contract).

    `name` may also be a WeightsEntry not in the registry (tests point one at a local server).
    Returns one FetchResult per file, in registry order; raises on the first file that fails.
    """
    entry = name if isinstance(name, WeightsEntry) else get_entry(name)
    root = _root(cfg)
    with _progress_bar(progress) as bar:
        return [
            _fetch_file(entry, f, local_path(f, root), force=force, timeout=timeout, bar=bar)
            for f in entry.files
        ]


# ----------------------------------------------------------------------------- verify / list


def _verify_synthetic(entry: WeightsEntry, wfile: WeightFile, path: Path, info: dict) -> FileStatus:
    size = path.stat().st_size
    ok = file_sha256(path) == info.get("sha256")
    detail = f"synthetic, seed {info.get('seed')}" if ok else "synthetic file changed since it was written"
    status = "synthetic" if ok else "bad"
    return FileStatus(entry.name, wfile.filename, path, status, size, wfile.size, "-", detail)


def verify_file(entry: WeightsEntry, wfile: WeightFile, path: Path) -> FileStatus:
    if not path.is_file():
        return FileStatus(entry.name, wfile.filename, path, "missing", None, wfile.size, "-")
    info = is_synthetic(path)
    if info is not None:
        return _verify_synthetic(entry, wfile, path, info)
    hash_check, problem = check_file(path, wfile)
    status = "bad" if problem else ("unverified" if hash_check == "unknown" else "ok")
    return FileStatus(
        entry.name, wfile.filename, path, status, path.stat().st_size, wfile.size, hash_check, problem
    )


def verify(names: Iterable[str] | None, cfg: WeightsConfig | Path | str) -> list[FileStatus]:
    """One row per file of the named entries (all when empty); hashes are computed for present files."""
    root = _root(cfg)
    return [verify_file(e, f, local_path(f, root)) for e in get_entries(names) for f in e.files]


def list_entries(cfg: WeightsConfig | Path | str) -> list[ListRow]:
    """One row per registry entry with presence counts (no hashing)."""
    root = _root(cfg)
    rows = []
    for e in get_entries(None):
        paths = [local_path(f, root) for f in e.files]
        sizes = [f.size for f in e.files]
        rows.append(
            ListRow(
                name=e.name,
                model=e.model,
                service=e.service,
                files=len(e.files),
                size=sum(s for s in sizes if s is not None) if all(s is not None for s in sizes) else None,
                present=sum(p.is_file() for p in paths),
                synthetic=sum(is_synthetic(p) is not None for p in paths),
                license=e.license,
                optional=e.optional,
            )
        )
    return rows


__all__ = [
    "ChecksumMismatch",
    "FetchResult",
    "FileStatus",
    "ListRow",
    "check_file",
    "fetch",
    "list_entries",
    "verify",
    "verify_file",
]
