"""`crack-car review RUN --serve`: a local page to scrub a run frame by frame with the
overlay on or off, jump between detections, and mark each detection confirmed or false
positive (saved beside the run as labels.jsonl)."""

from __future__ import annotations

import json
import logging
import secrets
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from edge_app.links import http_util
from edge_app.links.http_util import BoundedServer
from edge_app.recorder import RunReader
from edge_app.review.runs import append_label, load_run, overlay_jpeg, read_labels

log = logging.getLogger(__name__)

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>crack-car run review</title>
<style>body{font-family:system-ui,sans-serif;margin:16px;background:#111;color:#eee}
#frame{max-width:100%;border:1px solid #444;display:block;margin:8px 0}
button{margin:2px;padding:6px 10px}#scrub{width:100%}.info{font-size:13px}
#label-status{font-weight:bold}</style></head><body>
<h1>Run <span id="run-id"></span></h1>
<div><button id="prev-det">&#9664; detection</button><button id="prev">&#9664;</button>
<button id="next">&#9654;</button><button id="next-det">detection &#9654;</button>
<label><input type="checkbox" id="overlay" checked> overlay</label>
<button id="confirm">confirmed</button><button id="false-positive">false positive</button>
<span id="label-status"></span></div>
<input type="range" id="scrub" min="0" value="0">
<img id="frame" alt="frame"><div class="info" id="info"></div>
<script>
let run=null, idx=0;
const $=id=>document.getElementById(id);
function det(){return run.detections.find(d=>d.frame===run.frames[idx]);}
function show(){
  const seq=run.frames[idx]; $('scrub').value=idx;
  $('frame').src='frame/'+seq+'.jpg?overlay='+($('overlay').checked?1:0);
  const d=det();
  $('info').textContent='frame '+seq+' ('+(idx+1)+'/'+run.frames.length+')'+
    (d?' - detection '+d.seq+', '+d.severity+', ratio '+d.crack_ratio:'');
  $('label-status').textContent=d?(run.labels[d.seq]||'unlabelled'):'';
  $('confirm').disabled=$('false-positive').disabled=!d;
}
function go(i){idx=Math.max(0,Math.min(run.frames.length-1,i));show();}
function jump(dir){const fr=run.detections.map(d=>run.frames.indexOf(d.frame))
  .filter(i=>dir>0?i>idx:i<idx);if(fr.length)go(dir>0?Math.min(...fr):Math.max(...fr));}
async function label(l){const d=det();if(!d)return;
  const r=await fetch('api/labels',{method:'POST',headers:{'Content-Type':'application/json',
    'X-Review-Token':'__TOKEN__'},
    body:JSON.stringify({seq:d.seq,label:l})});
  if(r.ok){run.labels[d.seq]=l;show();}}
$('prev').onclick=()=>go(idx-1);$('next').onclick=()=>go(idx+1);
$('prev-det').onclick=()=>jump(-1);$('next-det').onclick=()=>jump(1);
$('overlay').onchange=show;$('scrub').oninput=e=>go(+e.target.value);
$('confirm').onclick=()=>label('confirmed');$('false-positive').onclick=()=>label('false_positive');
fetch('api/run').then(r=>r.json()).then(j=>{run=j;$('run-id').textContent=j.run_id;
  $('scrub').max=j.frames.length-1;document.body.dataset.ready='1';show();});
</script></body></html>"""


class ReviewServer:
    def __init__(self, run_dir: Path, host: str = "127.0.0.1", port: int = 8091):
        self.dir = Path(run_dir)
        self.reader = RunReader(self.dir)
        data = load_run(self.dir)
        self.frames = {f.seq: f for f in self.reader.frames}
        self.meta = {"run_id": data.stats["run_id"], "frames": data.frame_seqs,
                     "detections": [{"seq": d.get("seq"), "frame": d.get("frame"),
                                     "severity": d.get("severity"),
                                     "crack_ratio": d.get("crack_ratio")}
                                    for d in data.detections]}
        self._lock = threading.Lock()
        self.token = secrets.token_urlsafe(24)  # in the page; required to change labels
        srv = self

        class Handler(http_util.Handler):
            def do_GET(self) -> None:  # noqa: N802
                u = urlsplit(self.path)
                if not self.host_allowed():
                    return self._send(403, "text/plain", b"unknown Host\n")
                if u.path == "/":
                    page = PAGE.replace("__TOKEN__", srv.token)
                    return self._send(200, "text/html; charset=utf-8", page.encode())
                if u.path == "/api/run":
                    body = {**srv.meta, "labels": {str(k): v for k, v in
                                                   read_labels(srv.dir).items()}}
                    return self._send(200, "application/json", json.dumps(body).encode())
                if u.path.startswith("/frame/") and u.path.endswith(".jpg"):
                    try:
                        seq = int(u.path[7:-4])
                        rec = srv.frames[seq]
                    except (ValueError, KeyError):
                        return self._send(404, "text/plain", b"no such frame\n")
                    jpeg = srv.reader.jpeg(rec)
                    if parse_qs(u.query).get("overlay", ["1"])[0] == "1":
                        jpeg = overlay_jpeg(jpeg, srv.reader.mask(seq))
                    return self._send(200, "image/jpeg", jpeg)
                self._send(404, "text/plain", b"not found\n")

            def do_POST(self) -> None:  # noqa: N802
                if urlsplit(self.path).path != "/api/labels":
                    return self._send(404, "text/plain", b"not found\n")
                refusal = srv.refuse(self)
                if refusal:
                    return self._send(403, "application/json",
                                      json.dumps({"error": refusal}).encode())
                status, body = self.read_json_body()
                if status:
                    return self._send(status, "application/json",
                                      json.dumps({"error": body}).encode())
                try:
                    if not isinstance(body, dict):
                        raise ValueError("expected a JSON object")
                    seqs = {d["seq"] for d in srv.meta["detections"]}
                    if body.get("seq") not in seqs:
                        raise ValueError(f"no detection {body.get('seq')!r} in this run")
                    with srv._lock:
                        append_label(srv.dir, body["seq"], body.get("label"))
                except (ValueError, TypeError, AttributeError) as e:
                    return self._send(400, "application/json",
                                      json.dumps({"error": str(e)}).encode())
                self._send(200, "application/json", b'{"ok": true}')

        self.httpd = BoundedServer((host, port), Handler)
        self.url = f"http://{host}:{self.httpd.server_address[1]}/"
        self._serving = False

    def refuse(self, h: http_util.Handler) -> str:
        """Why a state-changing request is refused ('' when it is not): wrong Host (DNS
        rebinding), a foreign Origin (another site's page), a missing session token."""
        return h.write_refusal(self.token, "X-Review-Token")

    def serve_forever(self) -> None:
        self._serving = True
        self.httpd.serve_forever()

    def start(self) -> ReviewServer:
        self._serving = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        if self._serving:  # shutdown() waits for a serve_forever loop that must exist
            self.httpd.shutdown()
        self.httpd.server_close()
