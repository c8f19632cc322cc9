"""Prints every value of every Parquet file under a directory, decompressed, one row per line.

Usage: parquet_text.py ROOT

For checks that some text is nowhere in the stored data: Parquet pages are compressed, so the
raw bytes of the files do not show it. Prints the number of files on the first line.
"""

import json
import pathlib
import sys

import pyarrow.parquet as pq

files = sorted(pathlib.Path(sys.argv[1]).rglob("*.parquet"))
print(len(files))
for path in files:
    for row in pq.read_table(path).to_pylist():
        print(json.dumps(row, default=str, ensure_ascii=False))
