"""The live view: the overlay re-served over HTTP as MJPG (`/stream`), `/snapshot.jpg`,
`/metrics` (JSON) and a small page at `/` with start, stop and emergency-stop buttons
(`POST /command`: the car's command path, by the same rules as MQTT) and a legend. Bound
to localhost unless configured otherwise.
A picture is JPEG-encoded only while someone is watching."""

from __future__ import annotations

import errno
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Dict, Optional, Sequence

from edge_app.links import http_util
from edge_app.links.http_util import BoundedServer
from edge_app.motion.commands import MAX_BYTES

log = logging.getLogger(__name__)
BOUNDARY = "crackcarframe"
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>crack-car live</title>
<style>body{font-family:sans-serif;background:#111;color:#eee;margin:1em}
img{max-width:100%;border:1px solid #444}pre{font-size:12px}
button{font-size:1.1em;margin:0 .4em .4em 0;padding:.4em 1em}#estop{background:#c00;color:#fff}
.sw{display:inline-block;width:1em;height:1em;vertical-align:middle;margin:0 .3em 0 1em}
</style></head><body>
<h1>crack-car live view</h1><img id="live" src="stream" alt="live overlay">
<div id="controls"><button id="start">Start (cruise)</button><button id="stop">Stop</button>
<button id="estop">EMERGENCY STOP</button>
<input id="key" type="password" placeholder="command key (mqtt.command_key), if set"
autocomplete="off"><span id="result"></span></div>
<div id="legend"><span class="sw" style="background:rgb(__MASK__)"></span>crack mask
<span class="sw" style="border:2px solid rgb(255,200,0)"></span>low
<span class="sw" style="border:2px solid rgb(255,128,0)"></span>medium
<span class="sw" style="border:2px solid rgb(255,0,0)"></span>high severity (box: a crack,
its widest point in model pixels)<br>top bar: fps, lat (median latency), cracks in the frame,
the drive's mode and speed, VIEW when the camera's view is too soft or dark to trust</div>
<pre id="metrics"></pre><script>
async function poll(){try{const r=await fetch('metrics');
document.getElementById('metrics').textContent=JSON.stringify(await r.json(),null,1);}catch(e){}}
setInterval(poll,1000);poll();
function canonical(o){return JSON.stringify(Object.fromEntries(Object.keys(o).sort()
.map(k=>[k,o[k]])));}
async function sign(key,text){const e=new TextEncoder();const k=await crypto.subtle.importKey(
'raw',e.encode(key),{name:'HMAC',hash:'SHA-256'},false,['sign']);const s=new Uint8Array(
await crypto.subtle.sign('HMAC',k,e.encode(text)));return Array.from(s,
b=>b.toString(16).padStart(2,'0')).join('');}
let sent=0;
async function send(name){const out=document.getElementById('result');
const cmd={cmd:name,id:'web-'+(++sent),t:Date.now()/1000};if(name==='start')cmd.mode='cruise';
const key=document.getElementById('key').value;
try{if(key){if(!window.crypto||!crypto.subtle){out.textContent='refused here: signing needs'+
' a page on localhost or https';return;}cmd.sig=await sign(key,canonical(cmd));}
const r=await fetch('command',{method:'POST',headers:{'Content-Type':'application/json'},
body:JSON.stringify(cmd)});const res=await r.json();
out.textContent=res.accepted?' '+res.cmd+': accepted':' '+name+' refused: '+res.reason;}
catch(e){out.textContent=' '+name+' not sent: '+e;}}
for(const b of ['start','stop','estop'])document.getElementById(b).onclick=()=>send(b);
</script></body></html>"""


class LiveView:
    """Latest overlay JPEG + metrics, served by a background HTTP server."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8090,
                 metrics: Optional[Callable[[], Dict[str, object]]] = None,
                 max_viewers: int = 4, max_connections: int = 16,
                 mask_bgr: Sequence[int] = (0, 0, 255)):
        self.max_viewers = max_viewers
        b, g, r = (int(v) for v in mask_bgr)
        self.page = PAGE.replace("__MASK__", f"{r},{g},{b}").encode()
        # the command path (runner: the car's CommandGate): raw body -> result
        self.commands: Optional[Callable[[bytes], Dict[str, Any]]] = None
        self._metrics_cache: tuple = (0.0, b"")
        self._cond = threading.Condition()
        self._jpeg: Optional[bytes] = None
        self._seq = 0
        self.viewers = 0
        self.metrics = metrics or (lambda: {})
        view = self

        class Handler(http_util.Handler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                if self.path.split("?")[0] != "/command" or view.commands is None:
                    self._send(404, "text/plain", b"not found\n")
                elif not (self.host_allowed() and self.origin_allowed()):
                    self._send(403, "text/plain", b"unknown Host or Origin\n")
                else:
                    status, body = self.read_body(MAX_BYTES)
                    if status is not None:
                        self._send(status, "text/plain", f"{body}\n".encode())
                        return
                    result = view.commands(body)
                    self._send(200 if result["accepted"] else 400, "application/json",
                               json.dumps(result).encode())

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path.split("?")[0]
                if not self.host_allowed():
                    self._send(403, "text/plain", b"unknown Host\n")
                elif path == "/":
                    self._send(200, "text/html; charset=utf-8", view.page)
                elif path == "/metrics":
                    self._send(200, "application/json", view.metrics_json())
                elif path == "/snapshot.jpg":
                    jpeg = view.wait_frame(0, 2.0)[1]
                    if jpeg is None:
                        self._send(503, "text/plain", b"no frame yet\n")
                    else:
                        self._send(200, "image/jpeg", jpeg)
                elif path == "/stream":
                    if view.viewers >= view.max_viewers:
                        self._send(503, "text/plain", b"too many viewers\n")
                    else:
                        view.stream(self)
                else:
                    self._send(404, "text/plain", b"not found\n")

        try:
            self.server = BoundedServer((host, port), Handler, max_connections)
        except OSError as e:  # a port in use, or a host this machine does not have
            hint = ("in use (another crack-car, or the review server?)"
                    if e.errno == errno.EADDRINUSE else f"not available ({e.strerror})")
            raise OSError(e.errno, f"live view: {host}:{port} is {hint}; choose another port "
                                   "with --port N (server.port), --port 0 for any free one") \
                from None
        self.host, self.port = self.server.server_address[:2]
        self._thread = threading.Thread(target=self.server.serve_forever, name="live-view",
                                        daemon=True)
        self._thread.start()
        self._snapshot_wanted = threading.Event()

    def metrics_json(self, max_age_s: float = 1.0) -> bytes:
        """The metrics, computed at most once per `max_age_s` (they read the CPU
        temperature and throttling state, which costs a process on a Pi)."""
        now = time.monotonic()
        with self._cond:
            at, body = self._metrics_cache
            if body and now - at < max_age_s:
                return body
        body = json.dumps(self.metrics(), default=str).encode()
        with self._cond:
            self._metrics_cache = (now, body)
        return body

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def wanted(self) -> bool:
        """Whether anyone is waiting for pictures (encode only then)."""
        return self.viewers > 0 or self._snapshot_wanted.is_set() or self._jpeg is None

    def publish(self, jpeg: bytes) -> None:
        with self._cond:
            self._jpeg = jpeg
            self._seq += 1
            self._snapshot_wanted.clear()
            self._cond.notify_all()

    def wait_frame(self, after: int, timeout: float):
        with self._cond:
            if self._seq <= after or self._jpeg is None:
                self._snapshot_wanted.set()
                self._cond.wait_for(lambda: self._seq > after and self._jpeg is not None,
                                    timeout)
            return self._seq, self._jpeg

    def stream(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        handler.send_header("Cache-Control", "no-store")
        handler.end_headers()
        with self._cond:
            self.viewers += 1
        seq = 0
        try:
            while True:
                seq, jpeg = self.wait_frame(seq, 5.0)
                if jpeg is None:
                    continue
                handler.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}"
                    "\r\n\r\n".encode() + jpeg + b"\r\n")
                handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        finally:
            with self._cond:
                self.viewers -= 1

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
