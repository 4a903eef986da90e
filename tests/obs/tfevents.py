#!/usr/bin/python3
"""Independent reader of TensorBoard event files, written from the format spec (no tensorboard
package on Debian 12): TFRecord framing (u64 length, masked CRC32C of the length, data, masked
CRC32C of the data, little-endian) around protobuf Event messages, decoded by hand.

  tfevents.py FILE                      print the decoded events as JSON
  tfevents.py FILE --expect EXP.json    check the scalars: EXP is [[step, tag, value], ...] in
                                        file order (value null for NaN, "inf"/"-inf" strings)
  tfevents.py --selftest                check the CRC32C code against the published check value
Exit status 0 when everything checks out."""
import json, math, struct, sys


def crc32c(data: bytes) -> int:
    # bitwise, reflected Castagnoli polynomial 0x82F63B78 (RFC 3720 B.4), no table
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, i
        if shift > 63:
            raise ValueError("varint too long")


def fields(buf):
    """Yield (field number, wire type, value) of one protobuf message."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(buf, i)
        elif wt == 1:
            v = buf[i:i + 8]; i += 8
        elif wt == 2:
            n, i = varint(buf, i)
            v = buf[i:i + n]; i += n
            if i > len(buf):
                raise ValueError("length-delimited field past the end")
        elif wt == 5:
            v = buf[i:i + 4]; i += 4
        else:
            raise ValueError("unsupported wire type %d" % wt)
        yield num, wt, v


def decode_event(buf):
    ev = {"step": 0, "values": []}
    for num, wt, v in fields(buf):
        if num == 1 and wt == 1:
            ev["wall_time"] = struct.unpack("<d", v)[0]
        elif num == 2 and wt == 0:
            ev["step"] = v - (1 << 64) if v >= (1 << 63) else v  # int64 two's complement
        elif num == 3 and wt == 2:
            ev["file_version"] = v.decode()
        elif num == 5 and wt == 2:
            for sn, swt, sv in fields(v):
                if sn != 1 or swt != 2:
                    raise ValueError("unexpected Summary field %d" % sn)
                val = {}
                for vn, vwt, vv in fields(sv):
                    if vn == 1 and vwt == 2:
                        val["tag"] = vv.decode("utf-8")
                    elif vn == 2 and vwt == 5:
                        val["simple_value"] = struct.unpack("<f", vv)[0]
                    else:
                        raise ValueError("unexpected Value field %d" % vn)
                ev["values"].append(val)
        elif num == 6 and wt == 2:  # session_log: SessionLog.status = 1 (START)
            for sn, swt, sv in fields(v):
                if sn != 1 or swt != 0 or sv != 1:
                    raise ValueError("unexpected SessionLog field %d value %r" % (sn, sv))
            ev["session_start"] = True
        else:
            raise ValueError("unexpected Event field %d wire %d" % (num, wt))
    return ev


def read_records(path):
    data = open(path, "rb").read()
    i, out = 0, []
    while i < len(data):
        if len(data) - i < 12:
            raise ValueError("truncated record header at byte %d" % i)
        hdr = data[i:i + 8]
        (n,) = struct.unpack("<Q", hdr)
        (lcrc,) = struct.unpack("<I", data[i + 8:i + 12])
        if lcrc != masked(crc32c(hdr)):
            raise ValueError("length CRC mismatch at byte %d" % i)
        body = data[i + 12:i + 12 + n]
        if len(body) != n or len(data) < i + 16 + n:
            raise ValueError("truncated record at byte %d" % i)
        (dcrc,) = struct.unpack("<I", data[i + 12 + n:i + 16 + n])
        if dcrc != masked(crc32c(body)):
            raise ValueError("data CRC mismatch at byte %d" % i)
        out.append(body)
        i += 16 + n
    return out


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def same(a, b):
    if b is None:
        return math.isnan(a)
    if b in ("inf", "-inf"):
        return a == float(b)
    return a == f32(b)


def main(argv):
    if argv[1:] == ["--selftest"]:
        assert crc32c(b"123456789") == 0xE3069283, hex(crc32c(b"123456789"))
        assert crc32c(b"") == 0
        assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4: 32 bytes of zeros
        assert crc32c(bytes([0xFF] * 32)) == 0x62A8AB43  # RFC 3720 B.4: 32 bytes of 0xff
        assert crc32c(bytes(range(32))) == 0x46DD794E  # RFC 3720 B.4: incrementing
        print("selftest ok")
        return 0
    events = [decode_event(r) for r in read_records(argv[1])]
    if not events or events[0].get("file_version") != "brain.Event:2":
        print("first event has no file_version brain.Event:2: %r" % (events[:1],))
        return 1
    for e in events:
        if not (1e9 < e.get("wall_time", 0) < 1e11):
            print("bad wall_time in %r" % e)
            return 1
    if len(argv) > 3 and argv[2] == "--expect":
        exp = json.load(open(argv[3]))
        got = [(e["step"], v["tag"], v["simple_value"]) for e in events[1:] for v in e["values"]]
        if len(got) != len(exp):
            print("expected %d scalars, file has %d" % (len(exp), len(got)))
            return 1
        for k, ((gs, gt, gv), (es, et, ev)) in enumerate(zip(got, exp)):
            if gs != es or gt != et or not same(gv, ev):
                print("scalar %d: got (%r, %r, %r), expected (%r, %r, %r)" % (k, gs, gt, gv, es, et, ev))
                return 1
        print("ok: %d records, %d scalars match" % (len(events), len(got)))
        return 0
    json.dump(events, sys.stdout, indent=1, default=str)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
