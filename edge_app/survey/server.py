"""`crack-car survey serve`: the survey's cracks on a map, offline. The page and Leaflet
(vendored, static/leaflet) are served by this process; the base map is a user's tile
source (`--tiles https://.../{z}/{x}/{y}.png`, or none) and, without one, a plain metric
grid. Cracks are drawn by severity (colour) and trend (ring), filtered by severity,
trend, car and date, and each opens a popup with its sightings' sizes over time. Only
the viewport is read (`/api/cracks?bbox=`, the store's R*Tree). A crack can be labelled
confirmed or false positive from its popup (`POST /api/label`: the page's session token,
this server's Host and Origin only, as the review page's labels). Bound to loopback
unless told otherwise."""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Optional
from urllib.parse import parse_qs, urlsplit

from edge_app.links import http_util
from edge_app.links.http_util import BoundedServer
from edge_app.survey.store import SurveyStore

STATIC = Path(__file__).with_name("static")
MAX_CRACKS = 5000  # per answer: a viewport that holds more says so instead
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>crack-car survey</title>
<link rel="stylesheet" href="leaflet/leaflet.css"><script src="leaflet/leaflet.js"></script>
<style>html,body{margin:0;height:100%;font-family:system-ui,sans-serif}
#map{position:absolute;top:44px;bottom:0;left:0;right:0;background:#f4f4f0}
#bar{height:44px;display:flex;gap:.8em;align-items:center;padding:0 1em;background:#222;
color:#eee;font-size:14px}#bar select,#bar input{font-size:13px}
.grid line{stroke:#ccc;stroke-width:1}</style></head><body>
<div id="bar"><b>crack-car survey</b>
<label>severity <select id="severity"><option value="">any</option><option>high</option>
<option>medium</option><option>low</option></select></label>
<label>trend <select id="trend"><option value="">any</option><option>new</option>
<option>grown</option><option>unchanged</option><option>missing</option></select></label>
<label>car <input id="car" size="10" placeholder="any"></label>
<label>seen since <input id="since" type="date"></label>
<span id="status"></span></div><div id="map"></div><script>
const TILES = __TILES__, TOKEN = __TOKEN__;
const COLORS = {high: '#d00', medium: '#f80', low: '#dc0', '': '#888'};
const map = L.map('map', {preferCanvas: true});
if (TILES) { L.tileLayer(TILES, {maxZoom: 22}).addTo(map); }
else {  // no base map: a plain grid, 10 m squares (the scale bar says so)
  const Grid = L.GridLayer.extend({createTile: function (c) {
    const t = document.createElement('canvas'); t.width = t.height = 256;
    const g = t.getContext('2d'); g.strokeStyle = '#ddd'; g.strokeRect(0, 0, 256, 256);
    return t; }});
  new Grid({maxZoom: 24}).addTo(map);
}
L.control.scale({imperial: false}).addTo(map);
const layer = L.layerGroup().addTo(map);
function query() {
  const b = map.getBounds(), q = new URLSearchParams({bbox: [b.getWest(), b.getSouth(),
    b.getEast(), b.getNorth()].join(',')});
  for (const k of ['severity', 'trend', 'car', 'since']) {
    const v = document.getElementById(k).value; if (v) q.set(k, v); }
  return 'api/cracks?' + q;
}
function popup(c) {
  const rows = c.history.map(h => `<tr><td>${h.day}</td><td>${h.length_m.toFixed(2)} m` +
    `</td><td>${h.width_mm.toFixed(1)} mm</td><td>${h.sightings}</td></tr>`).join('');
  const buttons = `<br><button onclick="label('${c.crack_id}','confirmed')">confirm</button>` +
    ` <button onclick="label('${c.crack_id}','false_positive')">false positive</button>`;
  return `<b>${c.severity || 'unrated'}</b>, ${c.trend}${c.label ? ', ' + c.label : ''}` +
    `<br>${c.sightings} sightings by ${c.cars} car(s) in ${c.runs} run(s)<br>` +
    `first ${c.first_seen}<br>last ${c.last_seen}<table class="history"><tr><th>day</th>` +
    `<th>length</th><th>width</th><th>seen</th></tr>${rows}</table>` + buttons;
}
async function label(id, value) {
  const r = await fetch('api/label', {method: 'POST', headers: {'Content-Type':
    'application/json', 'X-Survey-Token': TOKEN}, body: JSON.stringify({crack_id: id,
    label: value})});
  const said = r.ok ? `labelled ${value}` : `label refused: ${(await r.json()).error}`;
  map.closePopup(); await load();
  document.getElementById('status').textContent += ` (${said})`;
}
let latest = 0;
async function load() {  // a slower earlier answer never overwrites a later one
  const mine = ++latest; const r = await fetch(query()); const j = await r.json();
  if (mine !== latest) return;
  layer.clearLayers();
  for (const c of j.cracks) {
    const m = L.circleMarker([c.y, c.x], {radius: 6 + Math.min(10, c.length_m * 4),
      color: c.trend === 'grown' ? '#000' : COLORS[c.severity] || '#888',
      weight: c.trend === 'grown' ? 3 : 1, fillColor: COLORS[c.severity] || '#888',
      fillOpacity: 0.8});
    m.crackId = c.crack_id; m.bindPopup(popup(c)); m.addTo(layer);
  }
  document.getElementById('status').textContent = `${j.cracks.length} cracks in view` +
    (j.truncated ? ' (zoom in for all)' : '');
  document.body.dataset.cracks = j.cracks.length; document.body.dataset.ready = '1';
}
for (const k of ['severity', 'trend', 'car', 'since'])
  document.getElementById(k).addEventListener('change', load);
map.on('moveend', load);
fetch('api/extent').then(r => r.json()).then(e => {
  if (e.bounds) map.fitBounds([[e.bounds[1], e.bounds[0]], [e.bounds[3], e.bounds[2]]],
                              {padding: [30, 30], maxZoom: 21});
  else map.setView([0, 0], 2);
});
</script></body></html>"""


def crack_view(store: SurveyStore, box: tuple, params: Dict[str, List[str]]) -> Dict[str, Any]:
    """The cracks in BOX that pass the filters, each with its per-day history."""
    want = {k: params.get(k, [""])[0] for k in ("severity", "trend", "car", "since")}
    out, truncated = [], False
    for c, days, cars in store.view(box):
        if c.space != "wgs84" or (want["severity"] and c.severity != want["severity"]) or \
                (want["trend"] and c.trend != want["trend"]) or \
                (want["since"] and c.last_seen[:10] < want["since"]) or \
                (want["car"] and want["car"] not in cars):
            continue
        if len(out) >= MAX_CRACKS:
            truncated = True
            break
        out.append({**asdict(c), "history": days})
    return {"cracks": out, "truncated": truncated}


class SurveyServer:
    def __init__(self, db: Path, host: str = "127.0.0.1", port: int = 8095,
                 tiles: Optional[str] = None):
        self.store = SurveyStore(db)
        self._lock = threading.Lock()  # one SQLite connection, requests on threads
        self.token = secrets.token_urlsafe(24)  # in the page only; required to label
        page = PAGE.replace("__TILES__", json.dumps(tiles or "")).replace(
            "__TOKEN__", json.dumps(self.token)).encode()
        srv = self

        class Handler(http_util.Handler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                if urlsplit(self.path).path != "/api/label":
                    return self._send(404, "text/plain", b"not found\n")
                refusal = self.write_refusal(srv.token, "X-Survey-Token")
                if refusal:
                    return self._send(403, "application/json",
                                      json.dumps({"error": refusal}).encode())
                status, body = self.read_json_body()
                if status is not None:
                    return self._send(status, "application/json",
                                      json.dumps({"error": body}).encode())
                try:
                    with srv._lock:
                        n = srv.store.label(str(body["crack_id"]), str(body["label"]))
                except (KeyError, TypeError, ValueError) as e:
                    return self._send(400, "application/json",
                                      json.dumps({"error": f"bad label: {e}"}).encode())
                self._send(200 if n else 404, "application/json",
                           json.dumps({"sightings": n}).encode())

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                u = urlsplit(self.path)
                if not self.host_allowed():
                    return self._send(403, "text/plain", b"unknown Host\n")
                if u.path == "/":
                    return self._send(200, "text/html; charset=utf-8", page)
                if u.path in ("/leaflet/leaflet.js", "/leaflet/leaflet.css"):
                    kind = "text/css" if u.path.endswith(".css") else "text/javascript"
                    return self._send(200, kind, (STATIC / u.path.lstrip("/")).read_bytes())
                if u.path == "/api/extent":
                    with srv._lock:
                        body = {"bounds": srv.store.extent()}
                    return self._send(200, "application/json", json.dumps(body).encode())
                if u.path == "/api/cracks":
                    q = parse_qs(u.query)
                    try:
                        box = tuple(float(v) for v in q["bbox"][0].split(","))
                        if len(box) != 4 or not all(abs(v) <= 360 for v in box):
                            raise ValueError
                    except (KeyError, ValueError):
                        return self._send(400, "text/plain",
                                          b"bbox=min_lon,min_lat,max_lon,max_lat\n")
                    with srv._lock:
                        body = crack_view(srv.store, box, q)
                    return self._send(200, "application/json", json.dumps(body).encode())
                self._send(404, "text/plain", b"not found\n")

        self.httpd = BoundedServer((host, port), Handler)
        self.host, self.port = self.httpd.server_address[:2]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self) -> SurveyServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.store.close()
