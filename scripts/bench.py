#!/usr/bin/env python3
"""The benchmark suite's whole-process measurements (see BENCHMARKS.md); run it through scripts/bench.sh.

Generates exports with ddb-pitr-gen, serves them over loopback S3 from ddb-bench-endpoint (which is also
the DynamoDB endpoint), and measures ddb-pitr restore with /usr/bin/time: CPU and wall time against
`gzip -dc` on one core, items/s and MB/s per core, peak RSS on a data file over 2 GB, a capped table at
5,000 and 20,000 WCU/s (sustained fraction of the cap, calls per 25 items, p99 batch wait), the cost of a
resume by checkpoint offset, and the time to first write. Several runs each; medians are reported.

Standard library only (the discovery part drives moto with the test venv's boto3, in subprocesses).
Prints a Markdown summary and writes every raw number to --out as JSON.
"""

import argparse
import glob
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The binaries measured; DDB_PITR_BENCH_BIN points at another build's folder to compare two builds.
BIN = Path(os.environ.get("DDB_PITR_BENCH_BIN", ROOT / "target" / "release"))
BUCKET = "bench"
# Logs of every process run, kept out of the summary.
LOG = Path(os.environ.get("TMPDIR", "/tmp")) / "ddb-pitr-bench.log"
ENV = dict(
    os.environ,
    AWS_ACCESS_KEY_ID="bench",
    AWS_SECRET_ACCESS_KEY="bench",
    AWS_REGION="us-east-1",
    AWS_EC2_METADATA_DISABLED="true",
)


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class Endpoint:
    """One ddb-bench-endpoint process: DynamoDB API and S3 reads of the generated exports."""

    def __init__(self, s3_root, wcu=None, extra=()):
        cmd = [str(BIN / "ddb-bench-endpoint"), "--s3-root", str(s3_root), "--table",
               "bench:pk:S:sk:S", "--count-only", *extra]
        if wcu:
            cmd += ["--wcu", str(wcu)]
        with open(LOG, "ab") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"ddb-bench-endpoint exited: {cmd}")
        self.url = json.loads(line)["endpoint"]

    def close(self):
        self.proc.terminate()
        self.proc.wait()


def timed(cmd, stdout=None, cpu=None, on_start=None):
    """Runs `cmd` under /usr/bin/time; returns wall, user, sys (s) and peak RSS (KB)."""
    tfile = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-time-{os.getpid()}"
    prefix = ["taskset", "-c", str(cpu)] if cpu is not None else []
    full = ["/usr/bin/time", "-f", "%e %U %S %M", "-o", str(tfile), *prefix, *cmd]
    with open(stdout or os.devnull, "wb") as out, open(LOG, "ab") as err:
        proc = subprocess.Popen(full, stdout=out, stderr=err, env=ENV)
        if on_start:
            on_start(proc)
        code = proc.wait()
    text = tfile.read_text().strip().splitlines()[-1]
    wall, user, sys_, rss = text.split()
    return {"code": code, "wall": float(wall), "user": float(user), "sys": float(sys_),
            "cpu": float(user) + float(sys_), "rss_kb": int(rss)}


def median(values):
    return statistics.median(values) if values else None


def generate(work, name, items, files, seed, item_size=None):
    """One FULL export under s3://bench/<name>-<items>/; reused when it already exists."""
    out = work / "s3" / BUCKET
    name = f"{name}-{items}"
    summaries = glob.glob(str(out / name / "AWSDynamoDB" / "*" / "manifest-summary.json"))
    if not summaries:
        cmd = [str(BIN / "ddb-pitr-gen"), "--out", str(out), "--items", str(items), "--files", str(files),
               "--incrementals", "0", "--big-items", "0", "--no-expected", "--seed", str(seed),
               "--bucket", BUCKET, "--prefix", name]
        if item_size:
            cmd += ["--item-size", item_size]
        log(f"generating {name}: {items} items in {files} files")
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        summaries = glob.glob(str(out / name / "AWSDynamoDB" / "*" / "manifest-summary.json"))
    export_dir = Path(summaries[0]).parent
    data = sorted(glob.glob(str(export_dir / "data" / "*.json.gz")))
    data = [d for d in data if os.path.getsize(d) > 20]
    uri = f"s3://{BUCKET}/{name}/AWSDynamoDB/{export_dir.name}/"
    return {"name": name, "uri": uri, "data": data, "items": items,
            "compressed": sum(os.path.getsize(d) for d in data)}


def decompressed_size(data):
    total = 0
    for d in data:
        p = subprocess.Popen(["gzip", "-dc", d], stdout=subprocess.PIPE)
        while chunk := p.stdout.read(1 << 20):
            total += len(chunk)
        p.wait()
    return total


def gzip_floor(dataset, runs):
    """`gzip -dc` of the same files, one process on one core."""
    results = [timed(["gzip", "-dc", *dataset["data"]], cpu=0) for _ in range(runs)]
    return {"cpu": median([r["cpu"] for r in results]), "wall": median([r["wall"] for r in results]),
            "runs": results}


def restore(endpoint, dataset, work, extra=(), resume=None, on_start=None, cpu=None):
    report = work / "report.json"
    cmd = [str(BIN / "ddb-pitr"), "restore", "--table", "bench", "--export", dataset["uri"],
           "--endpoint-url", endpoint.url, "--log-format", "json", *extra]
    if resume:
        cmd += ["--resume", str(resume)]
    t = timed(cmd, stdout=report, on_start=on_start, cpu=cpu)
    try:
        t["report"] = json.loads(report.read_text())
    except (OSError, ValueError) as e:
        raise RuntimeError(f"restore wrote no report ({e}); exit {t['code']}: {' '.join(cmd)}")
    return t


def end_to_end(args, work, dataset, label, extra=(), cpu=None):
    """Restore into the unlimited endpoint; CPU and wall against gzip -dc."""
    runs = []
    for i in range(args.runs):
        ep = Endpoint(work / "s3")
        try:
            r = restore(ep, dataset, work, extra, cpu=cpu)
        finally:
            ep.close()
        if r["code"] != 0 or r["report"]["status"] != "succeeded":
            raise RuntimeError(f"{label}: restore failed: {r['report'].get('errors')}")
        runs.append(r)
        log(f"{label} run {i + 1}: {r['wall']:.2f} s wall, {r['cpu']:.2f} s CPU, {r['rss_kb'] / 1024:.1f} MB")
    cpu_s = median([r["cpu"] for r in runs])
    wall = median([r["wall"] for r in runs])
    items = dataset["items"]
    mb = dataset["decompressed"] / 1e6
    return {"label": label, "cpu": cpu_s, "wall": wall, "rss_mb": max(r["rss_kb"] for r in runs) / 1024,
            "items_per_cpu_s": items / cpu_s, "mb_per_cpu_s": mb / cpu_s, "items_per_s": items / wall,
            "first_write_s": median([r["report"]["latency"]["first_write_seconds"] for r in runs]),
            "calls_per_25": median([r["report"]["writes"]["batch_write_requests"] / (items / 25) for r in runs]),
            "runs": [{k: v for k, v in r.items() if k != "report"} for r in runs]}


def large_items(args, work, dataset):
    """Items near DynamoDB's 400 KB limit into the unlimited endpoint: peak RSS at defaults, and with a batch
    budget large enough never to bind (what memory was before there was one)."""
    out = {}
    for label, extra in (("defaults", ()), ("batch budget unbounded", ("--batch-budget", "64GiB"))):
        out[label] = end_to_end(args, work, dataset, f"large items, {label}", extra)
    return out


def copies(args):
    """Exports whose objects lack DynamoDB's ETags (the endpoint's ETags never match a manifest's, like a copy's):
    the MD5 pre-pass before the first write (the default) against checking while writing (which costs what an
    object with DynamoDB's ETag costs), for ~600 B items in 8 files, 200 B items in one file, and items near
    400 KB.
    Interleaved runs, so that drift on the machine falls on both alike."""
    scale = 0.02 if args.quick else args.scale
    n = lambda x: max(1000, int(x * scale))
    shapes = (
        ("8 files of ~600 B items", generate(args.work, "multi", n(1_000_000), 8, 11)),
        ("one file of 200 B items", generate(args.work, "copies200", n(2_000_000), 1, 15, item_size="fixed:200")),
        ("8 files of ~380 KB items", generate(args.work, "large", max(16, int(2_000 * scale)), 8, 14,
                                              item_size="fixed:380000")),
    )
    modes = (("verify-first", ()), ("verify-while-writing", ("--copied-objects", "verify-while-writing")))
    out = []
    for label, ds in shapes:
        ds["decompressed"] = decompressed_size(ds["data"])
        runs = {mode: [] for mode, _ in modes}
        one = argparse.Namespace(**{**vars(args), "runs": 1})
        for _ in range(args.runs):
            for mode, extra in modes:
                runs[mode].append(end_to_end(one, args.work, ds, f"{label}, {mode}", extra))
        row = {"label": label, "items": ds["items"], "compressed": ds["compressed"]}
        for mode, _ in modes:
            row[mode] = {k: median([r[k] for r in runs[mode]]) for k in ("wall", "cpu", "first_write_s", "rss_mb")}
        out.append(row)
    return out


# The discovery part drives moto_server (the test venv's, see scripts/venv.sh, which bench.sh runs first)
# with boto3, in a subprocess of the venv's Python: this file stays standard library only for the parts that
# run without the venv, and boto3 gives the uploads and the floor below what a hand-written urllib client would
# not without more code than the benchmark itself: a keep-alive connection pool shared by the threads, retries,
# and ListObjectsV2 pagination. moto checks no signatures, so any credentials do.
#
# PLACE_EXPORTS places N export folders of 4 tables under one prefix, each table a run of chains (a FULL
# export, then 23 contiguous 15-minute incrementals), with what DynamoDB writes beside the summary that
# discovery reads: `_started`, and `manifest-summary.md5` (base64, as DynamoDB writes it, matching the
# summary; discovery does not read it, loading an export for a restore checks it). One folder in a hundred has
# only `_started` (an export still running). Uploads in 16 threads; prints what it placed as JSON.
PLACE_EXPORTS = r"""
import base64, concurrent.futures, hashlib, json, sys, time
import boto3, botocore.config
url, bucket, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="bench",
                  aws_secret_access_key="bench", config=botocore.config.Config(max_pool_connections=16))
s3.create_bucket(Bucket=bucket)
iso = lambda ms: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + ".000Z"
objects, finished, running = [], 0, 0
base = 1_768_000_000_000
for i in range(n):
    table = f"arn:aws:dynamodb:us-east-1:123456789012:table/bench-{i % 4}"
    k = i // 4
    start = base + (k // 24) * 24 * 900_000 + (k % 24) * 900_000
    eid = f"{start:014d}-{hashlib.md5(f'{table}{k}'.encode()).hexdigest()[:8]}"
    folder = f"backups/AWSDynamoDB/{eid}/"
    objects.append((folder + "_started", b""))
    if i % 100 == 99:
        running += 1
        continue
    summary = {"version": "2023-08-01", "exportArn": f"{table}/export/{eid}", "startTime": iso(start),
               "endTime": iso(start + 60_000), "tableArn": table, "tableId": "bench", "s3Bucket": bucket,
               "s3Prefix": "backups", "s3SseAlgorithm": "AES256", "s3SseKmsKeyId": None,
               "manifestFilesS3Key": folder + "manifest-files.json", "billedSizeBytes": 10_000_000,
               "itemCount": 1000, "outputFormat": "DYNAMODB_JSON"}
    if k % 24 == 0:
        summary.update(exportTime=iso(start), exportType="FULL_EXPORT")
    else:
        summary.update(exportFromTime=iso(start - 900_000), exportToTime=iso(start),
                       outputView="NEW_AND_OLD_IMAGES", exportType="INCREMENTAL_EXPORT")
    body = json.dumps(summary).encode()
    objects.append((folder + "manifest-summary.json", body))
    objects.append((folder + "manifest-summary.md5", base64.b64encode(hashlib.md5(body).digest())))
    finished += 1
t0 = time.monotonic()
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    list(pool.map(lambda o: s3.put_object(Bucket=bucket, Key=o[0], Body=o[1]), objects))
print(json.dumps({"exports": n, "finished": finished, "running": running, "objects": len(objects),
                  "upload_s": time.monotonic() - t0}))
"""

# The floor: what discovery asks of the server, from Python with 32 threads (the tool's concurrency): the
# listing with a delimiter, then every folder's summary, or its `_started` if it has none. Times itself from
# the first request (not the interpreter's start); prints JSON.
DISCOVER_FLOOR = r"""
import concurrent.futures, json, sys, time
import boto3, botocore.config
url, bucket, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="bench",
                  aws_secret_access_key="bench", config=botocore.config.Config(max_pool_connections=32))
t0 = time.monotonic()
pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/")
folders = [p["Prefix"] for page in pages for p in page.get("CommonPrefixes", [])]
def read(folder):
    try:
        return len(s3.get_object(Bucket=bucket, Key=folder + "manifest-summary.json")["Body"].read()) > 0
    except s3.exceptions.NoSuchKey:
        s3.get_object(Bucket=bucket, Key=folder + "_started")["Body"].read()
        return False
with concurrent.futures.ThreadPoolExecutor(32) as pool:
    summaries = sum(pool.map(read, folders))
print(json.dumps({"folders": len(folders), "summaries": summaries, "wall": time.monotonic() - t0}))
"""


def discover(args):
    """`ddb-pitr exports` over a prefix of 2,000 export folders (and 200, to see how it scales; 200 only with
    --quick) in moto's S3 on loopback: ListObjectsV2 with a delimiter, then every summary read, 32 at once.
    moto answers each request far slower than S3 does, so this bounds the tool's own overhead plus moto's from
    above; the same requests from Python with 32 threads (the floor), interleaved with the runs, say how much
    of it is moto. One more run, not timed, with moto's request recorder on counts the requests."""
    venv = ROOT / ".venv" / "bin"
    import socket
    import urllib.request
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    recording = args.work / "discover-moto-recording.jsonl"
    recording.unlink(missing_ok=True)
    with open(LOG, "ab") as err:
        moto = subprocess.Popen([str(venv / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=err,
                                stderr=err, env=dict(os.environ, MOTO_RECORDER_FILEPATH=str(recording)))

    def moto_api(action):
        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/recorder/{action}", method="POST"),
                               timeout=10).read()

    def exports(bucket, cpu_out):
        cmd = [str(BIN / "ddb-pitr"), "exports", "--export-prefix", f"s3://{bucket}/backups/", "--endpoint-url",
               url]
        t = timed(cmd, stdout=cpu_out)
        if t["code"] != 0:
            raise RuntimeError(f"ddb-pitr exports failed (exit {t['code']}, see {LOG}): {' '.join(cmd)}")
        return t, json.loads(cpu_out.read_text())

    try:
        deadline = time.monotonic() + 30
        while True:
            if moto.poll() is not None:
                raise RuntimeError(f"moto_server exited ({moto.returncode}), see {LOG}")
            try:
                urllib.request.urlopen(url, timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server does not answer on {url} after 30 s")
                time.sleep(0.05)
        out = []
        listing_file = args.work / "discover-listing.json"
        for n in ((200,) if args.quick else (200, 2000)):
            bucket = f"discover-{n}"
            placed = json.loads(subprocess.run([str(venv / "python"), "-c", PLACE_EXPORTS, url, bucket, str(n)],
                                               check=True, capture_output=True, text=True).stdout)
            log(f"discover {n}: placed {placed['objects']:,} objects in {placed['upload_s']:.1f} s")
            runs, floors = [], []
            for i in range(args.runs):
                t, listing = exports(bucket, listing_file)
                found = sum(len(x["exports"]) for x in listing["tables"])
                if (found != placed["finished"] or len(listing["skipped"]) != placed["running"]
                        or len(listing["tables"]) != 4):
                    raise RuntimeError(f"listed {found} exports of {len(listing['tables'])} tables and skipped "
                                       f"{len(listing['skipped'])}; placed {placed}")
                points = sum(len(x["points"]) for x in listing["tables"])
                runs.append(t)
                floor = json.loads(subprocess.run(
                    [str(venv / "python"), "-c", DISCOVER_FLOOR, url, bucket, "backups/AWSDynamoDB/"],
                    check=True, capture_output=True, text=True).stdout)
                if floor["folders"] != n or floor["summaries"] != placed["finished"]:
                    raise RuntimeError(f"the floor read {floor}; placed {placed}")
                floors.append(floor["wall"])
                log(f"discover {n} run {i + 1}: {t['wall']:.2f} s wall, {t['user']:.2f} s user, "
                    f"{t['sys']:.2f} s sys; floor (Python, 32 threads) {floor['wall']:.2f} s")
            # The requests of one more run, not timed (the recorder appends every request to a file).
            moto_api("reset-recording")
            moto_api("start-recording")
            exports(bucket, listing_file)
            moto_api("stop-recording")
            requests = {"list": 0, "summary": 0, "started": 0, "other": 0}
            for line in recording.read_text().splitlines():
                entry = json.loads(line)
                path = entry["url"].split("?")[0]
                kind = ("list" if "list-type=2" in entry["url"] else "summary"
                        if path.endswith("/manifest-summary.json") else "started" if path.endswith("/_started")
                        else "other")
                requests[kind] += 1
            wall = median([r["wall"] for r in runs])
            out.append({**placed, "wall": wall, "user": median([r["user"] for r in runs]),
                        "sys": median([r["sys"] for r in runs]), "rss_mb": max(r["rss_kb"] for r in runs) / 1024,
                        "floor_wall": median(floors), "floors": floors, "requests": requests,
                        "points": points, "ms_per_export": 1000 * wall / n, "runs": runs})
            log(f"discover {n}: {wall:.2f} s (median of {len(runs)}), floor {median(floors):.2f} s, "
                f"requests {requests}")
        return out
    finally:
        moto.terminate()
        moto.wait()


def capped(args, work, dataset, wcu, adaptive=True):
    runs = []
    extra = [] if adaptive else ["--no-adaptive-rate"]
    for i in range(args.runs):
        ep = Endpoint(work / "s3", wcu=wcu)
        try:
            r = restore(ep, dataset, work, extra)
        finally:
            ep.close()
        rep = r["report"]
        if rep["status"] != "succeeded":
            raise RuntimeError(f"capped {wcu}: restore failed: {rep.get('errors')}")
        writes, lat = rep["writes"], rep["latency"]
        active = rep["duration_seconds"] - lat["first_write_seconds"]
        # The endpoint's bucket starts with one second of capacity; take it out of the sustained rate.
        sustained = (writes["consumed_wcu"] - wcu) / active
        items = rep["totals"]["items_this_run"]
        runs.append({"fraction": sustained / wcu, "calls_per_25": writes["batch_write_requests"] / (items / 25),
                     "p99_wait_ms": lat["batch_wait"]["p99_ms"], "active_s": active,
                     "unprocessed": writes["unprocessed_items_retried"], "wall": r["wall"], "cpu": r["cpu"]})
        log(f"capped {wcu} {'adaptive' if adaptive else 'fixed'} run {i + 1}: {runs[-1]}")
    return {"wcu": wcu, "adaptive": adaptive,
            **{k: median([r[k] for r in runs]) for k in ("fraction", "calls_per_25", "p99_wait_ms", "cpu")},
            "runs": runs}


def checkpoint_offset(path):
    """Decompressed bytes below the checkpoint, over every file (0 before the first checkpoint)."""
    try:
        ck = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return 0
    return sum(f["offset"] for e in ck["exports"] for f in e["files"].values())


def resume_cost(args, work, dataset, fractions):
    """Interrupts a restore once its checkpoint passes each fraction of the data, then resumes it.

    The interrupted run writes into a capped endpoint, so that it lasts about ten seconds whatever the
    size and the interrupt lands where asked; the resumed run writes into the unlimited one.
    """
    out = []
    size = dataset["decompressed"]
    wcu = max(1000, dataset["items"] * 2 // 10)
    flags = ["--checkpoint-interval", "200ms"]
    for frac in fractions:
        ckpt = work / f"resume-{frac}.json"
        ckpt.unlink(missing_ok=True)

        def interrupt_at(proc):
            while proc.poll() is None:
                if checkpoint_offset(ckpt) >= frac * size:
                    # `proc` is /usr/bin/time, which ignores SIGINT while it waits: signal the restore.
                    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
                    os.kill(int(children[0]), signal.SIGINT)
                    return
                time.sleep(0.05)

        capped_ep, ep = Endpoint(work / "s3", wcu=wcu), Endpoint(work / "s3")
        try:
            first = restore(capped_ep, dataset, work, flags, resume=ckpt, on_start=interrupt_at)
            offset = checkpoint_offset(ckpt)
            second = restore(ep, dataset, work, flags, resume=ckpt)
        finally:
            capped_ep.close()
            ep.close()
        if first["report"]["status"] != "interrupted":
            raise RuntimeError(f"resume at {frac}: the first run was not interrupted "
                               f"({first['report']['status']}), so there is nothing to resume")
        rep = second["report"]
        if rep["status"] != "succeeded":
            raise RuntimeError(f"resume at {frac}: {rep.get('errors')}")
        resumed = sum(f["resumed_from_offset"] for e in rep["exports"] for f in e["files"])
        out.append({"fraction": frac, "checkpoint_offset": offset, "resumed_from_offset": resumed,
                    "first_write_s": rep["latency"]["first_write_seconds"], "wall": second["wall"],
                    "cpu": second["cpu"], "items_this_run": rep["totals"]["items_this_run"]})
        log(f"resume at {frac}: {out[-1]}")
    return out


def machine():
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(mem, 1), "os": platform.platform(),
            "rustc": rustc}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, one run: checks the suite works")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every dataset's item count")
    ap.add_argument("--work", type=Path, default=ROOT / "target" / "bench")
    ap.add_argument("--out", type=Path, default=ROOT / "target" / "bench" / "results.json")
    ap.add_argument("--only", default="", help="comma-separated: e2e,big,large,capped,resume,copies,discover")
    args = ap.parse_args()
    if args.quick:
        args.runs = 1
    only = set(filter(None, args.only.split(",")))
    want = lambda part: not only or part in only
    args.work.mkdir(parents=True, exist_ok=True)
    scale = 0.02 if args.quick else args.scale
    n = lambda x: max(1000, int(x * scale))
    results = {"machine": machine(), "quick": args.quick, "runs": args.runs}

    if want("e2e"):
        ds = generate(args.work, "multi", n(1_000_000), 8, 11)
        ds["decompressed"] = decompressed_size(ds["data"])
        floor = gzip_floor(ds, args.runs)
        e2e = end_to_end(args, args.work, ds, "8 files, default settings")
        one = end_to_end(args, args.work, ds, "8 files, one core", cpu=0)
        results["e2e"] = {"dataset": {k: v for k, v in ds.items() if k != "data"}, "gzip": floor,
                          "restore": e2e, "restore_one_core": one,
                          "cpu_ratio": e2e["cpu"] / floor["cpu"]}
    if want("big"):
        ds = generate(args.work, "big", n(3_400_000), 1, 12)
        ds["decompressed"] = decompressed_size(ds["data"])
        floor = gzip_floor(ds, args.runs)
        big = end_to_end(args, args.work, ds, "one big file")
        results["big"] = {"dataset": {k: v for k, v in ds.items() if k != "data"}, "gzip": floor,
                          "restore": big, "wall_ratio": big["wall"] / floor["wall"],
                          "cpu_ratio": big["cpu"] / floor["cpu"]}
        if want("resume") or not only:
            results["resume"] = resume_cost(args, args.work, ds, [0.25, 0.5, 0.75])
    if want("large"):
        ds = generate(args.work, "large", max(16, int(2_000 * scale)), 8, 14, item_size="fixed:380000")
        ds["decompressed"] = decompressed_size(ds["data"])
        results["large"] = {"dataset": {k: v for k, v in ds.items() if k != "data"},
                            **large_items(args, args.work, ds)}
    if want("copies"):
        results["copies"] = copies(args)
    if want("discover"):
        results["discover"] = discover(args)
    if want("capped"):
        results["capped"] = []
        for wcu, items in ((5000, n(300_000)), (20000, n(1_200_000))):
            ds = generate(args.work, f"capped{wcu}", items, 8, 13)
            for adaptive in (True, False):
                results["capped"].append(capped(args, args.work, ds, wcu, adaptive))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(summary(results))


def summary(r):
    lines = [f"Machine: {r['machine']}", ""]
    if "e2e" in r:
        e = r["e2e"]
        lines += [
            f"End to end ({e['dataset']['items']:,} items, {e['dataset']['decompressed'] / 1e6:.0f} MB "
            f"decompressed, {e['dataset']['compressed'] / 1e6:.0f} MB gz):",
            f"  gzip -dc one core: {e['gzip']['cpu']:.2f} s CPU",
            f"  restore: {e['restore']['cpu']:.2f} s CPU ({e['cpu_ratio']:.2f}x gzip), {e['restore']['wall']:.2f} s "
            f"wall, {e['restore']['items_per_cpu_s']:,.0f} items/s and {e['restore']['mb_per_cpu_s']:.0f} MB/s "
            f"per core, first write {e['restore']['first_write_s']:.3f} s, peak RSS {e['restore']['rss_mb']:.0f} MB",
            f"  restore on one core: {e['restore_one_core']['wall']:.2f} s wall, "
            f"{e['restore_one_core']['cpu']:.2f} s CPU",
        ]
    if "big" in r:
        b = r["big"]
        lines += [
            f"One file ({b['dataset']['decompressed'] / 1e9:.2f} GB decompressed):",
            f"  gzip -dc: {b['gzip']['wall']:.2f} s wall; restore {b['restore']['wall']:.2f} s wall "
            f"({b['wall_ratio']:.2f}x), {b['restore']['cpu']:.2f} s CPU ({b['cpu_ratio']:.2f}x), "
            f"peak RSS {b['restore']['rss_mb']:.0f} MB",
        ]
    if "large" in r:
        g = r["large"]
        lines.append(f"Items of 380 KB ({g['dataset']['decompressed'] / 1e6:.0f} MB decompressed, 8 files):")
        for label in ("defaults", "batch budget unbounded"):
            x = g[label]
            lines.append(f"  {label}: peak RSS {x['rss_mb']:.0f} MB, {x['wall']:.2f} s wall, {x['cpu']:.2f} s CPU, "
                         f"{x['calls_per_25']:.2f} calls per 25 items")
    for c in r.get("capped", []):
        lines.append(
            f"Capped {c['wcu']} WCU/s {'adaptive' if c['adaptive'] else 'fixed   '}: {c['fraction']:.3f} of cap, "
            f"{c['calls_per_25']:.3f} calls per 25 items, p99 batch wait {c['p99_wait_ms']:.0f} ms")
    for c in r.get("copies", []):
        a, b = c["verify-first"], c["verify-while-writing"]
        lines.append(
            f"Copied objects, {c['label']} ({c['compressed'] / 1e6:.0f} MB gz): verify-first {a['wall']:.2f} s wall, "
            f"{a['cpu']:.2f} s CPU, first write {a['first_write_s']:.3f} s; verify-while-writing {b['wall']:.2f} s "
            f"wall, {b['cpu']:.2f} s CPU, first write {b['first_write_s']:.3f} s")
    for d in r.get("discover", []):
        q = d["requests"]
        lines.append(
            f"Discovery of {d['exports']:,} export folders ({d['finished']:,} finished, {d['running']} running) in moto: "
            f"{d['wall']:.2f} s wall ({d['ms_per_export']:.2f} ms per export), {d['user'] + d['sys']:.2f} s CPU, "
            f"peak RSS {d['rss_mb']:.0f} MB, {d['points']:,} points; the same requests from Python with 32 threads "
            f"{d['floor_wall']:.2f} s; {sum(q.values()):,} requests ({q['list']} list, {q['summary']:,} summaries, "
            f"{q['started']} _started, {q['other']} other); placing {d['objects']:,} objects took {d['upload_s']:.1f} s")
    for x in r.get("resume", []):
        lines.append(
            f"Resume from {x['resumed_from_offset'] / 1e6:.0f} MB ({x['fraction']:.0%}): first write after "
            f"{x['first_write_s']:.2f} s, {x['wall']:.2f} s wall, {x['cpu']:.2f} s CPU")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
