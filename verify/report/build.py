"""Report: the merged verdicts as a document an editor can check and publish from.

``build_report`` turns the workspace's records and the merge into one JSON-ready model
(schema ``verify.report/3``, documented in the README); ``render_json``, ``render_markdown``
and ``render_html`` are pure renderings of that model. HTML is self-contained (frames embedded
as data: URIs with the merged boxes drawn, no remote resources, a strict Content-Security-
Policy) and autoescaped; Markdown escapes every string that came from a case file, a
reviewer or a video. Only http(s) links are ever rendered as links.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from verify import __version__, custody
from verify.case import VERDICT_CHOICES, Case
from verify.clock import now_utc, timestamp
from verify.errors import VerifyError
from verify.files import atomic_write
from verify.report.draw import GROUP_COLOURS, UNKNOWN_COLOUR, Drawn, annotate, font_name
from verify.report.geo import figure_svg, render_geojson, render_kml
from verify.records import Reupload
from verify.terminal import json_escaped, printable
from verify.urls import safe_url
from verify.verdicts.merge import Verdicts
from verify.workspace import Workspace

SCHEMA = "verify.report/3"
FORMATS = ("html", "md", "json", "geojson", "kml")  # the default set; "pdf" is optional (needs Chromium)
GEO_FILES = {"geojson": "locations.geojson", "kml": "locations.kml"}  # where the footage was filmed, for QGIS / Google Earth
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions")
VERDICT_TEXT = {
    "supported": "Supported", "contradicted": "Contradicted", "disputed": "Disputed",
    "inconclusive": "Inconclusive", "pending": "Pending (reviews missing)", "unreviewed": "Unreviewed",
    "supports": "Supports", "contradicts": "Contradicts",
}
PAPER = {"a4": "A4", "letter": "letter"}  # --paper → CSS @page size
# the words every output uses for what people did in Label Studio (sync, status, the report), defined once
VOCABULARY = {
    "submission": "anything a person submitted in Label Studio: a review, a skip, a \"cannot review\" answer or a "
                  "lead's decision (Label Studio's own count of submitted annotations leaves out the skips)",
    "review": "a reviewer's submission that answers: the only kind that votes",
    "skip": "a submission that skipped the frame: not a vote",
    "cannot review": "a reviewer's answer that they could not review the frame, with a reason: not a vote, not a skip",
    "lead decision": "the adjudicating lead's answer on a frame or a claim: decides it, shown beside the votes, never "
                     "counted as a review",
    "independent source": "a source whose own footage shows the picture; a re-upload counts as the source it copies",
    "quorum": "the case's min_reviewers: the reviews each frame needs before its verdict stops being provisional",
}
GALLERY_IMAGES = 24  # per claim and kind of evidence, frames shown as pictures; the rest as links
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def reupload_of(found: Reupload, source_of: dict[str, str]) -> dict[str, Any]:
    """A re-upload as the report shows it: which source, where in it, how much of this video it explains."""
    of = source_of.get(found.original_sha256, found.original_sha256[:12])
    return {"of": of, "of_sha256": found.original_sha256, "share": found.share, "frames": found.frames,
            "span": found.span.replace(" of A", f" of {of}"), "mirrored": found.mirrored, "speed": found.speed}


def is_graphic(video: Any, case: Case) -> bool:
    """Whether a source is marked graphic (at ingest, or in the case): its frames reached reviewers blurred."""
    source = case.source(video.source_id)
    return bool(video.provenance.get("graphic")) or bool(source and source.graphic)


def context_cited(strip: Any) -> dict[str, Any] | None:
    """What a frame's task showed beside it in Label Studio (a ``records.Context``), as the report cites it (pure)."""
    if strip is None:
        return None
    return {"file": strip.file, "sha256": strip.sha256, "width": strip.width, "height": strip.height,
            "times": [timestamp(p["t_ms"]) for p in strip.pictures], "pictures": strip.pictures,
            "made_by": strip.maker.get("name"), "decoder": strip.maker.get("decoder")}


def build_report(ws: Workspace, verdicts: Verdicts, verdicts_file: tuple[str, str] | None = None) -> dict[str, Any]:
    """The report model: the workspace's records and the merged ``verdicts`` (pure apart from reading the workspace).

    ``verdicts_file``: (path, sha256) of the verdicts.json the verdicts were written to, recorded in the report.
    """
    case: Case = ws.case
    videos = ws.videos()
    frames = ws.frames()
    project = ws.get_meta("project_id")
    tasks = ws.tasks()
    merged = verdicts.to_json()
    frames_by_key = {f["key"]: f for f in merged["frames"]}
    video_by_sha = {v.sha256: v for v in videos}
    legend = label_legend(case)
    group_of = {label: g for g in legend for label in g["labels"]}
    strips = ws.shown_contexts()  # the context strip each frame's review task showed
    graphic = {v.sha256: is_graphic(v, case) for v in videos}
    for f in merged["frames"]:
        f["timestamp"] = timestamp(f["t_ms"])
        f["context"] = context_cited(strips.get(f["key"]))
        f["graphic"] = graphic[f["video_sha256"]]
        prov = video_by_sha[f["video_sha256"]].provenance
        f["source"] = {k: prov.get(k) for k in ("title", "platform", "uploader", "posted_at")}
        for n, box in enumerate(f["boxes"], 1):
            group = group_of.get(box["label"])
            box.update(n=n, group=group["name"] if group else None, colour=group["colour"] if group else UNKNOWN_COLOUR,
                       of_reviewers=len(f["reviewers"]))
        f["lead_decisions"] = [
            {"claim": claim, "lead": v["adjudicated_by"], "decision": v["verdict"], "vote": v["vote"],
             "lead_had_answered": v["by_reviewer"].get(v["adjudicated_by"])}
            for claim, v in f["verdicts"].items() if v.get("adjudicated_by")]

    def evidence(keys: list[str], claim_id: str, copies: dict[str, list[str]]) -> list[dict[str, Any]]:
        """One entry per independent picture, with the re-uploads that show it too (counted once, with it)."""
        out = []
        for key in keys:
            f = frames_by_key[key]
            v = f["verdicts"][claim_id]
            original = frames_by_key[f["original"]] if f["original"] else f
            out.append({"frame_key": key, "source_id": f["source_id"], "timestamp": f["timestamp"], "t_ms": f["t_ms"],
                        "verdict": v["verdict"], "counts": v["counts"], "by_reviewer": v["by_reviewer"],
                        "adjudicated_by": v.get("adjudicated_by"), "vote": v.get("vote"),
                        "independent_source": original["source_id"],
                        "copies": [{"frame_key": c, "source_id": frames_by_key[c]["source_id"],
                                    "timestamp": frames_by_key[c]["timestamp"],
                                    "reviewed": bool(frames_by_key[c]["verdicts"][claim_id]["answers"])}
                                   for c in copies.get(key, [])]})
        return out

    def could_not(keys: list[str]) -> list[dict[str, Any]]:
        """Frames no reviewer could review, with who said so and why."""
        return [{"frame_key": k, "source_id": frames_by_key[k]["source_id"], "timestamp": frames_by_key[k]["timestamp"],
                 "graphic": frames_by_key[k]["graphic"],
                 "by": [c for c in frames_by_key[k]["cannot_review"] if not c["lead"]]} for k in keys]

    claims = []
    for claim, result in zip(case.claims, merged["claims"]):
        claims.append({
            "id": claim.id, "text": claim.text, "claimed_by": claim.claimed_by, "verdict": result["verdict"],
            "frames": result["frames"], "reviewed_frames": result["reviewed_frames"], "answers": result["answers"],
            "skips": result["skips"], "complete": result["complete"], "agreement": result["agreement"],
            "cannot_review": result["cannot_review"], "cannot_review_reasons": result["cannot_review_reasons"],
            "nobody_could_review": could_not(result["nobody_could_review"]),
            "basis": claim_basis(claim.id, result, merged["frames"], videos, case.review.min_reviewers),
            "vote": result["vote"], "decided_by": result["decided_by"], "decision": result["decision"],
            "independent_sources": result["sources"],
            "single_source": single_source(result),
            "supporting": evidence(result["supporting"], claim.id, result["copies"]),
            "contradicting": evidence(result["contradicting"], claim.id, result["copies"]),
            "disputed": evidence(result["disputed"], claim.id, result["copies"]),
            "short_of_quorum": [{"frame_key": k, "source_id": frames_by_key[k]["source_id"],
                                 "timestamp": frames_by_key[k]["timestamp"],
                                 "reviews": frames_by_key[k]["verdicts"][claim.id]["answers"],
                                 "task_id": frames_by_key[k]["task_id"]} for k in result["short_of_quorum"]],
        })

    video_verdicts = {v.sha256: v.claims for v in verdicts.videos}
    video_counts = {v["sha256"]: v for v in merged["videos"]}
    reuploads: dict[str, list[Reupload]] = {}
    for found in ws.reuploads():
        reuploads.setdefault(found.video_sha256, []).append(found)
    source_of = {v.sha256: v.source_id for v in videos}
    sources = []
    for video in videos:
        own = [f for f in merged["frames"] if f["video_sha256"] == video.sha256]
        links = sorted({source_of[frames_by_key[f["duplicate_of"]]["video_sha256"]] for f in own
                        if f["duplicate_of"] in frames_by_key})
        prov = video.provenance
        sources.append({
            **prov,
            "url": prov.get("url"),
            "sha256": video.sha256,
            "evidence_file": video.evidence,
            "original_path": Path(video.original_path).name,
            "size_bytes": video.size,
            "ingested_at": video.ingested_at,
            "metadata": video.metadata,
            "frames": len(own),
            "frames_status": video.frames_status or "not extracted",
            "frames_note": video.frames_note,
            "reupload_of": links,
            "duplicate_frames": sum(1 for f in own if f["duplicate_of"]),
            "reuploads": [reupload_of(r, source_of) for r in reuploads.get(video.sha256, [])],
            "verdicts": video_verdicts.get(video.sha256, {}),  # from its own frames only, never from copied ones
            "own_frames": video_counts[video.sha256]["own_frames"],
            "copy_of": video_counts[video.sha256]["copy_of"],
            "graphic": graphic[video.sha256],
            "skips": video_counts[video.sha256]["skips"],
            "cannot_review": video_counts[video.sha256]["cannot_review"],
            "cannot_review_reasons": video_counts[video.sha256]["cannot_review_reasons"],
            "nobody_could_review": len(video_counts[video.sha256]["nobody_could_review"]),
            "captures": [{"url_given": c.url_given, "canonical_url": c.canonical_url, "captured_at": c.captured_at,
                          "how": c.record.get("how"), "platform_fields": c.record.get("platform_fields", {}),
                          "tools": c.record.get("tools", {}), "info_file": c.info_file}
                         for c in ws.captures(video.sha256)],
        })

    reviewed = [f for f in merged["frames"] if any(v["answers"] for v in f["verdicts"].values())]
    people = {name: {"reviews": s["annotations"], "skipped": s["skipped"], "cannot_review": s["cannot_review"],
                     "lead_decisions": s["ground_truth"]} for name, s in merged["reviewers"].items()}
    nobody_could = could_not([f["key"] for f in merged["frames"] if f["nobody_could_review"]])
    decisions = [{"frame_key": f["key"], "source_id": f["source_id"], "timestamp": f["timestamp"], **d}
                 for f in merged["frames"] for d in f["lead_decisions"]]
    exports = [asdict(e) for e in ws.exports()]
    return {
        "schema": SCHEMA,
        "generated_at": now_utc(),
        "tool": {"name": "verify", "version": __version__},
        "case": {"id": case.id, "title": case.title, "summary": case.summary, "sha256": case.sha256},
        "summary": {
            "videos": len(videos),
            "frames": len(frames),
            "frames_sent_for_review": len(tasks),
            "frames_linked_as_reuploads": sum(1 for f in frames if f.duplicate_of),
            "frames_reviewed": len(reviewed),
            "submissions": sum(p["reviews"] + p["skipped"] + p["cannot_review"] + p["lead_decisions"]
                               for p in people.values()),
            "reviews": sum(p["reviews"] for p in people.values()),
            "skips": sum(p["skipped"] for p in people.values()),
            "cannot_review": sum(p["cannot_review"] for p in people.values()),
            "frames_nobody_could_review": len(nobody_could),
            "lead_decisions": sum(p["lead_decisions"] for p in people.values()),
            "reviewers": sum(1 for p in people.values() if p["reviews"] or p["skipped"] or p["cannot_review"]),
            "ambiguous_boxes": sum(len(f["ambiguous_boxes"]) for f in merged["frames"]),
        },
        "nobody_could_review": nobody_could,
        "still_open": still_open(verdicts, case.review.reviewers_per_frame, frames_by_key),
        "claims": claims,
        "sources": sources,
        "frames": merged["frames"],
        "reviewers": people,
        "adjudication": {
            "decisions": decisions,
            "lead_had_answered": sum(1 for d in decisions if d["lead_had_answered"]),
            "claims": [{"claim": c["id"], **c["decision"], "vote": c["vote"]} for c in claims if c["decision"]],
        },
        "locations": location_model(merged.get("locations"), case, videos),
        "legend": legend,
        "unknown_labels": merged["unknown_labels"],
        "unknown_label_policy": merged["unknown_label_policy"],
        "method": {
            "vocabulary": VOCABULARY,
            "rules": merged["rules"],
            "min_reviewers": case.review.min_reviewers,
            "reviewers_per_frame": case.review.reviewers_per_frame,
            "extractor": frames[0].extractor if frames else None,
            "label_studio": {"url": ws.get_meta("server_url"), "project_id": int(project) if project else None},
            "built_from_export": next((e for e in reversed(exports) if str(e["project_id"]) == project), None),
            "adjudication": {
                "project_id": int(adj) if (adj := ws.get_meta("adjudication_project_id")) else None,
                "lead": ws.get_meta("adjudication_lead"),
                "export": next((e for e in reversed(exports) if adj and str(e["project_id"]) == adj), None),
            },
            "exports_pulled": len(exports),
            "built_from_exports": [asdict(e) for e in ws.exports_in_use()],
            "built_from_verdicts": {"file": verdicts_file[0], "sha256": verdicts_file[1]} if verdicts_file else None,
            "drawing": {"font": font_name(), "colours": "one per label group (legend in the report)"},
        },
        "integrity": {
            "evidence_sha256": {v.source_id: v.sha256 for v in videos},
            "frames": {"count": len(frames), "digest": custody.files_digest((f.file, f.sha256) for f in frames)},
            "case_sha256": case.sha256,
            "custody_head": ws.get_meta(custody.HEAD),
            "how_to_check": "run `verify audit` in the workspace; the report's own sha256 is in custody.log "
                            "(action \"report\") and can be checked with sha256sum",
            # the log and the evidence; a report's own token is made once it is written (timestamps/…-report-….tsr)
            "timestamps": [timestamp_token(t) for t in ws.timestamps() if t["kind"] != "report"],
            "accepted": custody.accepted(ws),  # files no verify action wrote, accepted by a person (`verify audit --accept`)
        },
    }


def still_open(verdicts: Verdicts, needed: int, frames: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The frames still short of the case's reviews per frame (``Verdicts.still_open``), as the report cites them."""
    found = verdicts.still_open(needed)
    return {"tasks": found["open"], "takers": found["takers"],
            "need_new_reviewer": [{"frame_key": key, "source_id": frames[key]["source_id"],
                                   "timestamp": frames[key]["timestamp"], "reviews": reviews}
                                  for key, reviews in found["need_new_reviewer"]]}


def timestamp_token(token: dict[str, Any]) -> dict[str, Any]:
    """An RFC 3161 token as the report lists it, with the OpenSSL command that checks it without verify."""
    what = f"-digest {token['digest']}" if token["kind"] == "head" else f"-data {token['subject']}"
    return {"kind": token["kind"], "subject": token["subject"], "log_seq": token["log_seq"], "tsa": token["tsa"],
            "gen_time": token["gen_time"], "file": token["file"],
            "check": f"openssl ts -verify -in {token['file']} {what} -CAfile tsa-ca.pem"}


def osm_link(lat: float, lon: float, zoom: int = 16) -> str:
    """An OpenStreetMap link with a marker at the point."""
    return f"https://www.openstreetmap.org/?mlat={lat:.6f}&mlon={lon:.6f}#map={zoom}/{lat:.6f}/{lon:.6f}"


def location_model(locations: dict[str, Any] | None, case: Case, videos: list) -> dict[str, Any]:
    """The report's ``locations``: the merge's, with titles, place names, OpenStreetMap links and the rules (pure)."""
    if not locations:
        return {"places": [], "sources": [], "claims": [], "unparsed": [], "rules": []}
    title = {v.source_id: v.provenance.get("title") or v.source_id for v in videos}
    place_name = {p["id"]: p["name"] for p in locations["places"]}
    places = [{**p, "osm": osm_link(p["lat"], p["lon"]) if p["located"] else None} for p in locations["places"]]
    sources = []
    for s in locations["sources"]:
        sources.append({**s, "title": title.get(s["source_id"], s["source_id"]),
                        "osm": osm_link(*s["consensus"]) if s["consensus"] else None,
                        "reviewers": [{**r, "osm": osm_link(r["lat"], r["lon"])} for r in s["reviewers"]],
                        "distances": [{"place_id": pid, "place": place_name.get(pid, pid), "metres": m}
                                      for pid, m in s["distances_m"].items()]})
    claims = [{**c, "text_claim": case.claim(c["claim_id"]).text, "place": place_name.get(c["place_id"], c["place_id"])}
              for c in locations["claims"]]
    return {**locations, "places": places, "sources": sources, "claims": claims}


def distance_text(metres: float | None) -> str:
    """"850 m", "12.35 km"; "—" when unknown."""
    if metres is None:
        return "—"
    return f"{metres / 1000:.2f} km" if metres >= 1000 else f"{metres:.0f} m"


def location_figures(model: dict[str, Any]) -> dict[str, str]:
    """Source id → data: URI of its location figure (SVG drawn by verify; shown as an image, so it can run nothing)."""
    places = model["locations"]["places"]
    return {s["source_id"]: "data:image/svg+xml;base64," + base64.b64encode(figure_svg(s, places).encode()).decode()
            for s in model["locations"]["sources"] if s["reviewers"]}


def label_legend(case: Case) -> list[dict[str, Any]]:
    """The colour of each label group, as drawn on the frames: [{name, title, colour, labels}]."""
    return [{"name": g.name, "title": g.title, "colour": GROUP_COLOURS[i % len(GROUP_COLOURS)],
             "labels": [label.value for label in g.labels]} for i, g in enumerate(case.label_groups)]


def reason_words(reason: str) -> str:
    """A "cannot review" reason key in a few words ("not relevant"); the full text is CANNOT_REASONS'."""
    return reason.replace("_", " ")


def plural(n: int, word: str, many: str | None = None) -> str:
    """"1 frame", "2 frames" ("1 skip", "3 skips")."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def _listing(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else ""


def single_source(result: dict[str, Any]) -> bool:
    """Whether a decided claim rests on the footage of one independent source (pure)."""
    deciding = {"supported": ["supporting"], "contradicted": ["contradicting"],
                "disputed": ["supporting", "contradicting", "disputed"]}.get(result["verdict"], [])
    found = {s for kind in deciding for s in result["sources"].get(kind, [])}
    return len(found) == 1


def claim_basis(claim_id: str, result: dict[str, Any], frames: list[dict[str, Any]], videos: list,
                quorum: int = 2) -> dict[str, Any]:
    """What a claim's verdict rests on, in figures and in words (pure).

    Evidence is counted per independent picture (a re-upload and its original are one) and per independent
    source (a re-upload counts as the source it copies). Per source: the claim's frames from it, how many
    reviewed, how many are copies of another source's; the sources the case names for the claim (its own)
    that are still unreviewed; who answered; why a dispute is a dispute; the frames short of the quorum.
    """
    relevant = [f for f in frames if claim_id in f["bears_on"] or f["verdicts"][claim_id]["answers"]]
    per_source: dict[str, dict[str, Any]] = {}
    own_sources = [v.source_id for v in videos if not v.claims or claim_id in v.claims]
    for v in videos:
        mine = [f for f in relevant if f["video_sha256"] == v.sha256]
        if mine:
            per_source[v.source_id] = {
                "source_id": v.source_id, "own": v.source_id in own_sources, "frames": len(mine),
                "reviewed": sum(1 for f in mine if f["verdicts"][claim_id]["answers"]),
                "copies": sum(1 for f in mine if not f["verdicts"][claim_id]["answers"] and f["original"]),
            }
    answered_by = sorted({who for f in relevant for who in f["verdicts"][claim_id]["by_reviewer"]})
    leads = sorted({f["verdicts"][claim_id]["adjudicated_by"] for f in relevant if f["verdicts"][claim_id].get("adjudicated_by")})
    decided = {"supporting": result["supporting"], "contradicting": result["contradicting"], "disputed": result["disputed"]}
    by_key = {f["key"]: f for f in frames}

    words = []
    n_decided = sum(len(v) for v in decided.values())
    verdict = VERDICT_TEXT.get(result["verdict"], result["verdict"])
    if n_decided:
        parts = []
        for kind, keys in decided.items():
            if keys:
                sources = result["sources"][kind]
                parts.append(f"{plural(len(keys), 'independent frame')} {kind} it, from "
                             f"{plural(len(sources), 'independent source')} ({_listing(sources)})")
        words.append(f"{verdict}: {_listing(parts)}.")
        if single_source(result):
            words.append("Single source: nothing independent corroborates it yet.")
    else:
        words.append(f"{verdict}: no frame has a decided verdict on this claim yet.")
    copied = sorted({by_key[c]["source_id"] for cs in result["copies"].values() for c in cs})
    n_copies = sum(len(cs) for cs in result["copies"].values())
    if n_copies:
        words.append(f"{plural(n_copies, 'frame')} of {_listing(copied)} {'re-uploads' if n_copies == 1 else 're-upload'} "
                     "these pictures: counted once, with the original, not as corroboration.")
    words.append(f"{result['reviewed_frames']} of the claim's {plural(result['frames'], 'frame')} reviewed, "
                 f"{plural(result['answers'], 'answer')}" + (f" by {_listing(answered_by)}" if answered_by else "")
                 + ".")
    if leads:
        n_lead = sum(1 for f in relevant if f["verdicts"][claim_id].get("adjudicated_by"))
        words.append(f"Lead's decision, apart from the votes: {_listing(leads)} decided {plural(n_lead, 'frame')}.")
    decision = result.get("decision")
    if decision and decision["current"]:
        words.append(f"Lead's decision on the claim: {VERDICT_TEXT.get(decision['decision'], decision['decision'])}, by "
                     f"{decision['lead']}" + (f" at {decision['at']}" if decision["at"] else "")
                     + f", from the {len(result['supporting'])} supporting and {len(result['contradicting'])} "
                     f"contradicting frames side by side; the pictures alone are {result['vote']}."
                     + (f" Note: {decision['note']}" if decision["note"] else " No note."))
    elif result["verdict"] == "disputed" and not result["disputed"]:
        words.append(f"Disputed because frames conflict: {len(result['supporting'])} support it and "
                     f"{len(result['contradicting'])} contradict it; no single frame is disputed: "
                     "`verify adjudicate` sends the claim to the lead.")
    if decision and not decision["current"]:
        words.append(f"The lead's decision ({decision['decision']}, by {decision['lead']}) was made on other frames than "
                     "those that conflict now, so it does not decide the claim; `verify adjudicate` sends it again.")
    short = result.get("short_of_quorum") or []
    if short and result["verdict"] not in ("pending", "unreviewed"):
        pictures = len({by_key[k]["original"] or k for k in short}) if short else 0
        words.append(f"Provisional: {plural(pictures, 'frame')} of the claim still "
                     f"{'has' if pictures == 1 else 'have'} fewer than {plural(quorum, 'review')} (the quorum).")
    unreviewed = [s for s in per_source.values() if s["own"] and s["reviewed"] + s["copies"] < s["frames"]]
    if unreviewed:
        words.append("Still unreviewed among the sources said to show it: " + _listing(
            [f"{s['source_id']} ({s['frames'] - s['reviewed'] - s['copies']} of {plural(s['frames'], 'frame')})"
             for s in unreviewed]) + ".")
    if result.get("cannot_review"):
        nobody = len(result.get("nobody_could_review") or [])
        words.append(f"Reviewers said {plural(result['cannot_review'], 'time')} that they could not review one of its frames ("
                     + ", ".join(f"{reason_words(r)} {n}" for r, n in result["cannot_review_reasons"].items()) + ")"
                     + (f"; no reviewer could review {plural(nobody, 'frame')}" if nobody else "") + ".")
    own_reviewed = any(s["reviewed"] for s in per_source.values() if s["own"])
    if n_decided and not own_reviewed and any(s["own"] for s in per_source.values()):
        words.append("None of those sources' frames has been reviewed: the verdict rests on other footage only.")
    return {"sources": list(per_source.values()), "answered_by": answered_by, "leads": leads,
            "unreviewed_sources": [s["source_id"] for s in unreviewed], "text": " ".join(words),
            "provisional": bool(unreviewed) or bool(result.get("provisional"))}


# --- rendering -----------------------------------------------------------------------------


def render_json(model: dict[str, Any]) -> str:
    """JSON with every control character, bidirectional override and lone surrogate as a \\u escape."""
    return json_escaped(json.dumps(model, indent=2, ensure_ascii=False, sort_keys=False)) + "\n"


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]#!|>~])")


def md_escape(value: Any) -> str:
    """Escape text for Markdown: HTML metacharacters become entities, Markdown syntax is backslashed."""
    text = printable(value if value is not None else "")  # ESC, BEL, C1, bidi: written out (\\x1b), never raw
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
        finalize=_no_controls,
    )
    env.filters["md"] = md_escape
    env.filters["safe_url"] = safe_url
    env.filters["verdict"] = verdict_text
    env.filters["plural"] = plural
    env.filters["answer"] = lambda a: VERDICT_CHOICES.get(a, a)
    env.filters["vclass"] = lambda v: str(v or "").replace(" ", "-")
    env.filters["vote_text"] = vote_text
    env.filters["metres"] = distance_text
    env.filters["reason"] = reason_words
    env.filters["coord"] = lambda v: f"{v:.5f}" if isinstance(v, (int, float)) else "—"
    return env


def _no_controls(value: Any) -> Any:
    """Every value a template writes, with control characters and bidirectional overrides written out (\\x1b)."""
    if isinstance(value, Markup):
        return Markup(printable(str(value)))
    return printable(value) if isinstance(value, str) else value


def verdict_text(v: str | None) -> str:
    """A verdict or a vote as the report writes it, capitalised ("Supports", "Pending (reviews missing)")."""
    if not v:
        return ""
    return VERDICT_TEXT.get(v, v[:1].upper() + v[1:])


def vote_text(vote: dict[str, Any]) -> str:
    """A frame's vote on a claim (from the model: ``verdict``, ``adjudicated_by``): "Supports (lead's decision)"."""
    return verdict_text(vote["verdict"]) + (" (lead's decision)" if vote.get("adjudicated_by") else "")


def render_markdown(model: dict[str, Any], images: dict[str, str]) -> str:
    """``images`` maps frame key → relative path of its annotated picture."""
    return _environment(markdown=True).get_template("report.md.j2").render(r=model, images=images, csp=CSP,
                                                                           gallery=GALLERY_IMAGES)


def render_html(model: dict[str, Any], images: dict[str, str], thumbs: dict[str, str] | None = None,
                paper: str = "a4") -> str:
    """``images`` maps frame key → data: URI of its annotated picture, ``thumbs`` → of its gallery thumbnail."""
    return _environment().get_template("report.html.j2").render(r=model, images=images, thumbs=thumbs or images, csp=CSP,
                                                                gallery=GALLERY_IMAGES, paper=PAPER[paper],
                                                                figures=location_figures(model))


def draw_frames(ws: Workspace, model: dict[str, Any]) -> dict[str, Drawn]:
    """Each frame's annotated picture and thumbnail; records in the model whether each box's tag was drawn."""
    def one(f: dict[str, Any]) -> Drawn:
        return annotate(ws.path(f["file"]), f["boxes"], [b["colour"] for b in f["boxes"]])

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:  # Pillow releases the GIL while coding JPEG
        drawn = dict(zip((f["key"] for f in model["frames"]), pool.map(one, model["frames"])))
    for f in model["frames"]:
        d = drawn[f["key"]]
        for box, tag, short in zip(f["boxes"], d.tags, d.short):
            box["tag"] = "number only" if tag and short else "drawn" if tag else "not drawn (no free place)"
    return drawn


def write_reports(ws: Workspace, verdicts: Verdicts, formats: tuple[str, ...] = FORMATS, out_dir: Path | None = None,
                  verdicts_file: tuple[str, str] | None = None, paper: str = "a4") -> dict[str, Path]:
    """Build the model from the merged ``verdicts`` and write the requested formats; return format → path.

    A PDF is printed from a temporary copy of the HTML report laid out for ``paper`` ("a4" or
    "letter"); report.html itself is written only when asked for.
    """
    if paper not in PAPER:
        raise VerifyError(f"paper must be one of {', '.join(PAPER)}")
    model = build_report(ws, verdicts, verdicts_file)
    out_dir = out_dir or ws.path("reports")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    drawn = draw_frames(ws, model)
    if "json" in formats:
        written["json"] = out_dir / "report.json"
        atomic_write(written["json"], render_json(model).encode())
    for fmt, name in GEO_FILES.items():
        if fmt in formats:
            written[fmt] = out_dir / name
            text = render_geojson(model["locations"]) if fmt == "geojson" else render_kml(model["locations"], model["case"]["title"])
            atomic_write(written[fmt], text.encode())
    if "md" in formats:
        assets = out_dir / "report-assets"
        assets.mkdir(exist_ok=True)
        for stale in assets.glob("*.jpg"):  # pictures of an earlier report that this one no longer shows
            if stale.stem not in drawn:
                stale.unlink()
        images = {}
        for key, d in drawn.items():
            atomic_write(assets / f"{key}.jpg", d.jpeg)
            images[key] = f"report-assets/{key}.jpg"
        written["md"] = out_dir / "report.md"
        atomic_write(written["md"], render_markdown(model, images).encode())
    if "html" in formats or "pdf" in formats:
        def uri(data: bytes) -> str:
            return "data:image/jpeg;base64," + base64.b64encode(data).decode()

        images = {key: uri(d.jpeg) for key, d in drawn.items()}
        thumbs = {key: uri(d.thumb) for key, d in drawn.items()}
        if "html" in formats:
            written["html"] = out_dir / "report.html"
            atomic_write(written["html"], render_html(model, images, thumbs).encode())
        if "pdf" in formats:
            with tempfile.TemporaryDirectory(prefix="verify-print-") as tmp:
                printable = Path(tmp) / "report.html"
                printable.write_text(render_html(model, images, thumbs, paper), encoding="utf-8")
                written["pdf"] = render_pdf(printable, out_dir / "report.pdf")
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
        partial = pdf_path.with_name(f".{pdf_path.name}.{os.getpid()}.tmp")  # whole or not at all, as atomic_write
        done = subprocess.run(
            [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--no-pdf-header-footer",
             f"--print-to-pdf={partial}", html_path.resolve().as_uri()],
            capture_output=True, timeout=timeout,
        )
        printed = done.returncode == 0 and partial.is_file()
        if printed:
            os.replace(partial, pdf_path)
        else:
            partial.unlink(missing_ok=True)
    if not printed:
        raise VerifyError(f"Chromium could not print {html_path} to PDF (exit {done.returncode})")
    return pdf_path
