"""Opening a data file as text: what kind of file it is, compression by suffix, encoding.

A path that is not a regular file (a folder, FIFO, device) is named as such and
never opened; `.gz` and `.zst` are decompressed as they stream; a BOM picks
UTF-8/16/32, the source's `encoding:` any other, and a file that looks
compressed or UTF-16 without saying so is an error naming what to do.
"""

from __future__ import annotations

import codecs
import gzip
import io
import os
import re
import stat
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from distill_core.errors import IngestError
from distill_core.ingest.sources import FileSource, compression_of

_SNIFF_BYTES = 1 << 16

# Byte-order marks, longest first (the UTF-32-LE mark starts like the UTF-16-LE one).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)
# What a compressed or archive file starts with, for a file whose name does not say so.
_MAGIC = (
    (b"\x1f\x8b", "gzip-compressed", "add the .gz suffix (train.csv.gz)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "add the .zst suffix (train.csv.zst)"),
    (b"\xfd7zXZ\x00", "xz-compressed", "decompress it first"),
    (b"PK\x03\x04", "a zip archive", "extract the data file from it"),
)
_BZIP2 = re.compile(rb"BZh[1-9]1AY&SY")


def check_data_file(path: Path) -> None:
    """IngestError unless `path` is a regular file (following links); never opens it.

    A FIFO would block a reader and /dev/zero would never end, so both are named, not read.
    """
    link = f" (a link to {os.path.realpath(path)})" if os.path.islink(path) else ""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise IngestError(f"{path}: file not found{link}") from None
    except OSError as exc:
        raise IngestError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        kind = "a directory"
    elif stat.S_ISFIFO(mode):
        kind = "a FIFO"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "a device"
    elif stat.S_ISSOCK(mode):
        kind = "a socket"
    else:
        kind = "a special file"
    raise IngestError(f"{path}{link}: is {kind}, not a data file; point `path` at a regular file")


def _open_bytes(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed when its suffix says so."""
    compression = compression_of(path)
    try:
        if compression == "gzip":
            return gzip.open(path, "rb")
        if compression == "zstd":
            import pyarrow as pa

            return pa.input_stream(str(path), compression="zstd")
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise IngestError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _choose_encoding(path: Path, source: FileSource, head: bytes) -> str:
    """The codec to read the file with, from the `encoding` option or the first bytes."""
    for magic, what, advice in _MAGIC:
        if head.startswith(magic):
            raise IngestError(f"{path}: the file is {what} but its name does not say so; {advice}")
    if _BZIP2.match(head):
        raise IngestError(f"{path}: the file is bzip2-compressed; decompress it first")
    if source.encoding is not None:
        codec = codecs.lookup(source.encoding).name
        return "utf-8-sig" if codec == "utf-8" else source.encoding
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return codec
    nuls = head.count(0)
    if nuls and nuls * 8 >= len(head):
        odd = head[1::2].count(0)
        if odd * 4 >= nuls * 3:
            guess = "UTF-16 little-endian text without a byte-order mark"
            option = "encoding: utf-16-le"
        elif (nuls - odd) * 4 >= nuls * 3:
            guess = "UTF-16 big-endian text without a byte-order mark"
            option = "encoding: utf-16-be"
        else:
            guess = "binary data or text in a wide encoding"
            option = "encoding: <its encoding>"
        raise IngestError(
            f"{path}: {nuls} of the first {len(head)} bytes are NUL: this looks like {guess}, "
            f"not UTF-8. Save the file as UTF-8, or set `{option}` on this file source")
    return "utf-8-sig"


def text_lines(path: Path, source: FileSource, newline: str) -> Iterator[str]:
    """The decoded lines of a text file, CRLF read as LF.

    `newline=""` splits at LF, CR and CRLF like the csv module expects; `newline="\n"`
    splits at LF only.
    """
    check_data_file(path)
    with _open_bytes(path) as probe:
        head = _read_or_fail(path, probe, _SNIFF_BYTES)
    encoding = _choose_encoding(path, source, head)
    with _open_bytes(path) as handle:
        stream = io.TextIOWrapper(handle, encoding=encoding, errors="surrogateescape",  # type: ignore[arg-type]
                                  newline=newline)
        first = True
        try:
            for line in stream:
                if first:
                    line = line.removeprefix("\ufeff")  # a BOM the chosen codec kept
                    first = False
                yield line[:-2] + "\n" if line.endswith("\r\n") else line
        except UnicodeDecodeError as exc:
            raise IngestError(f"{path}: cannot be read as {encoding} ({exc}); set `encoding:` "
                              "on this file source to the file's encoding") from None
        except (OSError, EOFError, zlib.error, ValueError) as exc:
            raise IngestError(f"{path}: cannot be decompressed or read ({exc})") from None


def _read_or_fail(path: Path, handle: IO[bytes], size: int) -> bytes:
    try:
        return handle.read(size)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise IngestError(f"{path}: cannot be decompressed or read ({exc})") from None
