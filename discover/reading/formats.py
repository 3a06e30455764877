"""What kind of file an input is, from its first bytes: the one answer every reader asks.

Formats are told by content, never by the file name. Three readers used to decide this
each on its own and disagreed: `sources.py` knew four pcap magics, `pcap_format.py` six
(a pcap of Alexey Kuznetsov's patched libpcap, magic 0xA1B2CD34, passed one and was "not
a pcap" to the other), and `flowfiles.py` looked for Parquet's "PAR1" by itself.

Kuznetsov's format is read: libpcap reads it too (sf-pcap.c), its records are a normal
pcap record header followed by 8 more bytes (`struct pcap_sf_patched_pkthdr`: interface
index, protocol, packet type, padding), microsecond timestamps.
"""

from __future__ import annotations

from pathlib import Path

from discover.errors import ReadError

GZIP_MAGIC = b"\x1f\x8b"  # a gzipped capture or Hubble file: read through transparently
PARQUET_MAGIC = b"PAR1"
PCAPNG_SHB = 0x0A0D0D0A
# The magic as read little-endian -> (byte order, ticks a second, record header length).
PCAP_MAGICS: dict[int, tuple[str, float, int]] = {
    0xA1B2C3D4: ("<", 1e6, 16),
    0xD4C3B2A1: (">", 1e6, 16),
    0xA1B23C4D: ("<", 1e9, 16),
    0x4D3CB2A1: (">", 1e9, 16),
    # Kuznetsov's patched libpcap: 8 more bytes a record (ifindex, protocol, type, pad).
    0xA1B2CD34: ("<", 1e6, 24),
    0x34CDB2A1: (">", 1e6, 24),
}
SNIFF_BYTES = 4096
_JSON_WHITESPACE = b" \t\r\n"
_UTF8_BOM = b"\xef\xbb\xbf"


def capture_kind(head: bytes) -> str | None:
    """'pcap', 'pcapng' or None, from a capture's (decompressed) first four bytes."""
    if len(head) < 4:
        return None
    magic = int.from_bytes(head[:4], "little")
    if magic in PCAP_MAGICS:
        return "pcap"
    if magic == PCAPNG_SHB:
        return "pcapng"
    return None


def is_parquet(head: bytes) -> bool:
    return head[:4] == PARQUET_MAGIC


def sniff_input(path: Path) -> str:
    """An input of the traffic commands: "pcap", "pcapng", "pcap.gz", "summary", "hubble"
    or "hubble.gz", from its first (decompressed) bytes; ReadError otherwise."""
    # Imported here: the Hubble reader is only needed for files that could be Hubble's.
    from discover.reading.hubble import gzip_head, looks_like_hubble

    try:
        with open(path, "rb") as stream:
            head = stream.read(SNIFF_BYTES)
    except OSError as error:
        raise ReadError(str(path), f"cannot open: {error.strerror or error}") from error
    kind = capture_kind(head)
    if kind is not None:
        return kind
    if head[:2] == GZIP_MAGIC:
        return "hubble.gz" if looks_like_hubble(gzip_head(path, SNIFF_BYTES)) else "pcap.gz"
    if looks_like_hubble(head):
        return "hubble"  # one JSON flow a line, as `hubble observe -o json` writes
    if head.removeprefix(_UTF8_BOM).lstrip(_JSON_WHITESPACE)[:1] == b"{":
        return "summary"
    shown = head[:4].hex() or "nothing (empty file)"
    raise ReadError(
        str(path),
        f"not a pcap, pcapng, netpol-discover summary or Hubble flow file (starts with {shown})",
    )
