"""The marker guest: a 512-byte boot sector, assembled here, that proves a boot end to end.

The KVM probe boots it (a host whose KVM cannot run BIOS disk services prints nothing), and
the tests boot it as their guest (tests/guests/build.py writes it to a disk image).

On every boot it reads its disk's second sector, adds one to the boot counter kept in that
sector's first byte, writes it back (BIOS int 13h), then writes `MARKER_TEXT` and the counter
to the first serial port on a line of its own (`chute-marker boot 1`). Then it halts, or, in
the `poweroff` variant, powers the machine off through the ACPI PM1a control port that SeaBIOS
sets up on QEMU's i440fx and q35 machines (0x604, SLP_EN with sleep type 0 = S5).

So a test learns from the console that the guest ran, from the counter how many times it
booted from the same disk, and from the base image that the counter went to the overlay.
TCG boots it in well under a second here: no nasm needed, the bytes are assembled below.
"""

from __future__ import annotations

import struct
from pathlib import Path

MARKER_TEXT = b"chute-marker boot "
POWEROFF_FLAG_OFFSET = 0x1B0  # 1: power off after the marker, 0: halt (before the MBR fields)
PARTITION_ENTRY = 0x1BE  # the first MBR partition entry
DISK_SECTORS = 2048  # 1 MiB: SeaBIOS does not boot a disk of a single sector
ORIGIN = 0x7C00
COUNTER_BUFFER = 0x7E00  # the sector after the boot sector, in memory


class _Asm:
    """Just enough of an assembler: bytes, and 8-bit jumps and 16-bit addresses to labels."""

    def __init__(self) -> None:
        self.code = bytearray()
        self.labels: dict[str, int] = {}
        self.rel8: list[tuple[int, str]] = []
        self.abs16: list[tuple[int, str, int]] = []

    def emit(self, *data: int | tuple[str, int]) -> None:
        """Bytes; a (label, addend) pair stands for the label's 16-bit address."""
        for item in data:
            if isinstance(item, tuple):
                self.address(*item)
            else:
                self.code.append(item)

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def jump8(self, opcode: int, target: str) -> None:
        self.emit(opcode, 0)
        self.rel8.append((len(self.code) - 1, target))

    def address(self, target: str, addend: int) -> None:
        self.emit(0, 0)
        self.abs16.append((len(self.code) - 2, target, addend))

    def link(self) -> bytes:
        for at, target in self.rel8:
            delta = self.labels[target] - (at + 1)
            assert -128 <= delta <= 127, target
            self.code[at] = delta & 0xFF
        for at, target, addend in self.abs16:
            value = ORIGIN + self.labels[target] + addend
            self.code[at:at + 2] = value.to_bytes(2, "little")
        return bytes(self.code)


def boot_sector(poweroff: bool = False) -> bytes:
    a = _Asm()
    a.emit(0xFA, 0x31, 0xC0, 0x8E, 0xD8, 0x8E, 0xC0, 0x8E, 0xD0)  # cli; ds = es = ss = 0
    a.emit(0xBC, 0x00, 0x7C, 0xFB)  # mov sp, 0x7c00; sti
    a.emit(0x88, 0x16, ("drive", 0))  # mov [drive], dl (the BIOS boot drive)
    for ah in (0x02, 0x03):                           # read, then write, sector 2 of cylinder 0
        if ah == 0x03:
            a.emit(0xFE, 0x06, 0x00, 0x7E)            # inc byte [0x7e00]: the boot counter
        a.emit(0xB8, 0x01, ah)                        # mov ax, ah:01 (one sector)
        a.emit(0xB9, 0x02, 0x00)                      # mov cx, 2 (cylinder 0, sector 2)
        a.emit(0xB6, 0x00)                            # mov dh, 0 (head 0)
        a.emit(0x8A, 0x16, ("drive", 0))        # mov dl, [drive]
        a.emit(0xBB, 0x00, 0x7E)                      # mov bx, 0x7e00
        a.emit(0xCD, 0x13)                            # int 13h
    a.emit(0xA0, 0x00, 0x7E)  # mov al, [0x7e00]
    a.emit(0x04, 0x30)  # add al, '0'
    a.emit(0xA2, ("message", 2 + len(MARKER_TEXT)))  # the digit after the text
    a.emit(0xBE, ("message", 0))  # mov si, message
    a.emit(0xBA, 0xF8, 0x03)  # mov dx, 0x3f8 (COM1)
    a.label("print")
    a.emit(0xAC, 0x84, 0xC0)  # lodsb; test al, al
    a.jump8(0x74, "printed")                          # jz printed
    a.emit(0xEE)  # out dx, al
    a.jump8(0xEB, "print")
    a.label("printed")
    a.emit(0x80, 0x3E, ("flag", 0), 0x01)  # cmp byte [flag], 1
    a.jump8(0x75, "halt")
    a.emit(0xBA, 0x04, 0x06, 0xB8, 0x00, 0x20, 0xEF)  # mov dx, 0x604; mov ax, 0x2000; out
    a.label("halt")
    a.emit(0xFA, 0xF4)  # cli; hlt
    a.jump8(0xEB, "halt")
    a.label("drive")
    a.emit(0x00)
    a.label("message")
    a.emit(ord("\r"), ord("\n"), *MARKER_TEXT, ord("?"), ord("\r"), ord("\n"), 0)
    # The flag lives at a fixed offset so the two variants differ in one byte only.
    a.labels["flag"] = POWEROFF_FLAG_OFFSET
    code = a.link()
    assert len(code) <= POWEROFF_FLAG_OFFSET, "boot sector code overflows into the flag"
    sector = bytearray(512)
    sector[:len(code)] = code
    sector[POWEROFF_FLAG_OFFSET] = 1 if poweroff else 0
    # One Linux partition after the counter sector: an MBR without any is refused by the
    # image service's safety checks (oslo.utils' GPT inspector), as Glance refuses it.
    sector[PARTITION_ENTRY:PARTITION_ENTRY + 16] = struct.pack(
        "<B3sB3sII", 0x00, b"\x00\x03\x00", 0x83, b"\xfe\xff\xff", 2, DISK_SECTORS - 2)
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


def write_disk(path: Path | str, size: int = DISK_SECTORS * 512, poweroff: bool = False
               ) -> Path:
    """A raw disk: the boot sector, then zeros (the counter sector starts at 0), sparse."""
    with open(path, "wb") as f:
        f.write(boot_sector(poweroff))
        f.truncate(size)
    return Path(path)


def boots_seen(console: str) -> list[int]:
    """The boot counters the guest printed, in order (`chute-marker boot N` lines)."""
    text = MARKER_TEXT.decode()
    return [int(line.split(text, 1)[1][:1]) for line in console.splitlines()
            if text in line and line.split(text, 1)[1][:1].isdigit()]
