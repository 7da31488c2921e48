"""The fuzz corpus shared by the HTTP, SageMaker-handler and (by shape) MLServer robustness tests.

``cases(rng)`` yields ``(label, body)`` pairs: invalid JSON (truncated, mutated, random bytes, deep
nesting), every field with every wrong type, ``k`` at and beyond its bounds, odd unicode and invalid
UTF-8, oversized inputs (100k-item sessions, 10 MB bodies), and valid-but-odd requests.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

ODD_STRINGS = [
    "",
    " ",
    "\u0000",
    "\u200b",
    "\u202e\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "\U0001f600\U0001f469\u200d\U0001f4bb",
    "e\u0301",
    "\ufeff",
    "\uffff",
    "\U0010ffff",
    "sku1\n",
    "../../etc/passwd",
    "'; drop table items; --",
    "<script>alert(1)</script>",
    "%s%n%x",
    "\\",
    '"',
    "sku1",
    "sku2",
]
ODD_VALUES = [None, True, False, 0, -1, 1.5, 1e308, -0.0, "", "10", [], {}, [[]], {"a": 1}, [None], 10**18]


def _json(obj) -> bytes:
    return json.dumps(obj).encode()


def cases(rng: random.Random) -> Iterator[tuple[str, bytes]]:
    """(label, body) pairs: invalid JSON, wrong types, bad k, odd unicode, huge inputs, odd-but-valid."""
    valid = json.dumps({"session": ["sku1", "sku2"], "k": 5}).encode()
    # invalid JSON: truncations of a valid body, random bytes, random printable junk
    for i in range(1, len(valid)):
        yield "truncated", valid[:i]
    for _ in range(300):
        yield "random-bytes", bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))
    for _ in range(400):
        mutated = bytearray(valid)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(mutated))
            op = rng.random()
            if op < 0.4:
                mutated[pos] = rng.getrandbits(8)
            elif op < 0.7:
                del mutated[pos]
            else:
                mutated.insert(pos, rng.choice(b'{}[]",:0-9\\ \x00\xff'))
        yield "mutated", bytes(mutated)
    for _ in range(200):
        yield (
            "random-text",
            "".join(rng.choice('{}[]":,0123456789.eE+-tfnul "\\') for _ in range(rng.randint(1, 40))).encode(),
        )
    for raw in [
        b"",
        b" ",
        b"\n",
        b"\xef\xbb\xbf{}",
        b"\x00",
        b"NaN",
        b"Infinity",
        b'{"session": [NaN]}',
        b"{'session': []}",
    ]:
        yield "invalid-json", raw
    yield "deep-nesting", b"[" * 100_000 + b"]" * 100_000
    yield "deep-object", b'{"a":' * 10_000 + b"1" + b"}" * 10_000
    # wrong types for every field
    for field in ("session", "sessions", "k", "exclude_seen"):
        for value in ODD_VALUES:
            body = {"session": ["sku1"]}
            body[field] = value
            yield f"type-{field}", _json(body)
    for value in ODD_VALUES:
        yield "type-body", _json(value)
        yield "type-sku", _json({"session": ["sku1", value]})
        yield "type-batch-entry", _json({"sessions": [["sku1"], value]})
    # k at and beyond its bounds
    for k in [0, -1, -(10**9), 10**9, 10**30, 1001, 1000, 1, 2**63, 2**64, 1e9, 0.5, "1e9"]:
        yield "k", _json({"session": ["sku1"], "k": k})
    # odd unicode SKUs, keys and raw encodings
    for _ in range(300):
        session = [
            rng.choice(ODD_STRINGS) + chr(rng.randint(0x20, 0x10FFFF) & ~0x800) for _ in range(rng.randint(0, 6))
        ]
        yield (
            "unicode",
            json.dumps({"session": session, "k": rng.randint(1, 30)}, ensure_ascii=rng.random() < 0.5).encode(),
        )
    for raw in [
        b'{"session": ["\\ud800"]}',
        b'{"session": ["\\udfff\\ud800"]}',
        b'{"session": ["\xff\xfe"]}',
        b'{"session": ["\xc0\xaf"]}',
        b'{"session": ["\xed\xa0\x80"]}',
        b'{"\\ud83d": 1}',
        '{"séssion": ["sku1"]}'.encode(),
        '{"session": ["sku1"], "k": ５}'.encode(),
    ]:
        yield "raw-unicode", raw
    # unknown SKUs only (valid: popular items), empty sessions, duplicates, batches
    for n in (1, 5, 50):
        yield "unknown-only", _json({"session": [f"nope-{i}" for i in range(n)]})
    yield "empty-session", _json({"session": []})
    yield "duplicates", _json({"session": ["sku1"] * 30, "exclude_seen": False})
    yield "batch-odd", _json({"sessions": [[], ["nope"], ["sku1", 7]], "k": 3})
    # sizes: long sessions, many sessions, long SKUs, 100k items, bodies over the limit
    yield "session-100k", _json({"session": ["sku1"] * 100_000})
    yield "session-100k-ints", _json({"session": list(range(100_000))})
    yield "batch-2k", _json({"sessions": [["sku1"]] * 2000})
    yield "long-sku", _json({"session": ["x" * 100_000]})
    yield "body-10mb", _json({"session": ["x" * 1000] * 10_000})
    yield "body-10mb-junk", b"{" + b" " * (10 << 20) + b"}"
