"""Commands arriving on `crackcar/<car_id>/cmd`: parsed and validated before anything acts
on them. A command is a JSON object:

  {"cmd": "start", "mode": "cruise"|"manual"}     leave an estop and drive (default cruise)
  {"cmd": "stop"}                                  stop the motors, mode stopped
  {"cmd": "estop"}                                 stop and latch until the next start
  {"cmd": "mode", "mode": "stopped"|"manual"|"cruise"}
  {"cmd": "speed", "speed": 0.4}                   cruise speed (0..max_speed)
  {"cmd": "drive", "speed": 0.3, "turn": -0.2}     teleop, manual mode only (-1..1 each)

Every motion command (start, speed, drive, a mode other than stopped) carries "t", the
sender's clock in Unix seconds: one older (or further in the future) than
`mqtt.command_max_age_s` is refused, so nothing queued, delayed or retained drives the car
later. With `mqtt.command_key` set, every command also carries "sig", the hex HMAC-SHA256
of the command without "sig" (JSON, keys sorted, no spaces) under that key; a motion
command whose signature was seen before is refused, so a captured one cannot be replayed.
Stopping (stop, estop, mode stopped) is never refused for its age, a replay or a clock out
of step: it needs only to be well formed and, with a key, signed (a forged stop is
harmless, a refused one is not).
`sign()` makes such a command. Optional: "id" (echoed in the result). Anything else is
rejected with the reason, on `cmd/result`."""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import logging
import threading
import time
from typing import Any, Callable, Deque, Dict, Optional, Tuple

from crack_common.values import bracket_depth, finite_number

log = logging.getLogger(__name__)
MAX_BYTES = 4096
MAX_DEPTH = 8  # JSON nesting a command may have (a command is one flat object)
FIELDS: Dict[str, Dict[str, Any]] = {
    "start": {"mode": ("manual", "cruise")},
    "stop": {},
    "estop": {},
    "mode": {"mode": ("stopped", "manual", "cruise")},
    "speed": {"speed": (0.0, 1.0)},
    "drive": {"speed": (-1.0, 1.0), "turn": (-1.0, 1.0)},
}
REQUIRED = {"mode": ("mode",), "speed": ("speed",), "drive": ("speed",)}
ENVELOPE = {"cmd", "id", "t", "sig"}


class CommandError(ValueError):
    """A command that is rejected; the message is the reason sent back, `cid` the
    command's id when it could be read."""

    cid = ""


def canonical(cmd: Dict[str, Any]) -> bytes:
    """The bytes a signature covers: the command without "sig", keys sorted."""
    return json.dumps({k: v for k, v in cmd.items() if k != "sig"}, sort_keys=True,
                      separators=(",", ":")).encode()


def sign(cmd: Dict[str, Any], key: str, t: Optional[float] = None) -> Dict[str, Any]:
    """A command stamped with the time and signed with `key` (for ground stations)."""
    out = {**cmd, "t": time.time() if t is None else t}
    out["sig"] = hmac.new(key.encode(), canonical(out), hashlib.sha256).hexdigest()
    return out


def is_motion(cmd: Dict[str, Any]) -> bool:
    """Commands that can make the wheels turn (stop and estop never can)."""
    return cmd["cmd"] in ("start", "speed", "drive") or (
        cmd["cmd"] == "mode" and cmd.get("mode") != "stopped")


class ReplayGuard:
    """Remembers the signatures (or payloads) accepted within the age window."""

    def __init__(self, window_s: float):
        self.window = window_s
        self._seen: Dict[str, float] = {}
        self._order: Deque[Tuple[float, str]] = collections.deque()
        self._lock = threading.Lock()

    def check(self, mark: str, now: float) -> None:
        with self._lock:
            while self._order and now - self._order[0][0] > 2 * self.window:
                _, old = self._order.popleft()
                self._seen.pop(old, None)
            if mark in self._seen:
                raise CommandError("replayed: this command was already received")
            self._seen[mark] = now
            self._order.append((now, mark))


def parse_command(raw: bytes, key: Optional[str] = None, max_age_s: float = 2.0,
                  replay: Optional[ReplayGuard] = None, now: Optional[float] = None
                  ) -> Tuple[Dict[str, Any], str]:
    """(command, id) of a valid payload; CommandError with the reason otherwise.
    `max_age_s` 0 accepts commands without a time (tests and tools only)."""
    if len(raw) > MAX_BYTES:
        raise CommandError(f"payload of {len(raw)} bytes; the limit is {MAX_BYTES}")
    cmd = _decode(raw)
    cid = cmd.get("id", "")
    if not isinstance(cid, (str, int)) or isinstance(cid, bool):
        raise CommandError("id must be a string or an integer")
    cid = str(cid)[:64]
    try:
        return _check(cmd, raw, cid, key, max_age_s, replay, now)
    except CommandError as e:
        e.cid = cid
        raise


def _decode(raw: bytes) -> Dict[str, Any]:
    """The payload's JSON object; nesting deeper than MAX_DEPTH is refused before parsing
    (json would recurse on it)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CommandError(f"not JSON: {e}") from None
    deepest = bracket_depth(text)
    if deepest > MAX_DEPTH:
        raise CommandError(f"not a command: JSON nested {deepest} deep (at most {MAX_DEPTH})")
    try:
        cmd = json.loads(text)
    except ValueError as e:
        raise CommandError(f"not JSON: {e}") from None
    if not isinstance(cmd, dict):
        raise CommandError("expected a JSON object")
    return cmd


def _send_time(cmd: Dict[str, Any]) -> float:
    t = cmd.get("t")
    if not isinstance(t, (int, float)) or isinstance(t, bool):
        raise CommandError("no send time: commands carry \"t\" (Unix seconds)")
    seconds = finite_number(t)
    if seconds is None:
        raise CommandError("t is not a time: expected finite Unix seconds")
    return seconds


def _check(cmd: Dict[str, Any], raw: bytes, cid: str, key: Optional[str], max_age_s: float,
           replay: Optional[ReplayGuard], now: Optional[float]) -> Tuple[Dict[str, Any], str]:
    now = time.time() if now is None else now
    if key:
        sig = cmd.get("sig")
        good = hmac.new(key.encode(), canonical(cmd), hashlib.sha256).hexdigest()
        if not isinstance(sig, str) or not sig.isascii() or \
                not hmac.compare_digest(sig, good):
            raise CommandError("unauthorised: missing or wrong signature")
    out = _fields(cmd)
    if not is_motion(out):  # stopping is never refused for age, replay or clock
        return out, cid
    if max_age_s > 0:
        t = _send_time(cmd)
        if abs(now - t) > max_age_s:
            raise CommandError(f"stale: sent {t - now:+.1f} s from now (limit "
                               f"{max_age_s:g} s; are the clocks in sync?)")
    if replay is not None and max_age_s > 0:
        replay.check(cmd.get("sig") or hashlib.sha256(raw).hexdigest(), now)
    return out, cid


def _fields(cmd: Dict[str, Any]) -> Dict[str, Any]:
    """The command's name and fields, each checked against FIELDS."""
    name = cmd.get("cmd")
    if not isinstance(name, str) or name not in FIELDS:
        raise CommandError(f"unknown command {str(name)[:40]!r}; expected one of "
                           f"{', '.join(FIELDS)}")
    allowed = FIELDS[name]
    extra = sorted(str(k) for k in set(cmd) - set(allowed) - ENVELOPE)
    if extra:
        raise CommandError(f"{name}: unexpected field(s) {', '.join(extra)[:200]}")
    for key in REQUIRED.get(name, ()):
        if key not in cmd:
            raise CommandError(f"{name}: missing field {key!r}")
    out: Dict[str, Any] = {"cmd": name}
    for key, rule in allowed.items():
        if key not in cmd:
            continue
        value = cmd[key]
        if isinstance(rule[0], str):
            if not isinstance(value, str) or value not in rule:
                raise CommandError(f"{name}: {key} must be one of {', '.join(rule)}, "
                                   f"got {str(value)[:40]!r}")
        else:
            number = finite_number(value)
            if number is None or not rule[0] <= number <= rule[1]:
                raise CommandError(f"{name}: {key} must be a number in {rule[0]}..{rule[1]}, "
                                   f"got {str(value)[:40]}")
            value = number
        out[key] = value
    return out


class CommandGate:
    """Where commands enter the car, whatever carried them (MQTT, the live view's
    buttons): each is parsed and checked by the same rules (size, fields, age, signature
    under `key`, replay within the age window across every path), refused for motion
    where its path cannot be trusted with it, then handed to `act`. Nothing that goes
    wrong in `act` escapes; every command gets a result."""

    def __init__(self, act: Callable[[Dict[str, Any]], None], key: str = "",
                 max_age_s: float = 2.0, replay: Optional[ReplayGuard] = None):
        self.act, self.key, self.max_age_s = act, key or None, max_age_s
        self.replay = replay or ReplayGuard(max_age_s)
        self.counts = {"accepted": 0, "rejected": 0}

    def handle(self, raw: bytes, motion_refused: str = "", refuse: str = "") -> Dict[str, Any]:
        """The result of command RAW: {"id", "cmd", "accepted": True} or {"id",
        "accepted": False, "reason"}. `motion_refused`: why this path may not move the car
        ('' when it may); `refuse`: why this delivery is refused whole (a retained one)."""
        cid = ""
        try:
            if refuse:
                raise CommandError(refuse)
            cmd, cid = parse_command(raw, self.key, self.max_age_s, self.replay)
            if motion_refused and is_motion(cmd):
                raise CommandError(f"refused: {motion_refused}")
            self.act(cmd)
            self.counts["accepted"] += 1
            return {"id": cid, "cmd": cmd["cmd"], "accepted": True}
        except (CommandError, ValueError, PermissionError) as e:
            self.counts["rejected"] += 1
            return {"id": cid or getattr(e, "cid", ""), "accepted": False, "reason": str(e)}
        except Exception as e:  # noqa: BLE001 - no command may take its path down
            log.exception("command handler failed")
            self.counts["rejected"] += 1
            return {"id": cid, "accepted": False, "reason": f"internal error: {e}"}
