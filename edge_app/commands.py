"""Commands arriving on `crackcar/<car_id>/cmd`: parsed and validated before anything acts
on them. A command is a JSON object:

  {"cmd": "start", "mode": "cruise"|"manual"}     leave an estop and drive (default cruise)
  {"cmd": "stop"}                                  stop the motors, mode stopped
  {"cmd": "estop"}                                 stop and latch until the next start
  {"cmd": "mode", "mode": "stopped"|"manual"|"cruise"}
  {"cmd": "speed", "speed": 0.4}                   cruise speed (0..max_speed)
  {"cmd": "drive", "speed": 0.3, "turn": -0.2}     teleop, manual mode only (-1..1 each)

Optional in every command: "id" (echoed in the result) and "token" (required when the car
is configured with one). Anything else is rejected with the reason, on `cmd/result`."""

from __future__ import annotations

import json
from typing import Any, Dict, Optional, Tuple

MAX_BYTES = 4096
FIELDS: Dict[str, Dict[str, Any]] = {
    "start": {"mode": ("manual", "cruise")},
    "stop": {},
    "estop": {},
    "mode": {"mode": ("stopped", "manual", "cruise")},
    "speed": {"speed": (0.0, 1.0)},
    "drive": {"speed": (-1.0, 1.0), "turn": (-1.0, 1.0)},
}
REQUIRED = {"mode": ("mode",), "speed": ("speed",), "drive": ("speed",)}


class CommandError(ValueError):
    """A command that is rejected; the message is the reason sent back."""


def parse_command(raw: bytes, token: Optional[str] = None) -> Tuple[Dict[str, Any], str]:
    """(command, id) of a valid payload; CommandError with the reason otherwise."""
    if len(raw) > MAX_BYTES:
        raise CommandError(f"payload of {len(raw)} bytes; the limit is {MAX_BYTES}")
    try:
        cmd = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CommandError(f"not JSON: {e}") from None
    if not isinstance(cmd, dict):
        raise CommandError("expected a JSON object")
    cid = cmd.get("id", "")
    if not isinstance(cid, (str, int)) or isinstance(cid, bool):
        raise CommandError("id must be a string or an integer")
    cid = str(cid)[:64]
    if token is not None and cmd.get("token") != token:
        raise CommandError("unauthorised: missing or wrong token")
    name = cmd.get("cmd")
    if name not in FIELDS:
        raise CommandError(f"unknown command {name!r}; expected one of {', '.join(FIELDS)}")
    allowed = FIELDS[name]
    extra = sorted(set(cmd) - set(allowed) - {"cmd", "id", "token"})
    if extra:
        raise CommandError(f"{name}: unexpected field(s) {', '.join(extra)}")
    for key in REQUIRED.get(name, ()):
        if key not in cmd:
            raise CommandError(f"{name}: missing field {key!r}")
    out: Dict[str, Any] = {"cmd": name}
    for key, rule in allowed.items():
        if key not in cmd:
            continue
        value = cmd[key]
        if isinstance(rule[0], str):
            if value not in rule:
                raise CommandError(f"{name}: {key} must be one of {', '.join(rule)}, "
                                   f"got {value!r}")
        else:
            if not isinstance(value, (int, float)) or isinstance(value, bool) or \
                    value != value or not rule[0] <= value <= rule[1]:
                raise CommandError(f"{name}: {key} must be a number in {rule[0]}..{rule[1]}, "
                                   f"got {value!r}")
            value = float(value)
        out[key] = value
    return out, cid
