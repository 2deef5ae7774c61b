"""`crack-car review RUN...`: one self-contained HTML file (no network, images inline) with
the run summary, a timeline of crack ratio over time and distance with the detections
marked, a gallery of the top detections, a map when there is GPS, faults and mode
changes, and precision/recall/F1/IoU where the run has ground truth or review labels."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Sequence

from edge_app.recorder import RunReader
from edge_app.review.runs import (
    ON_CRACK_SHARE,
    TRUTH_SLACK_PX,
    RunData,
    load_run,
    overlay_jpeg,
    truth_verdict,
)

SEV_ORDER = {"high": 3, "medium": 2, "low": 1, None: 0}
CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 8px;
text-align:left;font-size:13px}th{background:#eee}.runs{display:flex;gap:24px;flex-wrap:wrap}
.run{flex:1;min-width:420px}.gallery{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border:1px solid #ddd;padding:6px;width:330px;font-size:12px}
.card img{width:160px;height:120px;object-fit:cover}.high{color:#c00}.medium{color:#e67e00}
.low{color:#a90}svg{background:#fff;border:1px solid #ddd}.muted{color:#888}
.truth.fa{color:#c00;font-weight:bold}.truth.ok{color:#070}"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _img(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def timeline_svg(d: RunData, by: str = "time", w: int = 640, h: int = 170) -> str:
    """Crack ratio against time (s from start) or distance (m), detections as markers."""
    if not d.frame_seqs:
        return "<p class='muted'>no frames</p>"
    t0 = d.frame_times[0]
    if by == "time":
        xs = [t - t0 for t in d.frame_times]
        det_x = []
        times = dict(zip(d.frame_seqs, xs))
        for det in d.detections:
            det_x.append(times.get(det.get("frame"), 0.0))
        unit = "s"
    else:
        # distance per frame: interpolate the odometry of detections and telemetry in time
        pts = sorted((x.get("time_s", 0.0), x.get("odometry_m") or 0.0) for x in _odo(d))
        xs = [_interp(pts, t - t0) for t in d.frame_times]
        det_x = [det.get("odometry_m") or 0.0 for det in d.detections]
        unit = "m"
    xmax = max(max(xs), 1e-6)
    ymax = max(max(d.crack_ratio), 1e-6)
    step = max(1, len(xs) // 1500)  # keep 10,000-frame runs light
    pts = " ".join(f"{40 + (w - 50) * x / xmax:.1f},{h - 25 - (h - 40) * y / ymax:.1f}"
                   for x, y in list(zip(xs, d.crack_ratio))[::step])
    marks = "".join(f'<line class="det" x1="{40 + (w - 50) * x / xmax:.1f}" y1="10" '
                    f'x2="{40 + (w - 50) * x / xmax:.1f}" y2="{h - 25}" stroke="#c00" '
                    'stroke-opacity="0.35"/>' for x in det_x)
    bands = ""
    if by == "time":  # stretches the car could not inspect, shaded grey
        bands = "".join(
            f'<rect class="degraded" data-view="{_e(state)}" x="{40 + (w - 50) * a / xmax:.1f}" '
            f'y="10" width="{max(1.0, (w - 50) * (b - a) / xmax):.1f}" height="{h - 35}" '
            f'fill="#888" fill-opacity="0.25"><title>view {_e(state)}</title></rect>'
            for a, b, state in d.stats.get("degraded_view", {}).get("spans", []))
    return (f'<svg class="timeline" data-by="{by}" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}">{bands}{marks}<polyline fill="none" stroke="#06c" '
            f'stroke-width="1.2" points="{pts}"/><text x="40" y="{h - 6}" font-size="11">0'
            f'</text><text x="{w - 60}" y="{h - 6}" font-size="11">{xmax:.1f} {unit}</text>'
            f'<text x="2" y="14" font-size="11">{ymax:.3f}</text><text x="2" y="{h - 25}" '
            'font-size="11">0</text></svg>')


def _odo(d: RunData) -> List[Dict[str, Any]]:
    t0 = d.frame_times[0] if d.frame_times else 0.0
    out = [{"time_s": (x.get("time") or t0) - t0, "odometry_m": x.get("odometry_m")}
           for x in d.telemetry if "odometry_m" in x]
    times = dict(zip(d.frame_seqs, d.frame_times))
    out += [{"time_s": times.get(x.get("frame"), t0) - t0, "odometry_m": x.get("odometry_m")}
            for x in d.detections]
    return out or [{"time_s": 0.0, "odometry_m": 0.0}]


def _interp(pts: Sequence, t: float) -> float:
    import bisect
    ts = [p[0] for p in pts]
    i = bisect.bisect_left(ts, t)
    if i <= 0:
        return pts[0][1] * (t / ts[0]) if ts[0] > 0 else pts[0][1]
    if i >= len(pts):
        return pts[-1][1]
    (ta, a), (tb, b) = pts[i - 1], pts[i]
    return a + (b - a) * (t - ta) / (tb - ta) if tb > ta else b


EARTH_M_PER_DEG = 111_320.0  # metres per degree of latitude (and of longitude at the equator)


def _nice(x: float) -> float:
    """The largest of 1, 2, 5 x 10^k not above x."""
    k = 10 ** math.floor(math.log10(x)) if x > 0 else 1.0
    return max(v * k for v in (1, 2, 5) if v * k <= x) if x >= k else k


def map_svg(d: RunData, w: int = 420, h: int = 300) -> str:
    """Detections on a local east/north plane in metres (equirectangular about the run's
    mean latitude, the same scale on both axes), with axes in metres and a scale bar."""
    pts = [(g["lat"], g["lon"]) for g in (det.get("gps") for det in d.detections)
           if isinstance(g, dict) and "lat" in g and "lon" in g]
    if not pts:
        return "<p class='muted'>no GPS in this run</p>"
    lat0 = sum(p[0] for p in pts) / len(pts)
    lon0 = sum(p[1] for p in pts) / len(pts)
    kx = EARTH_M_PER_DEG * math.cos(math.radians(lat0))
    east = [(lo - lon0) * kx for _, lo in pts]
    north = [(la - lat0) * EARTH_M_PER_DEG for la, _ in pts]
    pad_l, pad_b, pad = 44, 30, 10
    span = max(max(east) - min(east), max(north) - min(north), 10.0)  # at least 10 m
    scale = min((w - pad_l - pad) / span, (h - pad_b - pad) / span)  # px per metre
    cx, cy = (max(east) + min(east)) / 2, (max(north) + min(north)) / 2
    ox = pad_l + (w - pad_l - pad) / 2
    oy = pad + (h - pad_b - pad) / 2

    def px(e: float, n: float) -> tuple:
        return ox + (e - cx) * scale, oy - (n - cy) * scale
    dots = "".join('<circle cx="{:.1f}" cy="{:.1f}" r="4" fill="#c00"/>'.format(*px(e, n))
                   for e, n in zip(east, north))
    bar = _nice(span / 4)
    x0, y0 = pad_l + 6, h - pad_b - 8
    axes = (f'<line x1="{pad_l}" y1="{pad}" x2="{pad_l}" y2="{h - pad_b}" stroke="#888"/>'
            f'<line x1="{pad_l}" y1="{h - pad_b}" x2="{w - pad}" y2="{h - pad_b}" '
            'stroke="#888"/>'
            f'<text x="{pad_l}" y="{h - 8}" font-size="10">west-east (m)</text>'
            f'<text x="2" y="{pad + 8}" font-size="10">N (m)</text>'
            f'<text x="{w - pad - 60}" y="{h - 8}" font-size="10">'
            f'{(w - pad_l - pad) / scale:.0f} m wide</text>')
    scalebar = (f'<g class="scalebar"><line x1="{x0}" y1="{y0}" x2="{x0 + bar * scale:.1f}" '
                f'y2="{y0}" stroke="#000" stroke-width="3"/><text x="{x0}" y="{y0 - 5}" '
                f'font-size="10">{bar:g} m</text></g>')
    return (f'<svg class="map" width="{w}" height="{h}" data-m-per-px="{1 / scale:.4f}">'
            f'{axes}{scalebar}{dots}</svg>')


def gallery(d: RunData, reader: RunReader, top: int = 12) -> str:
    ranked = sorted(d.detections, key=lambda x: (SEV_ORDER.get(x.get("severity"), 0),
                                                 x.get("crack_ratio") or 0), reverse=True)[:top]
    frames = {f.seq: f for f in reader.frames}
    cards = []
    for det in ranked:
        rec = frames.get(det.get("frame"))
        if rec is None:
            continue
        jpeg = reader.jpeg(rec)
        mask = reader.mask(rec.seq)
        c = det.get("cracks") or [{}]
        label = d.labels.get(det.get("seq"), "")
        share = d.on_truth.get(rec.seq)
        verdict = truth_verdict(share)
        truth = (f'<br><span class="truth {"fa" if verdict == "false alarm" else "ok"}">'
                 f'ground truth: {verdict} ({share:.0%} of the marks on a drawn crack)'
                 '</span>') if verdict else ""
        cards.append(
            f'<div class="card" data-seq="{_e(det.get("seq"))}"><img alt="frame" '
            f'src="{_img(overlay_jpeg(jpeg, None, 320))}"><img alt="overlay" '
            f'src="{_img(overlay_jpeg(jpeg, mask, 320))}"><div>'
            f'<b class="{_e(det.get("severity"))}">{_e(det.get("severity"))}</b> '
            f'frame {_e(det.get("frame"))}, '
            f'{_e(det.get("odometry_m"))} m, ratio {det.get("crack_ratio") or 0:.4f}, '
            f'{len(det.get("cracks") or [])} crack(s); widest {_e(c[0].get("max_width_px"))} '
            f'px, length {_e(c[0].get("length_px"))} px {_e(label)}{truth}</div></div>')
    return '<div class="gallery">' + "".join(cards) + "</div>" if cards else \
        "<p class='muted'>no detections</p>"


def _table(rows: List[List[Any]], head: List[str], cls: str = "") -> str:
    return (f'<table class="{cls}"><tr>' + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in r) + "</tr>" for r in rows)
            + "</table>")


def _degraded_text(v: Dict[str, Any]) -> str:
    """'none', or how long the view was blurred or dark: those stretches were not
    inspected, whatever the crack ratio says there."""
    spans = v.get("spans") or []
    if not spans:
        return "none"
    by: Dict[str, float] = {}
    for a, b, state in spans:
        by[state] = by.get(state, 0.0) + b - a
    parts = ", ".join(f"{k} {t:.1f} s" for k, t in sorted(by.items()))
    return (f'{v.get("seconds", 0.0):.1f} s ({v.get("share", 0.0):.0%} of the run) in '
            f"{len(spans)} stretch{'es' if len(spans) > 1 else ''}: {parts}; not inspected "
            "(grey on the timeline)")


def run_section(d: RunData) -> str:
    s = d.stats
    reader = RunReader(d.dir)
    summary = _table([["run", s["run_id"]], ["frames", s["frames"]],
                      ["duration", f'{s["duration_s"]} s'], ["distance", f'{s["distance_m"]} m'],
                      ["fps", s["fps"]], ["latency p50 / p95",
                                          f'{s["latency_ms_p50"]} / {s["latency_ms_p95"]} ms'],
                      ["detections", s["detections"]],
                      ["by severity", ", ".join(f"{k} {v}" for k, v in s["by_severity"].items())],
                      ["model", f'{s["model"]} ({(s["model_sha256"] or "")[:12]})'],
                      ["source", s["source"]],
                      ["degraded view", _degraded_text(s.get("degraded_view") or {})],
                      ["malformed records skipped", s.get("malformed_records", 0)]],
                     ["", "value"], "summary")
    scores = ""
    if d.truth_scores:
        t = d.truth_scores
        scores += "<h3>Against ground truth</h3>" + _table(
            [[f'{t["precision"]:.4f}', f'{t["recall"]:.4f}', f'{t["f1"]:.4f}', f'{t["iou"]:.4f}',
              t["frames"], t.get("detections_on_cracks", ""), t.get("false_alarms", "")]],
            ["precision", "recall", "F1", "IoU", "frames", "detections on a crack",
             "false alarms"], "truth") + (
            '<p class="muted">Pixel scores, averaged over the frames: precision is the share '
            "of marked pixels on a drawn crack, recall the share of crack pixels marked, IoU "
            "both at once. A mark one pixel wider than a hairline crack halves its IoU, so a "
            "car that finds every crack can still score low; the detections' verdicts below "
            f"say which marks were on a crack (at least {ON_CRACK_SHARE:.0%} of their pixels "
            f"within {TRUTH_SLACK_PX} px of one) and which were false alarms (stains, "
            "markings, shadows).</p>")
    if d.label_scores:
        ls = d.label_scores
        scores += "<h3>Review labels</h3>" + _table(
            [[ls["labelled"], ls["confirmed"], ls["false_positive"], f'{ls["precision"]:.3f}']],
            ["labelled", "confirmed", "false positive", "detection precision"], "labels")
    events = _table([[e.get("event"), e.get("reason") or e.get("to") or e.get("cmd") or "",
                      json.dumps({k: v for k, v in e.items() if k not in ("t", "event")})[:120]]
                     for e in d.events], ["event", "what", "details"], "events")
    return (f'<div class="run" id="run-{_e(s["run_id"])}"><h2>Run {_e(s["run_id"])}</h2>'
            f'{summary}{scores}<h3>Crack ratio over time</h3>{timeline_svg(d, "time")}'
            f'<h3>Crack ratio over distance</h3>{timeline_svg(d, "distance")}'
            f'<h3>Top detections</h3>{gallery(d, reader)}<h3>Map</h3>{map_svg(d)}'
            f'<h3>Faults and mode changes</h3>{events}</div>')


def render(runs: Sequence[Path]) -> str:
    data = [load_run(Path(r)) for r in runs]
    compare = ""
    if len(data) > 1:
        compare = "<h2>Side by side</h2>" + _table(
            [[d.stats["run_id"], d.stats["frames"], d.stats["distance_m"], d.stats["fps"],
              d.stats["detections"], d.truth_scores["iou"] if d.truth_scores else ""]
             for d in data], ["run", "frames", "distance m", "fps", "detections", "IoU"],
            "compare")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>crack-car review</title>"
            f"<style>{CSS}</style></head><body><h1>crack-car field review</h1>{compare}"
            f"<div class='runs'>{''.join(run_section(d) for d in data)}</div></body></html>")


def write_report(runs: Sequence[Path], out: Path) -> Path:
    from crack_common.files import atomic_write_text
    atomic_write_text(out, render(runs))
    return out
