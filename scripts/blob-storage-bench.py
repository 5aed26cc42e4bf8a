#!/usr/bin/env python3
# Store and load one fast-mnist result-sized blob (12.9 MB) 20 times: a file in a folder (write to
# a temporary name, fsync, rename; read back) against a bytea row in PostgreSQL over loopback.
# Why a fleet keeps its blobs in a shared folder: `pip install psycopg2-binary`, then
# `scripts/blob-storage-bench.py postgresql://USER@HOST:PORT/DB`.
import os, sys, tempfile, time, psycopg2, statistics
size = 12_900_000
blob = os.urandom(size)
folder = tempfile.mkdtemp()
def file_round(i):
    t0 = time.perf_counter()
    tmp = f"{folder}/.r{i}.partial"
    with open(tmp, "wb") as f:
        f.write(blob); f.flush(); os.fsync(f.fileno())
    os.rename(tmp, f"{folder}/r{i}.bin")
    t1 = time.perf_counter()
    with open(f"{folder}/r{i}.bin", "rb") as f: data = f.read()
    t2 = time.perf_counter()
    assert data == blob
    return t1 - t0, t2 - t1
conn = psycopg2.connect(sys.argv[1] if len(sys.argv) > 1 else "postgresql://localhost/postgres")
cur = conn.cursor()
cur.execute("DROP TABLE IF EXISTS blobbench; CREATE TABLE blobbench (id INT PRIMARY KEY, bytes BYTEA NOT NULL)")
conn.commit()
def db_round(i):
    t0 = time.perf_counter()
    cur.execute("INSERT INTO blobbench VALUES (%s, %s)", (i, psycopg2.Binary(blob))); conn.commit()
    t1 = time.perf_counter()
    cur.execute("SELECT bytes FROM blobbench WHERE id = %s", (i,)); data = bytes(cur.fetchone()[0])
    t2 = time.perf_counter()
    assert data == blob
    return t1 - t0, t2 - t1
for name, fn in [("folder", file_round), ("postgres_bytea", db_round)]:
    runs = [fn(i) for i in range(20)]
    print(f"{name}_store_ms: {statistics.median(r[0] for r in runs)*1000:.1f} ms")
    print(f"{name}_load_ms: {statistics.median(r[1] for r in runs)*1000:.1f} ms")
cur.execute("SELECT pg_total_relation_size('blobbench')"); print(f"postgres_bytes_on_disk_per_blob: {cur.fetchone()[0]/20/1e6:.1f} MB")
cur.execute("DROP TABLE blobbench"); conn.commit()
for name in os.listdir(folder): os.remove(os.path.join(folder, name))
os.rmdir(folder)
