"""Backup and restore: a database dump plus the media files, with a sha256 manifest.

A backup folder holds ``database.sqlite3`` (SQLite's online backup API) or
``database.pgdump`` (``pg_dump --format=custom``), ``media/`` (every stored file) and
``manifest.json`` (the sha256 of every file in the folder). Restore checks the whole manifest
before it touches anything, then loads the database and the files into the target.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from urllib.parse import quote

from django.db import connection

from studies.hashing import sha256_of

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


class BackupError(Exception):
    """A backup or restore that cannot go on, with the reason."""


def postgres_url(settings_dict: dict, name: str | None = None) -> str:
    user = quote(settings_dict.get("USER") or "", safe="")
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "localhost"
    port = settings_dict.get("PORT") or 5432
    return f"postgresql://{auth}{host}:{port}/{name or settings_dict['NAME']}"


def backup(destination: Path, *, media_root: Path) -> dict:
    """Write a backup of the current database and ``media_root`` into ``destination``."""
    destination = Path(destination)
    if destination.exists() and any(destination.iterdir()):
        raise BackupError(f"{destination} is not empty; choose a new folder.")
    destination.mkdir(parents=True, exist_ok=True)
    vendor = connection.vendor
    if vendor == "sqlite":
        database_file = destination / "database.sqlite3"
        source = sqlite3.connect(str(connection.settings_dict["NAME"]))
        target = sqlite3.connect(str(database_file))
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
    elif vendor == "postgresql":
        database_file = destination / "database.pgdump"
        _run(
            [
                "pg_dump",
                "--format=custom",
                "--no-owner",
                "--no-privileges",
                f"--file={database_file}",
                f"--dbname={postgres_url(connection.settings_dict)}",
            ]
        )
    else:
        raise BackupError(f"Backups of {vendor} databases are not supported.")
    files = {}
    media_root = Path(media_root)
    if media_root.is_dir():
        for path in sorted(p for p in media_root.rglob("*") if p.is_file()):
            relative = path.relative_to(media_root).as_posix()
            if Path(relative).name.startswith(".upload-"):
                continue  # an upload being written at this moment: not yet in the database
            copy = destination / "media" / relative
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, copy)
            files[f"media/{relative}"] = sha256_of(copy)
    files[database_file.name] = sha256_of(database_file)
    manifest = {
        "format": FORMAT_VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "database": {"vendor": vendor, "file": database_file.name},
        "files": files,
    }
    (destination / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def verify(source: Path) -> dict:
    """The manifest of a backup folder, after checking every file against it."""
    source = Path(source)
    try:
        manifest = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{source} has no {MANIFEST}: it is not a backup folder.") from None
    problems = []
    for name, expected in manifest["files"].items():
        path = source / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif sha256_of(path) != expected:
            problems.append(f"{name} is damaged (sha256 differs)")
    if problems:
        raise BackupError("The backup is not intact: " + "; ".join(problems[:10]))
    return manifest


def restore(source: Path, *, database: dict, media_root: Path, force: bool = False) -> dict:
    """Restore a verified backup into ``database`` (a Django settings dict) and ``media_root``.

    Refuses to overwrite a non-empty target unless ``force``.
    """
    source = Path(source)
    manifest = verify(source)
    vendor = manifest["database"]["vendor"]
    engine = database["ENGINE"].rsplit(".", 1)[-1]
    if (vendor, engine) not in (("sqlite", "sqlite3"), ("postgresql", "postgresql")):
        raise BackupError(f"This backup is of a {vendor} database; the target is {engine}.")
    media_root = Path(media_root)
    if media_root.is_dir() and any(media_root.iterdir()) and not force:
        raise BackupError(f"{media_root} is not empty; use --force to restore over it.")
    dump = source / manifest["database"]["file"]
    if vendor == "sqlite":
        target = Path(database["NAME"])
        if target.exists() and target.stat().st_size and not force:
            raise BackupError(f"{target} exists; use --force to restore over it.")
        target.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        temporary = target.with_name(target.name + ".restoring")
        shutil.copyfile(dump, temporary)
        os.replace(temporary, target)
    else:
        url = postgres_url(database)
        _create_postgres_database(database)
        _run(
            [
                "pg_restore",
                "--clean",
                "--if-exists",
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                f"--dbname={url}",
                str(dump),
            ]
        )
    media_source = source / "media"
    restored = 0
    if media_source.is_dir():
        for path in sorted(p for p in media_source.rglob("*") if p.is_file()):
            target_file = media_root / path.relative_to(media_source)
            target_file.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target_file)
            restored += 1
    return {"database": vendor, "media_files": restored, "created_at": manifest["created_at"]}


def _create_postgres_database(database: dict) -> None:
    import psycopg

    name = database["NAME"]
    with psycopg.connect(postgres_url(database, "postgres"), autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{name}"')


def _run(command: list[str]) -> None:
    try:
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise BackupError(f"{command[0]} is not installed (PostgreSQL client tools).") from None
    if completed.returncode != 0:
        raise BackupError(f"{command[0]} failed: {completed.stderr.strip()[:2000]}")
