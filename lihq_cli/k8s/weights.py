"""Checkpoints for cluster pods: uploaded once to a bucket prefix, synced into each pod before Ray starts.

    python -m lihq_cli.k8s.weights upload [--src DIR] [--prefix weights/]   # from a workstation
    python -m lihq_cli.k8s.weights sync   [--dest DIR] [--prefix weights/]   # the pods' init container

`upload` puts every file under the weights dir (LIHQ_WEIGHTS_DIR, the layout `lihq weights fetch`
writes) at `<prefix><relative path>`, then `<prefix>SHA256SUMS` (the `sha256sum` format) last, so a
sync never sees a SUMS file naming objects that are not there yet. `sync` reads SHA256SUMS, skips
files already in place with the right digest, downloads the others (4 at a time) and checks every
byte against SHA256SUMS: a mismatch deletes the file and fails the init container, so a pod never
starts serving with corrupt or swapped weights. Objects under the prefix that SHA256SUMS does not
list are ignored.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from lihq.errors import FailedPrecondition, InvalidInput, NotFound
from lihq.storage.base import ObjectStore, sha256_file, validate_key

SUMS = "SHA256SUMS"


@dataclass(frozen=True)
class SyncReport:
    downloaded: tuple[str, ...]
    present: tuple[str, ...]  # already in place with the right digest


def _prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{validate_key(prefix)}/" if prefix else ""


def parse_sums(text: str) -> dict[str, str]:
    """'<sha256>  <relative path>' lines -> {path: sha256}. Paths are validated like object keys."""
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        digest, _, rel = line.partition("  ")
        rel = rel.lstrip("*")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or not rel:
            raise InvalidInput(f"{SUMS} line {n}: expected '<sha256 hex>  <path>', got {line!r}")
        out[validate_key(rel)] = digest
    return out


def upload(store: ObjectStore, src: Path, prefix: str = "weights/") -> dict[str, str]:
    """Upload every file under `src` (skipping partial downloads); write SHA256SUMS last."""
    pre = _prefix(prefix)
    files = sorted(p for p in Path(src).rglob("*") if p.is_file() and not p.name.endswith(".part"))
    if not files:
        raise NotFound(f"no files under {src}: fetch or synthesize weights first (`lihq weights fetch NAME`)")
    sums: dict[str, str] = {}
    for path in files:
        rel = validate_key(path.relative_to(src).as_posix())
        info = store.put_file(pre + rel, path)
        sums[rel] = info.sha256 or sha256_file(path)
    body = "".join(f"{d}  {r}\n" for r, d in sorted(sums.items()))
    store.put_bytes(pre + SUMS, body.encode(), "text/plain")
    return sums


def sync(store: ObjectStore, dest: Path, prefix: str = "weights/", workers: int = 4) -> SyncReport:
    """Make `dest` hold exactly the digests SHA256SUMS names (extra local files are left alone)."""
    pre = _prefix(prefix)
    try:
        sums = parse_sums(store.get_bytes(pre + SUMS).decode("utf-8"))
    except NotFound as exc:
        raise FailedPrecondition(
            f"no {pre}{SUMS} in {store.describe()}: upload the weights first "
            f"(`python -m lihq_cli.k8s.weights upload --prefix {pre}`)"
        ) from exc
    todo = [r for r, d in sums.items() if not ((dest / r).is_file() and sha256_file(dest / r) == d)]
    present = tuple(sorted(set(sums) - set(todo)))

    def fetch(rel: str) -> str:
        target = dest / rel
        store.get_file(pre + rel, target)
        actual = sha256_file(target)
        if actual != sums[rel]:
            target.unlink(missing_ok=True)
            raise FailedPrecondition(
                f"{pre}{rel}: downloaded bytes hash to {actual}, {SUMS} says {sums[rel]}; re-upload it"
            )
        return rel

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        downloaded = tuple(sorted(pool.map(fetch, todo)))
    return SyncReport(downloaded, present)


def main(argv: list[str] | None = None) -> None:
    import click

    from lihq.config import StoreConfig, WeightsConfig
    from lihq.errors import LihqError
    from lihq.storage import open_store

    weights_dir = str(WeightsConfig.from_env().dir)

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    def cli() -> None:
        """Move checkpoints between LIHQ_WEIGHTS_DIR and a bucket prefix, with sha256 checks."""

    @cli.command(name="upload")
    @click.option(
        "--src", type=click.Path(file_okay=False, path_type=Path), default=weights_dir, show_default=True
    )
    @click.option("--prefix", envvar="LIHQ_WEIGHTS_PREFIX", default="weights/", show_default=True)
    def upload_cmd(src: Path, prefix: str) -> None:
        sums = upload(open_store(StoreConfig.from_env()), src, prefix)
        click.echo(f"uploaded {len(sums)} files and {SUMS} under {prefix}")

    @cli.command(name="sync")
    @click.option(
        "--dest", type=click.Path(file_okay=False, path_type=Path), default=weights_dir, show_default=True
    )
    @click.option("--prefix", envvar="LIHQ_WEIGHTS_PREFIX", default="weights/", show_default=True)
    def sync_cmd(dest: Path, prefix: str) -> None:
        report = sync(open_store(StoreConfig.from_env()), dest, prefix, workers=min(8, os.cpu_count() or 4))
        click.echo(
            f"weights in {dest}: {len(report.downloaded)} downloaded, {len(report.present)} already present"
        )

    try:
        cli.main(args=argv, prog_name="python -m lihq_cli.k8s.weights", standalone_mode=False)
    except LihqError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
