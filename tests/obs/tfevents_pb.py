#!/usr/bin/python3
"""Second, independent check of our TensorBoard event files: decode every record with Google's
protobuf runtime (Debian python3-protobuf) using Event / Summary descriptors built here with
TensorFlow's field numbers (event.proto: wall_time=1 double, step=2 int64, file_version=3
string, summary=5; summary.proto: Summary.value=1 repeated, Value.tag=1 string,
Value.simple_value=2 float, in oneofs as there), check the scalars against EXPECT (same format as tfevents.py) and
that re-serialising each message gives back exactly our bytes (canonical encoding).

  tfevents_pb.py FILE EXPECT.json [--starts S1,S2]   exit 0 ok, 1 mismatch, 77 protobuf not installed
  (--starts: the steps of the SessionLog START events a resumed run writes, in order)"""
import json, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tfevents import read_records, same  # framing + CRC (own code); decoding below is protobuf's

try:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
except ImportError:
    print("python3-protobuf not installed: skipped")
    sys.exit(77)

F = descriptor_pb2.FieldDescriptorProto


def build():
    fd = descriptor_pb2.FileDescriptorProto(name="tn_event_check.proto", package="tncheck", syntax="proto3")
    summ = fd.message_type.add(name="Summary")
    val = summ.nested_type.add(name="Value")
    val.field.add(name="tag", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    val.oneof_decl.add(name="value")  # as in summary.proto: simple_value has presence
    val.field.add(name="simple_value", number=2, type=F.TYPE_FLOAT, label=F.LABEL_OPTIONAL, oneof_index=0)
    summ.field.add(name="value", number=1, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
                   type_name=".tncheck.Summary.Value")
    sl = fd.message_type.add(name="SessionLog")  # event.proto: status=1 enum (START = 1)
    sl.field.add(name="status", number=1, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    ev = fd.message_type.add(name="Event")
    ev.field.add(name="wall_time", number=1, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    ev.field.add(name="step", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    ev.oneof_decl.add(name="what")  # as in event.proto
    ev.field.add(name="file_version", number=3, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL, oneof_index=0)
    ev.field.add(name="summary", number=5, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                 type_name=".tncheck.Summary", oneof_index=0)
    ev.field.add(name="session_log", number=6, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                 type_name=".tncheck.SessionLog", oneof_index=0)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    desc = pool.FindMessageTypeByName("tncheck.Event")
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory(pool).GetPrototype(desc)


def main(path, expect, starts=None):
    Event = build()
    got_starts = []
    recs = read_records(path)
    got = []
    for k, r in enumerate(recs):
        e = Event()
        e.ParseFromString(r)
        if e.SerializeToString() != r:
            print("record %d: protobuf re-encoding differs from our bytes" % k)
            return 1
        if k == 0 and e.file_version != "brain.Event:2":
            print("first record: file_version %r" % e.file_version)
            return 1
        for v in e.summary.value:
            got.append((e.step, v.tag, v.simple_value))
        if e.HasField("session_log"):
            if e.session_log.status != 1:
                print("record %d: session_log status %d, expected START (1)" % (k, e.session_log.status))
                return 1
            got_starts.append(e.step)
    if starts is not None and got_starts != starts:
        print("SessionLog START steps %r, expected %r" % (got_starts, starts))
        return 1
    exp = json.load(open(expect))
    if len(got) != len(exp):
        print("expected %d scalars, protobuf decoded %d" % (len(exp), len(got)))
        return 1
    for k, ((gs, gt, gv), (es, et, ev)) in enumerate(zip(got, exp)):
        if gs != es or gt != et or not same(gv, ev):
            print("scalar %d: got (%r, %r, %r), expected (%r, %r, %r)" % (k, gs, gt, gv, es, et, ev))
            return 1
    print("ok: protobuf decoded %d records, %d scalars match" % (len(recs), len(got)))
    return 0


if __name__ == "__main__":
    st = None
    if len(sys.argv) > 3:  # --starts 5,9: the steps of the SessionLog START events
        st = [int(x) for x in sys.argv[4].split(",") if x]
    sys.exit(main(sys.argv[1], sys.argv[2], st))
