"""RFC 3161 trusted timestamps against a local time-stamp authority the test sets up with `openssl ts`
(its own CA and TSA certificate, served over HTTP on 127.0.0.1): each action's log entry, the evidence and
the reports are stamped; `verify audit` verifies the tokens offline against the CA the user gives; tampering
with a token, the log or the evidence is detected; OpenSSL alone verifies the same tokens."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import SEED_CASE
from verify.cli import main

EXT = """
[ca_ext]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[tsa_ext]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""
TSA_CONFIG = """
[tsa]
default_tsa = tsa_config1
[tsa_config1]
serial = {dir}/serial
crypto_device = builtin
signer_cert = {dir}/tsa.pem
signer_key = {dir}/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.2
digests = sha256
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def _openssl(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def make_authority(folder: Path, name: str = "Test TSA") -> Path:
    """A CA and a TSA certificate signed by it (critical EKU timeStamping), and an `openssl ts` config."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ext.cnf").write_text(EXT)
    base = Path(os.environ.get("OPENSSL_CONF", "/usr/lib/ssl/openssl.cnf"))
    (folder / "req.cnf").write_text((base.read_text() if base.exists() else "") + EXT)
    steps = [
        ("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out",
         "ca.pem", "-days", "3650", "-subj", f"/CN={name} Root", "-extensions", "ca_ext", "-config", "req.cnf"),
        ("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "tsa.key", "-out",
         "tsa.csr", "-subj", f"/CN={name}", "-config", "req.cnf"),
        ("x509", "-req", "-in", "tsa.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "tsa.pem",
         "-days", "3650", "-extfile", "ext.cnf", "-extensions", "tsa_ext"),
    ]
    for step in steps:
        done = _openssl(*step, cwd=folder)
        assert done.returncode == 0, done.stderr
    (folder / "serial").write_text("01\n")
    (folder / "tsa.cnf").write_text(TSA_CONFIG.format(dir=folder))
    return folder


class _Authority(BaseHTTPRequestHandler):
    folder: Path
    lock = threading.Lock()
    down = False

    def do_POST(self) -> None:  # noqa: N802
        query = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if type(self).down:
            self.send_response(503)
            self.end_headers()
            return
        self.answer(query)

    def answer(self, query: bytes) -> None:
        """Stamp ``query`` with openssl and send the reply (500 when openssl fails)."""
        with self.lock:  # openssl ts keeps a serial-number file
            (self.folder / "q.tsq").write_bytes(query)
            done = _openssl("ts", "-reply", "-config", "tsa.cnf", "-queryfile", "q.tsq", "-out", "r.tsr", cwd=self.folder)
            answer = (self.folder / "r.tsr").read_bytes() if done.returncode == 0 else b""
        self.send_response(200 if answer else 500)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def authority(tmp_path_factory):
    """A time-stamp authority on 127.0.0.1: yields (url, CA file, folder, handler class)."""
    folder = make_authority(tmp_path_factory.mktemp("tsa"))
    handler = type("Authority", (_Authority,), {"folder": folder, "down": False})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/tsr", folder / "ca.pem", folder, handler
    server.shutdown()


def _cli(ws: Path, *args: str):
    return CliRunner().invoke(main, ["-w", str(ws), *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def stamped(authority, footage, tmp_path_factory):
    url, ca, _, _ = authority
    root = tmp_path_factory.mktemp("stamped") / "ws"
    made = _cli(root, "init", str(SEED_CASE), "--tsa", url)
    assert made.exit_code == 0 and f"trusted timestamps: {url}" in made.output, made.output
    assert _cli(root, "ingest", str(footage["militants_at_gate"]), "--source", "militants-at-gate").exit_code == 0
    assert _cli(root, "merge").exit_code == 0
    assert _cli(root, "report", "--format", "json", "--format", "html").exit_code == 0
    return root


@pytest.fixture
def ws(stamped, tmp_path) -> Path:
    copy = tmp_path / "ws"
    shutil.copytree(stamped, copy)
    return copy


def _tokens(ws: Path) -> list[dict]:
    db = sqlite3.connect(ws / "verify.db")
    db.row_factory = sqlite3.Row
    return [dict(r) for r in db.execute("SELECT * FROM timestamps ORDER BY log_seq, file")]


def test_each_action_its_evidence_and_its_reports_are_stamped_and_verify_offline(ws, authority):
    _, ca, _, _ = authority
    tokens = _tokens(ws)
    entries = [json.loads(line) for line in (ws / "custody.log").read_text().splitlines()]
    assert {t["log_seq"] for t in tokens if t["kind"] == "head"} == {e["seq"] for e in entries}
    assert [t["subject"] for t in tokens if t["kind"] == "evidence"][0].startswith("evidence/")
    assert {t["subject"] for t in tokens if t["kind"] == "report"} >= {"reports/report.json", "reports/report.html"}
    result = _cli(ws, "audit", "--tsa-ca", str(ca))
    assert result.exit_code == 0, result.output
    assert f"anchored up to entry {entries[-1]['seq']}" in result.output
    assert f"({len(tokens)} signatures verified)" in result.output


def test_openssl_alone_verifies_the_tokens(ws, authority):
    _, ca, _, _ = authority
    for token in _tokens(ws):
        args = ["ts", "-verify", "-in", str(ws / token["file"]), "-CAfile", str(ca)]
        if token["kind"] == "head":
            args += ["-digest", token["digest"]]  # the log entry's "hash" field
        else:
            args += ["-data", str(ws / token["subject"])]  # the file itself
        done = _openssl(*args, cwd=ws)
        assert done.returncode == 0 and "Verification: OK" in done.stdout, (token, done.stdout, done.stderr)


def test_a_cut_log_with_a_rewritten_head_is_caught_by_the_stamp_of_the_cut_entry(ws, authority):
    _, ca, _, _ = authority
    log = ws / "custody.log"
    lines = log.read_text().splitlines(keepends=True)
    kept = [json.loads(line) for line in lines[:-2]]
    log.write_text("".join(lines[:-2]))
    for name in sorted((ws / "reports").glob("report.*")):  # even with every trace of the cut actions gone
        name.unlink()
    with sqlite3.connect(ws / "verify.db") as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'custody_head'", (f"{kept[-1]['seq']}:{kept[-1]['hash']}",))
        db.execute("UPDATE meta SET value = '{}' WHERE key = 'reports_manifest'")
        db.execute("DELETE FROM timestamps WHERE kind = 'report'")
    for token in (ws / "timestamps").glob("*-report-*"):
        token.unlink()
    result = _cli(ws, "audit", "--tsa-ca", str(ca))
    assert result.exit_code == 12, result.output
    assert f"stamped custody.log entry {len(lines)} at" in result.output and "entries were cut off" in result.output


def test_a_rewritten_entry_is_caught_by_its_stamp_even_when_the_chain_is_rebuilt(ws, authority):
    from verify.custody import entry_hash

    _, ca, _, _ = authority
    log = ws / "custody.log"
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    entries[1]["os_user"] = "someone-else"  # rewrite one entry and re-chain everything after it
    prev = entries[0]["hash"]
    for entry in entries[1:]:
        entry["prev"] = prev
        entry["hash"] = prev = entry_hash(entry)
    log.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))
    with sqlite3.connect(ws / "verify.db") as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'custody_head'", (f"{entries[-1]['seq']}:{entries[-1]['hash']}",))
    result = _cli(ws, "audit", "--tsa-ca", str(ca))
    assert result.exit_code == 12, result.output
    assert "holds another entry there: it was rewritten" in result.output


def test_a_tampered_token_or_a_foreign_authority_is_detected(ws, authority, tmp_path):
    _, ca, _, _ = authority
    token = ws / _tokens(ws)[0]["file"]
    os.chmod(token, 0o644)
    data = bytearray(token.read_bytes())
    data[-5] ^= 0x01  # inside the signature
    token.write_bytes(bytes(data))
    with sqlite3.connect(ws / "verify.db") as db:  # the record made to agree, so only the signature can tell
        db.execute("UPDATE timestamps SET sha256 = ? WHERE file = ?",
                   (hashlib.sha256(bytes(data)).hexdigest(), str(token.relative_to(ws))))
    result = _cli(ws, "audit", "--tsa-ca", str(ca))
    assert result.exit_code == 12 and "does not verify against the given CA" in result.output, result.output
    other = make_authority(tmp_path / "other", "Other TSA")
    result = _cli(ws, "audit", "--tsa-ca", str(other / "ca.pem"))
    assert result.exit_code == 12 and "does not verify against the given CA" in result.output


def test_tampered_evidence_is_caught_and_its_token_still_proves_the_original(ws, authority):
    _, ca, _, _ = authority
    [evidence] = [t for t in _tokens(ws) if t["kind"] == "evidence" and t["subject"].endswith(".mp4")]
    path = ws / evidence["subject"]
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    result = _cli(ws, "audit", "--tsa-ca", str(ca))
    assert result.exit_code == 11 and f"CHANGED    {evidence['subject']}" in result.output
    done = _openssl("ts", "-verify", "-in", str(ws / evidence["file"]), "-data", str(path), "-CAfile", str(ca), cwd=ws)
    assert done.returncode != 0  # the token no longer matches the bytes: the authority vouches for the original


def test_without_the_ca_the_audit_says_the_signatures_were_not_checked(ws):
    result = _cli(ws, "audit")
    assert result.exit_code == 0, result.output
    assert "signatures were not checked (give the authority's CA certificate with --tsa-ca FILE)" in result.output


def test_an_authority_that_does_not_answer_costs_a_warning_and_the_next_stamp_covers_it(ws, authority, caplog):
    _, ca, _, handler = authority
    handler.down = True
    try:
        assert _cli(ws, "merge").exit_code == 0
    finally:
        handler.down = False
    assert "no time-stamp authority stamped custody.log entry" in caplog.text
    result = _cli(ws, "audit", "--tsa-ca", str(ca))
    assert result.exit_code == 0 and "are not externally anchored yet" in result.output, result.output
    assert _cli(ws, "merge").exit_code == 0
    result = _cli(ws, "audit", "--tsa-ca", str(ca))
    assert result.exit_code == 0 and "not externally anchored yet" not in result.output, result.output


def test_a_tsa_url_with_credentials_is_never_printed_with_them(tmp_path):
    result = _cli(tmp_path / "ws", "init", str(SEED_CASE), "--tsa", "http://user:secret@127.0.0.1:9/tsr")
    assert result.exit_code == 0 and "secret" not in result.output and "http://***@127.0.0.1:9/tsr" in result.output


def test_a_request_is_the_der_openssl_reads(tmp_path):
    from verify.timestamps import request_der

    digest = hashlib.sha256(b"x").digest()
    (tmp_path / "q.tsq").write_bytes(request_der(digest, 2**62 + 5))
    done = _openssl("ts", "-query", "-in", "q.tsq", "-text", cwd=tmp_path)
    assert done.returncode == 0 and "Hash Algorithm: sha256" in done.stdout and "Nonce: 0x4000000000000005" in done.stdout
    assert "Certificate required: yes" in done.stdout


def test_the_report_lists_each_timestamp_with_the_openssl_command_that_checks_it(ws, authority):
    """The report shows each token it was built on; its command, run as printed in the workspace, verifies."""
    import shlex

    _, ca, _, _ = authority
    assert _cli(ws, "report", "--format", "json", "--format", "md").exit_code == 0
    report = json.loads((ws / "reports" / "report.json").read_text())
    listed = report["integrity"]["timestamps"]
    assert listed and {t["kind"] for t in listed} == {"head", "evidence"}  # reports are stamped after they are written
    assert "openssl ts -verify" in (ws / "reports" / "report.md").read_text()
    for token in listed:
        args = shlex.split(token["check"].replace("tsa-ca.pem", str(ca)))
        done = _openssl(*args[1:], cwd=ws)
        assert done.returncode == 0 and "Verification: OK" in done.stdout, (token, done.stdout, done.stderr)
