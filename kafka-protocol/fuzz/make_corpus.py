#!/usr/bin/python3
"""Writes the fuzz seed corpora under kafka-protocol/fuzz/corpus/ from the test vectors
(kafka-python encodings and batches). Re-run after regenerating the vectors:
  /usr/bin/python3 kafka-protocol/fuzz/make_corpus.py
"""
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(HERE, "..", "tests")


def rows(name):
    with open(os.path.join(TESTS, name)) as fh:
        for line in fh:
            m = re.match(r"\{(.*)\},$", line.strip())
            if m:
                yield [p.strip().strip('"') for p in m.group(1).split(",")]


def write(kind, fname, data):
    d = os.path.join(HERE, "corpus", kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, fname), "wb") as fh:
        fh.write(data)


def main():
    for key, ver, req, name, hexs in rows("kafka_python_vectors.inc"):
        prefix = bytes([int(key), int(ver), 0 if req == "true" else 1, 0])
        write("request_decode", name, prefix + bytes.fromhex(hexs))
    for name, magic, codec, _count, hexs in rows("kafka_python_batches.inc"):
        data = bytes.fromhex(hexs)
        if magic == "2":
            write("record_batch", name, b"\x00" + data)
            # The compressed records section, for the codec target.
            if codec != "0":
                write("decompress", name, bytes([int(codec)]) + data[61:])
        else:
            write("legacy_records", name, data)


if __name__ == "__main__":
    main()
