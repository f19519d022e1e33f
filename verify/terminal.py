"""What the CLI prints: each stage's result as lines of text (pure; ``verify.cli`` echoes them).

Everything that came from a file, a platform, a reviewer or a server goes through ``shown`` first:
a file name holding a newline must not forge an "ok" line, and a URL's password is never echoed.
"""

from __future__ import annotations

import re
from typing import Any

# Control characters (C0, DEL, C1), line/paragraph separators, bidirectional marks and overrides, and the lone
# surrogates Python gives bytes that are not UTF-8 (argv, file names): a name holding one could forge a line
# ("ok … ingested"), recolour the terminal, or fail to be written at all.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                          "\ud800-\udfff\ufffe\uffff]")
_KEEP_LINES = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
                         "\u2066-\u2069\ud800-\udfff\ufffe\uffff]")
_CREDENTIALS = re.compile(r"(?<=://)[^/?#\s]*@")  # up to the last @ of the authority: a password may hold @


def _escape(match: re.Match) -> str:
    char = match.group()
    if "\udc80" <= char <= "\udcff":  # a byte that was not UTF-8 (surrogateescape): shown as the byte
        return f"\\x{ord(char) - 0xDC00:02x}"
    return char.encode("unicode_escape", "backslashreplace").decode()


def shown(text: object) -> str:
    """Untrusted text as printed: control characters escaped (\\n, \\x1b, …), URL credentials replaced by ***."""
    return _UNPRINTABLE.sub(_escape, _CREDENTIALS.sub("***@", str(text)))


def printable(text: object, lines: bool = True) -> str:
    """Untrusted text as a report writes it: every control character, bidirectional override and undecodable byte
    escaped (\\x1b, \\u202e, \\xff) so no output format can carry one; with ``lines``, tab, newline and carriage
    return are kept (the formats' own escaping deals with them)."""
    return (_KEEP_LINES if lines else _UNPRINTABLE).sub(_escape, str(text))


_JSON_RAW = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def json_escaped(text: str) -> str:
    """JSON text (``json.dumps(..., ensure_ascii=False)``, which escapes only C0) with DEL, C1 controls,
    bidirectional marks and overrides, line separators and lone surrogates written as \\u escapes: the same
    values, and nothing raw a terminal or an editor would act on."""
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def from_bytes(text: str) -> tuple[str, str | None]:
    """A name or value that may hold bytes that are not UTF-8 (Python's surrogateescape: argv, file names), as
    (text UTF-8 can store, each such byte written \\xNN; the exact bytes in hex, or None when it was UTF-8 already).
    The pair is lossless: ``bytes.fromhex`` gives the original name back."""
    try:
        text.encode("utf-8")
        return text, None
    except UnicodeEncodeError:
        pass
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no byte stands for (JSON's "\\ud800"): written out, there are no bytes
        return text.encode("utf-8", "backslashreplace").decode("utf-8"), None
    return raw.decode("utf-8", "backslashreplace"), raw.hex()


def redacted(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """Text (a traceback) with URL logins replaced by *** and each of ``secrets`` (tokens, passwords) by ***."""
    text = _CREDENTIALS.sub("***@", text)
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def ingested(result: Any) -> str:
    return f"{'ok  ' if result.ok else 'FAIL'} {shown(result.path)}: {shown(result.message)}"


def ingest_summary(results: list[Any]) -> str:
    failed = sum(1 for r in results if not r.ok)
    known = sum(1 for r in results if r.ok and r.known)
    return f"{len(results) - failed - known} new, {known} already known, {failed} failed, of {len(results)}"


def frame_check(check: Any) -> str:
    where = f"{shown(check.source_id)} frame {check.frame_index} at {check.t_ms / 1000:.3f} s ({check.key})"
    if check.ok:
        return f"match {where}: decoded again from the evidence, pixels identical; JPEG intact"
    problems = [name for name, good in (("pixels differ", check.pixels_match), ("time differs", check.time_match),
                                        ("JPEG changed or missing", check.jpeg_intact),
                                        ("record differs from custody.log", check.as_logged)) if not good]
    return f"MISMATCH {where}: {', '.join(problems)}"


def extracted(result: Any) -> str:
    name = shown(f"{result.source_id} ({result.sha256[:12]})")
    if not result.ok:
        return f"FAIL {name}: {shown(result.message)}"
    if result.warning:  # a video partly or not at all extracted is never reported as plain "ok"
        return f"PART {name}: {shown(result.message)}; WARNING {shown(result.warning)}"
    return f"ok   {name}: {shown(result.message)}"


def pushed(result: Any) -> list[str]:
    made = "created" if result.created_project else (
        f"found again on the server by its case id and {result.recovered} matching frames" if result.recovered else "found")
    return [f"project {result.project_id} {made}: {result.imported} tasks imported, {result.already_there} already there, "
            f"{result.skipped_duplicates} re-uploaded frames not sent again",
            f"images: {shown(result.images)}",
            f"reviewers label at {shown(result.label_stream_url or result.project_url)}",
            "  hand this link to reviewers: it opens the label stream (one frame at a time, no one else's answers), "
            "after the login page if they are not logged in"]


def pulled(result: Any, adjudicating: bool, deciding_claims: bool = False) -> list[str]:
    what = "full export" if result.full else "changed since the last pull"
    archived = f" → {len(result.export_files)} export(s) archived in exports/" if result.export_files else ""
    cannot = getattr(result, "cannot_review", 0)
    reviews = result.annotations - result.skipped - cannot
    # the report's words (its Method section defines them): submissions = reviews + skips + "cannot review"
    lines = [f"pulled {plural(result.annotations, 'submission')}: {plural(reviews, 'review')}, "
             f"{plural(result.skipped, 'skip')}, {cannot} cannot review, by "
             f"{plural(result.reviewers, 'reviewer')} on {plural(result.tasks, 'task')} ({what}){archived}"]
    if adjudicating:
        lines.append(f"pulled {plural(result.lead_decisions, 'lead decision')} from the adjudication project"
                     + (f" ({plural(result.ignored, 'submission')} there by others than the lead ignored)"
                        if result.ignored else ""))
    if deciding_claims:
        lines.append(f"pulled {plural(getattr(result, 'claim_decisions', 0), 'lead decision')} on claims from the "
                     "claim-decisions project")
    for a in getattr(result, "ambiguous_boxes", []):  # never counted as either label, never dropped silently
        lines.append(f"ambiguous box: task {a['task_id']}, {shown(a['reviewer'])} gave one region two labels "
                     f"({', '.join(shown(label) for label in a['labels'])}): counted as neither")
    for u in result.unreadable_locations:  # never dropped silently: the coordinator can ask the reviewer
        lines.append(f"location not read: task {u['task_id']}, {shown(u['reviewer'])} wrote {shown(repr(u['text']))}: "
                     f"{shown(u['reason'])}")
    return lines


def merged(verdicts: Any) -> list[str]:
    """Per claim, the figures the report and `verify status` give: frames reviewed of the claim's frames, answers, skips,
    the independent sources the verdict rests on and whether it is provisional; then how many boxes are ambiguous."""
    width = max((len(c.id) for c in verdicts.claims), default=0)
    lines = [f"{claim.id:<{width}}  {claim.verdict:<13} {claim.reviewed_frames} of {plural(claim.frames, 'frame')} reviewed, "
             f"{plural(claim.answers, 'answer')}, {plural(claim.skips, 'skip')}, {claim.cannot_review} could not review"
             + (f", {claim.agreement['percent']}% unanimous" if claim.agreement["percent"] is not None else "")
             + _resting_on(claim) for claim in verdicts.claims]
    ambiguous = sum(len(f.ambiguous_boxes) for f in verdicts.frames)
    if ambiguous:  # each one is named (task, reviewer) by the pull that brought it, and in the report
        lines.append(f"{ambiguous} ambiguous {'box' if ambiguous == 1 else 'boxes'} (one region, two labels) counted as neither")
    return lines


def _resting_on(claim: Any) -> str:
    """", on 1 independent source (single source), provisional: 3 frames short of the quorum"."""
    found = claim.independent_sources
    words = f", on {plural(len(found), 'independent source')}" + (" (single source)" if len(found) == 1 else "") if found else ""
    if claim.provisional and claim.short_of_quorum:
        words += f", provisional: {plural(len(claim.short_of_quorum), 'frame')} short of the quorum"
    elif claim.provisional:
        words += ", provisional"
    return words


def adjudicated(result: Any, lead: str | None) -> list[tuple[str, bool]]:
    """Lines, each with whether it is a warning (stderr)."""
    lines = [(f"{plural(result.disputed, 'disputed frame')}; {result.imported} newly sent to adjudication project "
              f"{result.project_id}" + (f", with {plural(result.predictions, 'set')} of reviewers' boxes to accept or "
                                        "correct" if result.predictions else ""), False)]
    if result.boxes_left_out:
        boxes = f"{result.boxes_left_out} {'box' if result.boxes_left_out == 1 else 'boxes'}"
        lines.append((f"warning: {boxes} of reviewers left out of the lead's tasks: "
                      "the labeling config has no such label (any more)", True))
    if result.conflicts:
        lines.append((f"warning: the lead {shown(lead)} answered {plural(len(result.conflicts), 'of these disputed frame')} "
                      "as a reviewer (a conflict of interest; the report says so beside each decision): "
                      + "; ".join(shown(c) for c in result.conflicts), True))
    lines.append((f"the lead{' ' + shown(lead) if lead else ''} decides at {shown(result.project_url)}", False))
    return lines


def reported(reports: Any) -> list[str]:
    return [f"{fmt:<4} report: {shown(path)}  sha256 {sha}" for fmt, (path, sha) in reports.written.items()]


def status(state: Any) -> list[str]:
    lines = [f"workspace {shown(state.workspace)} · case {state.case}"]
    for v in state.videos:
        linked = f", {v.linked_frames} linked to another source" if v.linked_frames else ""
        lines.append(f"  video {shown(v.source_id)} ({v.sha256[:12]}): {v.frames} frames ({v.frames_status}){linked}")
        lines += [f"    re-uploads {shown(of)}" for of in v.reupload_of]
    project = state.label_studio["project_id"]
    where = f"project {project} on {shown(state.label_studio['url'])}" if project else "not pushed yet"
    lines.append(f"frames {state.frames} · tasks {state.tasks} ({where}) · last pull {state.last_pull or 'never'}")
    lines.append(f"{state.open_tasks} of {state.tasks} tasks still need answers ({state.reviewers_per_frame} reviewers per frame)"
                 + (" · as of the last pull; run `verify pull` for the latest" if state.last_pull else ""))
    needs = state.needs or {}
    if needs.get("takers"):
        lines.append("  still open to: " + ", ".join(f"{shown(who)} {n}" for who, n in needs["takers"].items()))
    if needs.get("need_new_reviewer"):
        stuck = needs["need_new_reviewer"]
        lines.append(f"  {plural(len(stuck), 'frame')} every reviewer so far has answered, skipped or could not review "
                     "needs another reviewer: add one with `verify reviewers add EMAIL` ("
                     + ", ".join(f"{shown(f['source_id'])} at {f['t_ms'] / 1000:.3f} s with {plural(f['reviews'], 'review')}"
                                 for f in stuck[:5]) + (", …" if len(stuck) > 5 else "") + ")")
    names = {name: shown(name) for name in state.reviewers}
    width = max([len("reviewer"), len("claim"), *map(len, names.values()), *(len(c["id"]) for c in state.claims)])
    if state.reviewers:  # names and ids are never cut: the columns are as wide as the longest
        lines.append(f"  {'reviewer':<{width}} {'assigned':>8} {'done':>6} {'skipped':>8} {'cannot':>7} {'remaining':>10}")
    for name, s in state.reviewers.items():
        lines.append(f"  {names[name]:<{width}} {s['assigned']:>8} {s['done']:>6} {s['skipped']:>8} "
                     f"{s.get('cannot_review', 0):>7} {s['remaining']:>10}")
    lines.append(f"  {'claim':<{width}} {'frames':>8} {'reviewed':>8} {'done':>6} {'answers':>8} {'skips':>6} {'cannot':>7} "
                 f"{'remaining':>10}  verdict")
    for c in state.claims:
        lines.append(f"  {c['id']:<{width}} {c['frames']:>8} {c['reviewed']:>8} {c['done']:>6} {c['answers']:>8} "
                     f"{c['skips']:>6} {c.get('cannot_review', 0):>7} {c['remaining']:>10}  {c['verdict']}"
                     + _evidence_words(c))
    cannot = state.cannot_review
    if cannot and cannot["annotations"]:  # "cannot" above: reviewers who said they could not review a frame, and why
        reasons = ", ".join(f"{shown(reason)} {n}" for reason, n in cannot["reasons"].items())
        nobody = cannot["frames_nobody_could_review"]
        lines.append(f"could not review: {plural(cannot['annotations'], 'answer')} ({reasons})"
                     + (f" · {plural(len(nobody), 'frame')} no reviewer could review: "
                        + ", ".join(f"{shown(f['source_id'])} at {f['t_ms'] / 1000:.3f} s" for f in nobody) if nobody else ""))
    g = state.locations
    if g:
        claims = ", ".join(f"{claim} {verdict}" for claim, verdict in g["claims"].items())
        lines.append(f"locations: {plural(g['frames_located'], 'frame')} located · {g['sources_located']} of "
                     f"{plural(g['sources'], 'source')} located: {g['agreed']} agreed, {g['disputed']} disputed, "
                     f"{g['pending']} pending" + (f" · {g['unreadable']} location texts not read (see `verify pull`)"
                                                  if g["unreadable"] else "") + (f" · {claims}" if claims else ""))
    q = state.adjudication
    if q["project_id"] or q["disputed_not_sent"]:
        leads = ", ".join(f"{shown(who)} {n}" for who, n in q["lead_decisions"].items())
        lines.append(f"adjudication: {plural(q['sent'], 'disputed frame')} sent (project {q['project_id'] or 'none yet'}), "
                     f"{q['decided']} decided, {q['waiting']} waiting for the lead, {q['disputed_not_sent']} disputed and "
                     f"not yet sent (`verify adjudicate`)" + (f" · lead decisions, counted apart: {leads}" if leads else ""))
    claims = q.get("claims") or {}
    if claims.get("decided") or claims.get("waiting") or claims.get("not_sent"):
        lines.append(f"claims whose frames conflict: {len(claims['decided'])} decided by the lead, "
                     f"{len(claims['waiting'])} waiting for the lead, {len(claims['not_sent'])} not yet sent "
                     "(`verify adjudicate`)" + (": " + ", ".join(claims["not_sent"]) if claims["not_sent"] else ""))
    return lines


def _evidence_words(row: dict[str, Any]) -> str:
    """" on 3 independent frames from 1 independent source (single source), provisional" for a status claim row."""
    words = ""
    if row.get("evidence_frames"):
        sources = row["independent_sources"]
        words = (f" on {plural(row['evidence_frames'], 'independent frame')} from {plural(sources, 'independent source')}"
                 + (" (single source)" if sources == 1 else ""))
    if row.get("provisional") and row["verdict"] not in ("pending", "unreviewed"):
        words += f", provisional ({row['short_of_quorum']} short of the quorum)" if row.get("short_of_quorum") else ", provisional"
    return words


def audited(result: Any, signatures_checked: bool) -> list[str]:
    stamps = result.timestamps
    lines = []
    for kind, paths in (("CHANGED", result.changed), ("MISSING", result.missing), ("UNEXPECTED", result.unexpected),
                        ("REWRITTEN", result.rewritten), ("REMOVED", result.removed), ("UNLOGGED", result.unlogged)):
        for path in paths:
            lines.append(f"{kind:<10} {shown(path)}" + (f": {shown(result.why[path])}" if path in result.why else ""))
    lines += [f"ROLLED BACK {shown(problem)}" for problem in getattr(result, "rolled_back", [])]
    lines += [f"LOG        {shown(problem)}" for problem in result.log.problems + stamps.problems]
    lines += [f"NOTE       {shown(note)}" for note in result.log.notes + result.notes + stamps.notes]
    against = len(result.rewritten) + len(result.removed) + len(result.unlogged)
    anchored = (f"anchored up to entry {stamps.anchored_seq} by {shown(stamps.anchored_by)} at {stamps.anchored_at}"
                + (f" ({stamps.verified} signatures verified)" if signatures_checked else " (signatures not checked: --tsa-ca)")
                if stamps.anchored_seq else "not externally anchored")
    lines.append(f"{result.checked} stored files checked: {len(result.changed)} changed, {len(result.missing)} missing, "
                 f"{len(result.unexpected)} unexpected, {against} not as logged; custody log: {result.log.entries} "
                 "entries, " + ("chain intact" if result.log.ok and not stamps.problems else "BROKEN") + f"; {anchored}"
                 + ("; ROLLED BACK since a report you hold" if getattr(result, "rolled_back", None) else ""))
    return lines
