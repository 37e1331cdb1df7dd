#!/usr/bin/env python3
"""Writes the committed seed inputs under fuzz/seeds/<target>/ (run from anywhere).

The connection target's inputs are in the layout `arbitrary` 1.x decodes (see encode_* below);
check a seed with `cargo fuzz fmt connection seeds/connection/<file>`.
"""
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(HERE, "seeds")

# RFC 6455 §1.2 / §4.1: the client's opening handshake.
RFC_REQUEST = (
    b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
KEY = bytes([0x37, 0xFA, 0x21, 0x3D])


def masked(fin, opcode, payload, key=KEY, rsv=0):
    """A client frame (RFC 6455 §5.2), masked with `key`."""
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    n = len(payload)
    if n <= 125:
        head += bytes([0x80 | n])
    elif n <= 0xFFFF:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


FRAME_HEADER = {
    # §5.7 examples.
    "rfc-unmasked-text": bytes.fromhex("810548656c6c6f"),
    "rfc-masked-text": bytes.fromhex("818537fa213d7f9f4d5158"),
    "rfc-fragment-1": bytes.fromhex("010348656c"),
    "rfc-fragment-2": bytes.fromhex("80026c6f"),
    "rfc-ping": bytes.fromhex("890548656c6c6f"),
    "rfc-masked-pong": bytes.fromhex("8a8537fa213d7f9f4d5158"),
    "rfc-256-binary": bytes.fromhex("827e0100") + bytes(4),
    "rfc-64k-binary": bytes.fromhex("827f0000000000010000"),
    # Masked 16- and 64-bit lengths, a close, and the refusals.
    "masked-16": bytes.fromhex("82fe0100") + KEY,
    "masked-64": bytes.fromhex("82ff0000000000010000") + KEY,
    "masked-close": masked(True, 0x8, b"\x03\xe8bye"),
    "non-minimal-16": bytes.fromhex("827e007d"),
    "non-minimal-64": bytes.fromhex("827f000000000000ffff"),
    "top-bit": bytes.fromhex("82ff8000000000000000") + KEY,
    "unknown-opcode": bytes.fromhex("8380") + KEY,
    "fragmented-ping": bytes.fromhex("0980") + KEY,
    "long-ping": bytes.fromhex("89fe007e") + KEY,
    "rsv-bits": bytes.fromhex("f18037fa213d"),
}

UTF8 = {
    # First byte: the number of cuts (mod 8); then one byte per cut; then the text.
    "ascii": b"\x00Hello, world",
    "greek-cut": b"\x02\x03\x05" + "κόσμε".encode(),
    "emoji-every-byte": b"\x04\x01\x02\x03\x04" + "😀".encode(),
    "mixed": b"\x03\x07\x0b\x11" + "aé€😀ÿ 𐍈 中文".encode(),
    "max-code-point": b"\x01\x02" + b"\xf4\x8f\xbf\xbf",
    "above-max": b"\x01\x01" + b"\xf4\x90\x80\x80",
    "surrogate": b"\x01\x01" + b"\xed\xa0\x80",
    "overlong": b"\x00" + b"\xc0\xaf",
    "truncated-end": b"\x01\x02" + b"\xce\xba\xe1\xbd",
    "autobahn-6.4.3": b"\x02\x0b\x0f" + b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited",
    "lone-continuation": b"\x00ab\x80cd",
}


def replace(old, new):
    assert old in RFC_REQUEST
    return RFC_REQUEST.replace(old, new)


HANDSHAKE = {
    "rfc-request": RFC_REQUEST,
    "rfc-request-then-frame": RFC_REQUEST + masked(True, 0x1, b"Hello"),
    "minimal": b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    "case-and-tokens": replace(b"Connection: Upgrade", b"connection: keep-alive, UPGRADE"),
    "post": replace(b"GET", b"POST"),
    "http10": replace(b"HTTP/1.1", b"HTTP/1.0"),
    "no-key": replace(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", b""),
    "bad-key": replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"dGhlIHNhbXBsZQ=="),
    "version-8": replace(b"Version: 13", b"Version: 8"),
    "body": replace(b"\r\n\r\n", b"\r\nContent-Length: 5\r\n\r\nhello"),
    "two-versions": replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Version: 13\r\n\r\n"),
    "absolute-form": replace(b"GET /chat", b"GET ws://server.example.com/chat?room=1"),
    "two-keys": replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"),
    "page": b"GET /index.html?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
    "partial": b"GET /chat HTTP/1.1\r\nHost: x\r\n",
    "garbage": b"GARBAGE\r\n\r\n",
}


# The layout `arbitrary` 1.x reads (`Unstructured`): a bool is one byte (low bit), a u16 two
# bytes little-endian, an enum variant a u32 (little-endian) scaled as (x * count) >> 32, an
# Option a bool then the value, a Vec one "more" bool before each element and a false one
# after the last.
def enc_bool(b):
    return bytes([1 if b else 0])


def enc_u16(v):
    return v.to_bytes(2, "little")


def enc_variant(index, count):
    x = ((2 * index + 1) << 32) // (2 * count)
    assert (x * count) >> 32 == index
    return x.to_bytes(4, "little")


def enc_vec(items, enc):
    return b"".join(b"\x01" + enc(i) for i in items) + b"\x00"


def enc_bytes(data):
    return enc_vec(data, lambda b: bytes([b]))


OPS = ["Feed", "Frame", "Advance", "AdvanceToTimeout", "SendText", "SendBinary", "Ping", "Close",
       "Backlogged", "Refuse", "SendHeader"]
FRAME_OPS = ["Continuation", "Text", "Binary", "Close", "Ping", "Pong"]
BODIES = ["Bytes", "Text", "Close", "Fill"]


def op(name, *args):
    return (name, args)


def enc_payload(p):
    kind, value = p
    out = enc_variant(BODIES.index(kind), len(BODIES))
    if kind == "Close":
        code, reason = value
        return out + enc_u16(code) + enc_bytes(reason)
    if kind == "Fill":
        byte, length = value
        return out + bytes([byte]) + enc_u16(length)
    return out + enc_bytes(value)


def enc_op(o):
    name, args = o
    out = enc_variant(OPS.index(name), len(OPS))
    if name in ("Feed", "SendText", "SendBinary", "Ping", "SendHeader"):
        return out + enc_bytes(args[0])
    if name == "Frame":
        fin, rsv1, opcode, key, payload, cut = args
        return (out + enc_bool(fin) + enc_bool(rsv1)
                + enc_variant(FRAME_OPS.index(opcode), len(FRAME_OPS))
                + bytes(key) + enc_payload(payload) + bytes([cut]))
    if name == "Advance":
        return out + enc_u16(args[0])
    if name in ("AdvanceToTimeout", "Refuse"):
        return out
    if name == "Backlogged":
        return out + enc_bool(args[0])
    if name == "Close":
        code, reason = args
        return out + enc_u16(code) + enc_bytes(reason)
    raise ValueError(name)


def connection_input(start, websocket_path, ops, check_origin=False, max_tail=0):
    out = b"\x00" if start is None else b"\x01" + enc_bytes(start)
    return (out + enc_bool(websocket_path) + enc_bool(check_origin) + enc_u16(max_tail)
            + enc_vec(ops, enc_op))


def frame(opcode, payload, fin=True, cut=0, rsv1=False, key=KEY):
    return op("Frame", fin, rsv1, opcode, key, payload, cut)


CONNECTION = {
    # §5.7: a masked "Hello", a Ping answered by a Pong, then the peer's Close.
    "echo-and-close": connection_input(None, False, [
        frame("Text", ("Text", b"Hello"), cut=3),
        frame("Ping", ("Bytes", b"Hello")),
        frame("Close", ("Close", (1000, b"bye"))),
    ]),
    # §5.4: a fragmented text message with a Ping between its fragments.
    "fragments": connection_input(max_tail=16, start=None, websocket_path=True, ops=[
        frame("Text", ("Text", b"Hel"), fin=False),
        frame("Ping", ("Bytes", b"p"), cut=7),
        frame("Continuation", ("Text", b"lo"), cut=1),
        frame("Binary", ("Bytes", bytes(range(200))), cut=100),
    ]),
    # Raw bytes: the §5.7 masked frame, split inside the header.
    "raw-frames": connection_input(None, False, [
        op("Feed", bytes.fromhex("8185")),
        op("Feed", bytes.fromhex("37fa213d7f9f4d5158") + masked(True, 0x2, b"xyz")),
    ]),
    # Keepalive: a Ping is due, answered; the next one is not, and the connection times out.
    "keepalive": connection_input(None, False, [
        op("Advance", 3000),
        frame("Pong", ("Bytes", b"")),
        op("AdvanceToTimeout"),
        op("AdvanceToTimeout"),
        op("Advance", 100),
    ]),
    # The server sends and starts the closing handshake; the peer answers late.
    "server-close": connection_input(None, False, [
        op("SendText", "héllo".encode()),
        op("SendBinary", b"\x00\x01"),
        op("Ping", b"are you there"),
        op("SendHeader", b"header first"),
        op("Close", 0, b"going away"),
        op("SendText", b"refused"),
        frame("Text", ("Text", b"late")),
        frame("Ping", ("Bytes", b"still there?")),
        op("AdvanceToTimeout"),
        op("Advance", 2000),
    ]),
    # §10.4 limits: a message of four 1000-byte fragments, then one over max_message_size (4096)
    # whose fragments are each under max_frame_size (1024), then a frame over it.
    "limits": connection_input(None, False, [
        frame("Text", ("Fill", (ord("a"), 1000)), fin=False, cut=200),
        frame("Continuation", ("Fill", (ord("b"), 1000)), fin=False),
        frame("Ping", ("Fill", (ord("p"), 125))),
        frame("Continuation", ("Fill", (ord("c"), 1000)), fin=False),
        frame("Continuation", ("Fill", (ord("d"), 1000)), fin=True, cut=3),
        frame("Binary", ("Fill", (0, 1024)), fin=False),
        frame("Continuation", ("Fill", (1, 1024)), fin=False),
        frame("Continuation", ("Fill", (2, 1024)), fin=False),
        frame("Continuation", ("Fill", (3, 1024)), fin=False),
        frame("Continuation", ("Fill", (4, 1024)), fin=True),
    ]),
    # max_fragments (16): a message in 17 frames.
    "too-many-fragments": connection_input(None, False, [
        frame("Text", ("Text", b"0"), fin=False)] + [
        frame("Continuation", ("Text", b"%x" % i), fin=(i == 16)) for i in range(1, 17)]),
    "frame-too-big": connection_input(None, False, [
        frame("Binary", ("Fill", (0, 1025)), cut=6),
    ]),
    # An upgrade request with a body is refused.
    "body": connection_input(
        RFC_REQUEST.replace(b"\r\n\r\n", b"\r\nContent-Length: 2\r\n\r\nhi"), False, []),
    # Invalid UTF-8 arriving in the middle of a frame (Autobahn 6.4.3), then more input.
    "invalid-utf8": connection_input(None, False, [
        frame("Text", ("Bytes", b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited"), cut=17),
        op("Feed", masked(True, 0x1, b"ignored")),
        op("Advance", 2500),
    ]),
    # The handshake in two reads, then a frame in the same read as its end.
    "split-handshake": connection_input(RFC_REQUEST[:40], True, [
        op("Feed", RFC_REQUEST[40:] + masked(True, 0x1, b"early")),
        frame("Close", ("Bytes", b"")),
    ]),
    # The event loop's way: incomplete frames kept for the next read (max_tail 64), and Pings
    # while the peer does not read answered once, later.
    "event-loop": connection_input(max_tail=64, start=None, websocket_path=False, ops=[
        op("Feed", masked(True, 0x1, b"one") + masked(True, 0x2, b"two")[:5]),
        op("Feed", masked(True, 0x2, b"two")[5:] + masked(False, 0x1, b"thr")[:2]),
        op("Feed", masked(False, 0x1, b"thr")[2:] + masked(True, 0x0, b"ee")),
        op("Backlogged", True),
        frame("Ping", ("Bytes", b"1")),
        frame("Ping", ("Bytes", b"2"), cut=3),
        op("Backlogged", False),
        frame("Binary", ("Fill", (7, 300)), cut=100),
    ]),
    # Origins: only http://example.com may open.
    "origin": connection_input(
        RFC_REQUEST.replace(b"http://example.com", b"http://evil.example"), False, [],
        check_origin=True),
    # Refused before the handshake ends (the server is full).
    "refuse": connection_input(b"GET /chat HTTP/1.1\r\nHost: x\r\n", False, [
        op("Refuse"),
        op("Feed", b"\r\n"),
        op("Advance", 3000),
    ]),
    # A plain request for the page, then bytes that must be ignored.
    "page": connection_input(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", False, [
        op("Feed", b"more"),
        op("Advance", 2000),
    ]),
    # A refused handshake, and a handshake that never ends.
    "refused": connection_input(RFC_REQUEST.replace(b"Version: 13", b"Version: 8"), False, []),
    "slow-handshake": connection_input(b"GET /chat HTTP/1.1\r\n", False, [
        op("Advance", 4999),
        op("Feed", b"Host: x\r\n"),
        op("Advance", 1),
    ]),
}


def write(target, seeds):
    folder = os.path.join(SEEDS, target)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for name, data in seeds.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    write("frame_header", FRAME_HEADER)
    write("utf8", UTF8)
    write("handshake", HANDSHAKE)
    write("connection", CONNECTION)
