"""Report: the merged verdicts as a document an editor can check and publish from.

``build_report`` turns the workspace's records and the merge into one JSON-ready model
(schema ``verify.report/1``, documented in the README); ``render_json``, ``render_markdown``
and ``render_html`` are pure renderings of that model. HTML is self-contained (frames embedded
as data: URIs with the merged boxes drawn, no remote resources, a strict Content-Security-
Policy) and autoescaped; Markdown escapes every string that came from a case file, a
reviewer or a video. Only http(s) links are ever rendered as links.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from PIL import Image, ImageDraw

from verify import __version__, custody
from verify.case import VERDICT_CHOICES, Case, is_web_url
from verify.errors import VerifyError
from verify.verdicts.merge import merge
from verify.labelstudio.push import timestamp
from verify.workspace import Workspace, atomic_write, now_utc

SCHEMA = "verify.report/1"
FORMATS = ("html", "md", "json")  # the default set; "pdf" is optional (needs Chromium)
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions")
VERDICT_TEXT = {
    "supported": "Supported", "contradicted": "Contradicted", "disputed": "Disputed",
    "inconclusive": "Inconclusive", "pending": "Pending (reviews missing)", "unreviewed": "Unreviewed",
    "supports": "supports", "contradicts": "contradicts",
}
GALLERY_IMAGES = 24  # per claim and kind of evidence, frames shown as pictures; the rest as links
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def safe_url(url: Any) -> str | None:
    """The URL if it is http(s), else None: nothing else becomes a link."""
    return url if is_web_url(url) else None


def build_report(ws: Workspace, unknown_labels: str = "ignore") -> dict[str, Any]:
    """Collect the workspace's state and its merged verdicts into the report model."""
    case: Case = ws.case
    videos = ws.videos()
    frames = ws.frames()
    annotations = ws.annotations()
    project = ws.get_meta("project_id")
    tasks = ws.tasks()
    merged = merge(case, videos, frames, annotations, tasks, unknown_labels)
    frames_by_key = {f["key"]: f for f in merged["frames"]}
    for f in merged["frames"]:
        f["timestamp"] = timestamp(f["t_ms"])

    def evidence(keys: list[str], claim_id: str) -> list[dict[str, Any]]:
        out = []
        for key in keys:
            f = frames_by_key[key]
            v = f["verdicts"][claim_id]
            out.append({"frame_key": key, "source_id": f["source_id"], "timestamp": f["timestamp"], "t_ms": f["t_ms"],
                        "verdict": v["verdict"], "counts": v["counts"], "by_reviewer": v["by_reviewer"],
                        "adjudicated_by": v.get("adjudicated_by"), "vote": v.get("vote"),
                        "inherited_from": f["duplicate_of"] if not v["answers"] and f["duplicate_of"] else None})
        return out

    claims = []
    for claim, result in zip(case.claims, merged["claims"]):
        claims.append({
            "id": claim.id, "text": claim.text, "claimed_by": claim.claimed_by, "verdict": result["verdict"],
            "frames": result["frames"], "reviewed_frames": result["reviewed_frames"], "agreement": result["agreement"],
            "supporting": evidence(result["supporting"], claim.id),
            "contradicting": evidence(result["contradicting"], claim.id),
            "disputed": evidence(result["disputed"], claim.id),
        })

    video_verdicts = {v["sha256"]: v["claims"] for v in merged["videos"]}
    source_of = {v["sha256"]: v["source_id"] for v in videos}
    sources = []
    for video in videos:
        own = [f for f in merged["frames"] if f["video_sha256"] == video["sha256"]]
        links = sorted({source_of[frames_by_key[f["duplicate_of"]]["video_sha256"]] for f in own
                        if f["duplicate_of"] in frames_by_key})
        prov = video["provenance"]
        sources.append({
            **prov,
            "url": prov.get("url"),
            "sha256": video["sha256"],
            "evidence_file": video["evidence"],
            "original_path": Path(video["original_path"]).name,
            "size_bytes": video["size"],
            "ingested_at": video["ingested_at"],
            "metadata": video["metadata"],
            "frames": len(own),
            "frames_status": video["frames_status"] or "not extracted",
            "frames_note": video["frames_note"],
            "reupload_of": links,
            "duplicate_frames": sum(1 for f in own if f["duplicate_of"]),
            "verdicts": video_verdicts.get(video["sha256"], {}),
            "captures": [{"url_given": c["url_given"], "canonical_url": c["canonical_url"], "captured_at": c["captured_at"],
                          "how": c["record"].get("how"), "platform_fields": c["record"].get("platform_fields", {}),
                          "tools": c["record"].get("tools", {}), "info_file": c["info_file"]}
                         for c in ws.captures(video["sha256"])],
        })

    reviewed = [f for f in merged["frames"] if any(v["answers"] for v in f["verdicts"].values())]
    exports = ws.exports()
    return {
        "schema": SCHEMA,
        "generated_at": now_utc(),
        "tool": {"name": "verify", "version": __version__},
        "case": {"id": case.id, "title": case.title, "summary": case.summary, "sha256": case.sha256},
        "summary": {
            "videos": len(videos),
            "frames": len(frames),
            "frames_sent_for_review": len(tasks),
            "frames_linked_as_reuploads": sum(1 for f in frames if f["duplicate_of"]),
            "frames_reviewed": len(reviewed),
            "annotations": sum(1 for a in annotations if not a["was_cancelled"]),
            "skips": sum(1 for a in annotations if a["was_cancelled"]),
            "reviewers": len(merged["reviewers"]),
        },
        "claims": claims,
        "sources": sources,
        "frames": merged["frames"],
        "reviewers": merged["reviewers"],
        "unknown_labels": merged["unknown_labels"],
        "unknown_label_policy": merged["unknown_label_policy"],
        "method": {
            "rules": merged["rules"],
            "min_reviewers": case.review.min_reviewers,
            "reviewers_per_frame": case.review.reviewers_per_frame,
            "extractor": frames[0]["extractor"] if frames else None,
            "label_studio": {"url": ws.get_meta("server_url"), "project_id": int(project) if project else None},
            "built_from_export": next((e for e in reversed(exports) if str(e["project_id"]) == project), None),
            "adjudication": {
                "project_id": int(adj) if (adj := ws.get_meta("adjudication_project_id")) else None,
                "lead": ws.get_meta("adjudication_lead"),
                "export": next((e for e in reversed(exports) if adj and str(e["project_id"]) == adj), None),
            },
            "exports_pulled": len(exports),
            "built_from_exports": ws.exports_in_use(),
        },
        "integrity": {
            "evidence_sha256": {v["source_id"]: v["sha256"] for v in videos},
            "frames": {"count": len(frames), "digest": custody.files_digest((f["file"], f["sha256"]) for f in frames)},
            "case_sha256": case.sha256,
            "custody_head": ws.get_meta(custody.HEAD),
            "how_to_check": "run `verify audit` in the workspace; the report's own sha256 is in custody.log "
                            "(action \"report\") and can be checked with sha256sum",
        },
    }


# --- rendering -----------------------------------------------------------------------------


def render_json(model: dict[str, Any]) -> str:
    return json.dumps(model, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]#!|>~])")


def md_escape(value: Any) -> str:
    """Escape text for Markdown: HTML metacharacters become entities, Markdown syntax is backslashed."""
    text = str(value if value is not None else "")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return " ".join(text.split())  # no line breaks: one value stays in its table cell or line


def _environment(markdown: bool = False) -> Environment:
    """HTML templates autoescape everything; the Markdown template escapes each value with |md."""
    env = Environment(
        loader=PackageLoader("verify.report", "templates"),
        autoescape=False if markdown else select_autoescape(["html", "j2"], default_for_string=True, default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md"] = md_escape
    env.filters["safe_url"] = safe_url
    env.filters["verdict"] = lambda v: VERDICT_TEXT.get(v, v.replace("adjudicated:", "adjudicated: ") if v else "")
    env.filters["answer"] = lambda a: VERDICT_CHOICES.get(a, a)
    env.filters["vclass"] = lambda v: (v or "").replace("adjudicated:", "").replace(" ", "-")
    return env


def render_markdown(model: dict[str, Any], images: dict[str, str]) -> str:
    """``images`` maps frame key → relative path of its annotated thumbnail."""
    return _environment(markdown=True).get_template("report.md.j2").render(r=model, images=images, csp=CSP,
                                                                           gallery=GALLERY_IMAGES)


def render_html(model: dict[str, Any], images: dict[str, str]) -> str:
    """``images`` maps frame key → data: URI of its annotated thumbnail."""
    return _environment().get_template("report.html.j2").render(r=model, images=images, csp=CSP, gallery=GALLERY_IMAGES)


def annotated_thumbnail(path: Path, boxes: list[dict[str, Any]], width: int = 480) -> bytes:
    """The frame scaled to ``width`` px with the merged boxes drawn and labelled, as JPEG."""
    with Image.open(path) as im:
        im.draft("RGB", (width, max(1, width * im.height // max(1, im.width))))  # JPEG: decode at reduced scale
        im = im.convert("RGB")
        scale = width / im.width if im.width > width else 1.0
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))))
    draw = ImageDraw.Draw(im)
    for box in boxes:
        corners = _corners(box, im.width, im.height)
        draw.polygon(corners, outline=(255, 214, 0), width=2)
        label = f"{box['label']} ×{box['drawn_by']}"
        x, y = corners[0]
        tw = draw.textlength(label)
        draw.rectangle([x, max(0, y - 12), x + tw + 4, max(12, y)], fill=(0, 0, 0))
        draw.text((x + 2, max(0, y - 12)), label, fill=(255, 214, 0))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=80)
    return out.getvalue()


def _corners(box: dict[str, Any], w: int, h: int) -> list[tuple[float, float]]:
    """Box corners in pixels; Label Studio rotates about the box's top-left corner."""
    x, y = box["x"] * w / 100, box["y"] * h / 100
    bw, bh = box["width"] * w / 100, box["height"] * h / 100
    a = math.radians(box.get("rotation") or 0)
    cos, sin = math.cos(a), math.sin(a)
    return [(x + dx * cos - dy * sin, y + dx * sin + dy * cos) for dx, dy in ((0, 0), (bw, 0), (bw, bh), (0, bh))]


def write_reports(ws: Workspace, formats: tuple[str, ...] = FORMATS, out_dir: Path | None = None,
                  unknown_labels: str = "ignore") -> dict[str, Path]:
    """Build the model and write the requested formats; return format → path."""
    model = build_report(ws, unknown_labels)
    out_dir = out_dir or ws.path("reports")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:  # Pillow releases the GIL while coding JPEG
        data = pool.map(lambda f: annotated_thumbnail(ws.path(f["file"]), f["boxes"]), model["frames"])
        thumbs = dict(zip((f["key"] for f in model["frames"]), data))
    if "json" in formats:
        written["json"] = out_dir / "report.json"
        atomic_write(written["json"], render_json(model).encode())
    if "md" in formats:
        assets = out_dir / "report-assets"
        assets.mkdir(exist_ok=True)
        for stale in assets.glob("*.jpg"):  # pictures of an earlier report that this one no longer shows
            if stale.stem not in thumbs:
                stale.unlink()
        images = {}
        for key, data in thumbs.items():
            atomic_write(assets / f"{key}.jpg", data)
            images[key] = f"report-assets/{key}.jpg"
        written["md"] = out_dir / "report.md"
        atomic_write(written["md"], render_markdown(model, images).encode())
    if "html" in formats or "pdf" in formats:
        images = {key: "data:image/jpeg;base64," + base64.b64encode(data).decode() for key, data in thumbs.items()}
        html = out_dir / "report.html"
        atomic_write(html, render_html(model, images).encode())
        if "html" in formats:
            written["html"] = html
        if "pdf" in formats:
            written["pdf"] = render_pdf(html, out_dir / "report.pdf")
    return written


def chromium() -> str | None:
    """The Chromium to print PDFs with: $VERIFY_CHROMIUM, else chromium / chromium-browser / google-chrome on PATH."""
    named = os.environ.get("VERIFY_CHROMIUM")
    if named:
        return named
    return next((found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))), None)


def render_pdf(html_path: Path, pdf_path: Path, timeout: float = 120) -> Path:
    """Print the self-contained HTML report to PDF with headless Chromium.

    Raises:
        VerifyError: Chromium is not installed, or failed.
    """
    browser = chromium()
    if not browser:
        raise VerifyError("a PDF report needs Chromium: install it (Debian: apt-get install chromium) or set VERIFY_CHROMIUM")
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--no-pdf-header-footer",
             f"--print-to-pdf={pdf_path}", html_path.resolve().as_uri()],
            capture_output=True, timeout=timeout,
        )
    if done.returncode != 0 or not pdf_path.is_file():
        raise VerifyError(f"Chromium could not print {html_path} to PDF (exit {done.returncode})")
    return pdf_path
