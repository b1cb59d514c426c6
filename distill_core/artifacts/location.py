"""Where a runs folder lives: a local path, or a place in an object store given by URI.

`location("runs")` is a resolved `pathlib.Path`; `location("s3://bucket/runs")` (or `gs://`,
`hdfs://`, any scheme pyarrow knows, or any fsspec URI such as `memory://`) is a
`RemotePath`, a small pathlib-like view of a pyarrow filesystem, so the run store's code
reads the same for both. Endpoint and credentials come from the standard environment
(`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`, ...)
or from pyarrow's URI query options (`s3://bucket/runs?endpoint_override=host:port&
scheme=http`); the query travels with every path derived from the URI, so `str()` of a run
folder can be handed to another process and opened there.

An object store has no rename and no real folders: a `RemotePath` folder exists when an
object sits under its prefix, `mkdir` does nothing, and an object appears whole when its
upload closes (see `store.py` for how a stage is published there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from distill_core.errors import StorageError

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_BUCKETED = {"s3", "gs", "gcs"}  # schemes whose first path segment is a bucket


def is_uri(where: str | Path) -> bool:
    """A URI with a scheme other than `file://` (an object store or fsspec filesystem)."""
    return isinstance(where, str) and bool(_URI.match(where)) and not where.startswith("file://")


@lru_cache(maxsize=32)
def _filesystem(scheme: str, query: str) -> pafs.FileSystem:
    """One filesystem per scheme and options, shared by every path of it in this process."""
    try:
        return pafs.FileSystem.from_uri(f"{scheme}://probe/" + (f"?{query}" if query else ""))[0]
    except ValueError as exc:  # pyarrow.ArrowInvalid: bad options, or not a pyarrow scheme
        if "Unrecognized filesystem type" not in str(exc):
            raise StorageError(f"{scheme}://...?{query}: cannot open this store ({exc}); fix "
                               "the URI's options or pass --runs-dir DIR") from None
    try:  # not a pyarrow scheme: an fsspec filesystem, seen through pyarrow
        import fsspec

        fs = fsspec.filesystem(scheme, **dict(_options(query)))
    except (ImportError, ValueError) as exc:
        raise StorageError(f"{scheme}://: no pyarrow or fsspec filesystem for this scheme "
                           f"({exc}); pass --runs-dir DIR or an s3:// URI") from None
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs))


def _options(query: str) -> list[tuple[str, str]]:
    return [tuple(kv.split("=", 1)) for kv in query.split("&") if "=" in kv]  # type: ignore


@dataclass(frozen=True)
class _Stat:
    st_size: int
    st_mtime_ns: int
    st_ino: int = 0


@dataclass(frozen=True)
class RemotePath:
    """A file or folder in a pyarrow filesystem, with the pathlib methods the store uses."""

    scheme: str
    path: str  # inside the filesystem: `bucket/key/...` (no leading or trailing slash)
    query: str = ""
    kind: pafs.FileType | None = field(default=None, compare=False, hash=False, repr=False)

    @property
    def fs(self) -> pafs.FileSystem:
        return _filesystem(self.scheme, self.query)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.path}" + (f"?{self.query}" if self.query else "")

    def __truediv__(self, name: str | Path) -> RemotePath:
        return RemotePath(self.scheme, f"{self.path}/{str(name).strip('/')}", self.query)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def parent(self) -> RemotePath:
        return RemotePath(self.scheme, self.path.rsplit("/", 1)[0], self.query)

    @property
    def bucket(self) -> str:
        return self.path.split("/", 1)[0]

    def with_name(self, name: str) -> RemotePath:
        return self.parent / name

    def with_suffix(self, suffix: str) -> RemotePath:
        stem = self.name.rsplit(".", 1)[0] if "." in self.name else self.name
        return self.with_name(stem + suffix)

    def resolve(self) -> RemotePath:
        return self

    def _info(self) -> pafs.FileInfo:
        return self.fs.get_file_info(self.path)

    def _type(self) -> pafs.FileType:
        return self.kind if self.kind is not None else self._info().type

    def is_file(self) -> bool:
        return self._type() == pafs.FileType.File

    def is_dir(self) -> bool:
        return self._type() == pafs.FileType.Directory

    def exists(self) -> bool:
        return self._type() != pafs.FileType.NotFound

    def stat(self) -> _Stat:
        info = self._info()
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(str(self))
        return _Stat(int(info.size or 0), int(info.mtime_ns or 0))

    def iterdir(self) -> list[RemotePath]:
        """The files and folders right under this folder (none when it does not exist)."""
        return [self._child(info) for info in self._list(recursive=False)]

    def files(self) -> list[tuple[RemotePath, _Stat]]:
        """Every file under this folder, at any depth, with its size and mtime."""
        return [(self._child(i), _Stat(int(i.size or 0), int(i.mtime_ns or 0)))
                for i in self._list(recursive=True) if i.type == pafs.FileType.File]

    def _list(self, recursive: bool) -> list[pafs.FileInfo]:
        return self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True,
                                                       recursive=recursive))

    def _child(self, info: pafs.FileInfo) -> RemotePath:
        return RemotePath(self.scheme, info.path.strip("/"), self.query, info.type)

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: a prefix exists once an object is written under it."""

    def read_bytes(self) -> bytes:
        with self.fs.open_input_stream(self.path) as stream:
            return stream.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> None:
        """One upload: the object appears whole when the stream closes, or not at all."""
        with self.fs.open_output_stream(self.path) as stream:
            stream.write(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(text.encode(encoding))

    def open(self, mode: str = "rb") -> Any:
        if mode != "rb":
            raise ValueError(f"{self}: only binary reading is supported ({mode!r})")
        return self.fs.open_input_stream(self.path)

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.delete_file(self.path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def remove_tree(self) -> None:
        """Delete the folder and everything under it (nothing when it is not there)."""
        try:
            self.fs.delete_dir(self.path)
        except (FileNotFoundError, OSError):
            for child, _ in self.files():  # some stores refuse delete_dir on a bare prefix
                child.unlink(missing_ok=True)

    def copy_to(self, target: RemotePath) -> None:
        """A server-side copy where the store has one."""
        self.fs.copy_file(self.path, target.path)


Where = Path | RemotePath


def location(where: str | Path | RemotePath) -> Where:
    """A local folder (resolved) or a `RemotePath` for a URI."""
    if isinstance(where, RemotePath):
        return where
    if isinstance(where, Path) or not is_uri(where):
        text = str(where)
        return Path(text[len("file://"):] if text.startswith("file://") else text).resolve()
    parts = urlsplit(where)
    scheme = parts.scheme.lower()
    path = f"{parts.netloc}/{parts.path.strip('/')}".strip("/")
    if not parts.netloc:
        raise StorageError(f"{where}: no bucket or host in the URI; write it as "
                           f"{scheme}://BUCKET/PATH")
    return RemotePath(scheme, path, parts.query)


def arrow_path(path: Where) -> tuple[str, pafs.FileSystem | None]:
    """(path, filesystem) for pyarrow's readers and writers (`filesystem=None`: local)."""
    if isinstance(path, RemotePath):
        return path.path, path.fs
    return str(path), None


@lru_cache(maxsize=64)
def _checked(scheme: str, bucket: str, query: str, bucketed: bool) -> None:
    where = RemotePath(scheme, bucket, query)
    shown = f"{scheme}://{bucket}"
    try:
        kind = where.fs.get_file_info(bucket).type if bucketed else None
    except OSError as exc:
        reason = str(exc).split(";")[0].strip()
        raise StorageError(
            f"{shown}: the object store does not answer ({reason}); start it or set "
            "AWS_ENDPOINT_URL (or ?endpoint_override=HOST:PORT&scheme=http in the URI) and "
            "credentials, then rerun") from None
    if bucketed and kind == pafs.FileType.NotFound:
        raise StorageError(f"{shown}: bucket {bucket!r} does not exist; create it or pass "
                           f"--runs-dir {scheme}://EXISTING-BUCKET/PATH")


def check_reachable(where: Where) -> None:
    """For an object store: its endpoint answers and the bucket exists, else a one-line
    StorageError saying what to do. Checked once per bucket and process."""
    if isinstance(where, RemotePath):
        _checked(where.scheme, where.bucket, where.query, where.scheme in _BUCKETED)
