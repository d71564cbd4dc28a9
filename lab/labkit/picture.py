"""Pictures the lab brings home: a binary PGM (what salt/cluster/files/mpi/
mandel.c writes) checked strictly and turned into a PNG any browser shows,
in the standard library only (zlib and struct)."""

import re
import struct
import zlib

from labkit.base import LabError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# P5, width, height, maxval, each after whitespace, then exactly one
# whitespace byte before the pixels (netpbm's layout; no comments: mandel
# writes none)
_PGM_HEADER = re.compile(rb"(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s")


def parse_pgm(data):
    """(width, height, pixels) of a binary 8-bit PGM: magic P5, a positive
    width and height, maxval 255, then exactly width x height bytes.
    Anything else is refused with a LabError that names what is wrong."""
    head = _PGM_HEADER.match(data)
    if not data.startswith(b"P5"):
        raise LabError(f"not a binary PGM: the file starts with {data[:2]!r}, not P5")
    if not head:
        raise LabError(f"PGM header incomplete: want 'P5 width height 255' and a whitespace byte, got {data[:40]!r}")
    magic, *fields = head.groups()
    if magic != b"P5":
        raise LabError(f"not a binary PGM: magic {magic[:10]!r}, not P5")
    numbers = []
    for what, field in zip(("width", "height", "maxval"), fields):
        if not field.isdigit() or int(field) == 0:
            raise LabError(f"PGM {what} {field[:20].decode(errors='replace')!r} is not a positive whole number")
        numbers.append(int(field))
    width, height, maxval = numbers
    if maxval != 255:
        raise LabError(f"PGM maxval {maxval}: only 255 (one byte a pixel) is taken")
    pixels = data[head.end() :]
    if len(pixels) != width * height:
        raise LabError(f"PGM of {width}x{height} needs {width * height} bytes of pixels, the file has {len(pixels)}")
    return width, height, pixels


def _chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_grey(width, height, pixels):
    """A PNG of an 8-bit greyscale image: PIXELS are its rows, top first,
    WIDTH bytes each."""
    if len(pixels) != width * height:
        raise LabError(f"{width}x{height} grey pixels are {width * height} bytes, not {len(pixels)}")
    rows = b"".join(b"\x00" + pixels[y * width : (y + 1) * width] for y in range(height))  # filter 0: none
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8 bits, greyscale, deflate, no interlace
    return PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(rows, 9)) + _chunk(b"IEND", b"")


def pgm_to_png(data):
    """The PNG of the binary PGM DATA (see parse_pgm for what is taken)."""
    return png_grey(*parse_pgm(data))
