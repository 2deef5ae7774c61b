"""Driving the car with gpiozero, and keeping it safe.

gpiozero's Robot with two Motors (H-bridge inputs) or two PhaseEnableMotors.
Modes: `stopped`; `manual` (teleop `drive` commands, which expire after
`command_timeout_s`); `cruise` (constant speed, slowing to an inspection speed while cracks
are in view and resuming `resume_after_s` after they leave; stops after `stop_after_m` or
`stop_after_s`). A watchdog thread at `watchdog_hz` stops the motors within a fraction of a
second on: estop, loss of frames, an inference fault, a manual command timeout, a signal,
and any unhandled error. Odometry integrates the commanded speed times a calibration.

Safety rules this module keeps: the motors stop before anything else happens (state is
set, then events are queued; a writer thread hands them to the event sink, so a slow or
failing disk never delays a stop and a failing sink cannot undo one); nothing moves the
wheels while the mode is `stopped` or an estop is active; each wheel is capped at
`max_speed`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

log = logging.getLogger(__name__)
MODES = ("stopped", "manual", "cruise")


@dataclass
class DriveConfig:
    driver: str = "robot"  # robot (two H-bridge inputs a motor) or phase_enable
    motors: str = "auto"  # gpio (fail without GPIO), sim (mock pins), auto (gpio when the
    # machine has GPIO, else simulated with a warning)
    left: List[int] = field(default_factory=lambda: [17, 18])  # GPIO (BCM): robot [forward,
    # backward], phase_enable [phase, enable]
    right: List[int] = field(default_factory=lambda: [22, 23])
    max_speed: float = 0.8  # 0..1 of full motor power
    cruise_speed: float = 0.5
    inspect_speed: float = 0.25  # while cracks are in view
    resume_after_s: float = 1.0  # back to cruise speed this long after the last crack
    stop_after_m: float = 0.0  # cruise ends after this distance (0: no limit)
    stop_after_s: float = 0.0  # ... or this time (0: no limit)
    m_per_s_at_full: float = 0.6  # odometry calibration: metres per second at speed 1.0
    command_timeout_s: float = 0.5  # manual mode: stop when no drive command for this long
    frame_timeout_s: float = 1.0  # stop when no camera frame for this long
    watchdog_hz: float = 20.0


def make_robot(cfg: DriveConfig, sim: bool) -> Any:
    """A gpiozero robot on real pins, or on gpiozero's mock pin factory with `sim` or
    `drive.motors: sim` (or `auto` on a machine without GPIO)."""
    sim = sim or cfg.motors == "sim"
    from gpiozero import Device, Motor, PhaseEnableMotor, Robot
    factory = None
    if sim:
        from gpiozero.pins.mock import MockFactory, MockPWMPin
        if not isinstance(Device.pin_factory, MockFactory):
            # gpiozero's composite devices consult the process-wide factory in places
            Device.pin_factory = MockFactory(pin_class=MockPWMPin)
        factory = Device.pin_factory
    motor = PhaseEnableMotor if cfg.driver == "phase_enable" else Motor
    if factory is not None or Device.pin_factory is not None:
        return Robot(motor(*cfg.left, pin_factory=factory),
                     motor(*cfg.right, pin_factory=factory), pin_factory=factory)
    from gpiozero.exc import BadPinFactory, PinFactoryFallback
    try:  # gpiozero tries its pin libraries in turn; each miss off a Pi is expected
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PinFactoryFallback)
            robot = Robot(motor(*cfg.left), motor(*cfg.right))
    except (BadPinFactory, OSError, RuntimeError) as e:
        if cfg.motors != "auto":
            raise RuntimeError(f"no GPIO here ({e}); use --sim to drive simulated "
                               "motors") from e
        log.warning("no GPIO here (%s): driving simulated motors (drive.motors: gpio "
                    "makes this an error)", e)
        return make_robot(cfg, True)
    log.info("GPIO through %s", type(Device.pin_factory).__name__)
    return robot


class DriveController:
    def __init__(self, cfg: DriveConfig, robot: Any,
                 on_event: Optional[Callable[[str, Dict[str, Any]], None]] = None,
                 frame_age: Optional[Callable[[], float]] = None,
                 clock: Callable[[], float] = time.monotonic):
        self.cfg, self.robot, self.clock = cfg, robot, clock
        self.on_event = on_event or (lambda kind, data: None)
        self.frame_age = frame_age or (lambda: 0.0)
        self.mode = "stopped"
        self.estopped = False
        self.stop_reason = "start"
        self.speed = 0.0  # commanded, -1..1 (forward positive)
        self.turn = 0.0
        self.odometry_m = 0.0
        self._lock = threading.RLock()
        self._last_cmd = clock()
        self._last_crack = -1e9
        self._cruise_started = 0.0
        self._cruise_start_m = 0.0
        self._last_tick = clock()
        self._fault: Optional[str] = None
        self._stop = threading.Event()
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._deliver, name="drive-events", daemon=True)
        self._writer.start()
        self._thread = threading.Thread(target=self._watchdog, name="drive-watchdog", daemon=True)
        self._thread.start()

    # ----------------------------------------------------------- events
    def _emit(self, kind: str, data: Dict[str, Any]) -> None:
        """Queue an event for the sink; never blocks, never raises."""
        self._events.put((kind, data))

    def _deliver(self) -> None:
        while True:
            item = self._events.get()
            if item is None:
                return
            try:
                self.on_event(*item)
            except Exception:  # noqa: BLE001 - a failing sink must not touch driving
                log.exception("drive event sink failed on %s", item[0])

    # ----------------------------------------------------------- motors
    def _apply(self, speed: float, turn: float) -> None:
        if (self.mode == "stopped" or self.estopped) and (speed or turn):
            self.robot.stop()  # the motor path refuses to move a stopped car
            raise PermissionError(f"motors held: mode {self.mode}, estop {self.estopped}")
        m = self.cfg.max_speed
        speed = max(-m, min(m, speed))
        turn = max(-1.0, min(1.0, turn))
        left = max(-m, min(m, speed + turn * m))
        right = max(-m, min(m, speed - turn * m))
        self.robot.value = (left, right)
        self.speed, self.turn = speed, turn

    def _halt(self, reason: str) -> None:
        self.robot.stop()
        mode_was = self.mode
        self.speed = self.turn = 0.0
        self.mode = "stopped"
        self.stop_reason = reason
        if mode_was != "stopped" or reason in ("estop", "fault"):
            self._emit("stop", {"reason": reason, "mode_was": mode_was})

    # ----------------------------------------------------------- commands
    def estop(self, reason: str = "estop") -> None:
        self.estopped = True  # before the lock: no path may move the wheels from here on
        self.robot.stop()
        with self._lock:
            self.estopped = True
            self._halt(reason)

    def stop(self, reason: str = "stop") -> None:
        with self._lock:
            self._halt(reason)

    def fault(self, reason: str) -> None:
        """An error elsewhere (inference, camera, code): stop and stay stopped."""
        self.estopped = True
        self.robot.stop()
        with self._lock:
            self._fault = reason
            self.estopped = True
            self._halt("fault")

    def start(self, mode: str = "cruise") -> None:
        """Leave an estop and start driving in `mode`."""
        with self._lock:
            if self._fault:
                raise PermissionError(f"cannot start after a fault: {self._fault}")
            self.estopped = False
            self.set_mode(mode)

    def begin(self, mode: str) -> bool:
        """Apply the run's start mode unless a stop, estop or fault came first (a command
        over MQTT while the car was starting up): no start-up step may undo a stop.
        Whether it started."""
        with self._lock:
            if self.estopped or self._fault or self.stop_reason != "start":
                return False
            self.start(mode)
            return True

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
        with self._lock:
            if mode != "stopped" and self.estopped:
                raise PermissionError("emergency stop is active; send start first")
            if mode == "stopped":
                self._halt("command")
                return
            old, self.mode = self.mode, mode
            now = self.clock()
            self._last_cmd = now
            if mode == "cruise":
                self._cruise_started, self._cruise_start_m = now, self.odometry_m
                self._apply(self.cfg.cruise_speed, 0.0)
            else:
                self._apply(0.0, 0.0)
            self._emit("mode", {"from": old, "to": mode})

    def drive(self, speed: float, turn: float = 0.0) -> None:
        """Teleop (manual mode only)."""
        with self._lock:
            if self.mode != "manual":
                raise PermissionError(f"drive commands need manual mode (mode is {self.mode})")
            self._last_cmd = self.clock()
            self._apply(speed, turn)

    def set_cruise_speed(self, speed: float) -> None:
        with self._lock:
            if not 0 <= speed <= self.cfg.max_speed:
                raise ValueError(f"speed {speed} outside 0..{self.cfg.max_speed}")
            self.cfg.cruise_speed = speed
            if self.mode == "cruise" and self.speed > self.cfg.inspect_speed:
                self._apply(speed, 0.0)

    # ----------------------------------------------------------- perception
    def cracks_in_view(self, present: bool) -> None:
        with self._lock:
            now = self.clock()
            if present:
                self._last_crack = now
            if self.mode != "cruise":
                return
            if present and self.speed != self.cfg.inspect_speed:
                self._apply(self.cfg.inspect_speed, 0.0)
                self._emit("inspect", {"speed": self.speed})

    # ----------------------------------------------------------- watchdog
    def tick(self) -> None:
        with self._lock:
            now = self.clock()
            dt, self._last_tick = now - self._last_tick, now
            self.odometry_m += abs(self.speed) * self.cfg.m_per_s_at_full * dt
            if self.mode == "stopped":
                return
            c = self.cfg
            if self.frame_age() > c.frame_timeout_s:
                self._halt("no frames")
            elif self.mode == "manual" and now - self._last_cmd > c.command_timeout_s:
                self._halt("command timeout")
            elif self.mode == "cruise":
                if c.stop_after_m and self.odometry_m - self._cruise_start_m >= c.stop_after_m:
                    self._halt("distance reached")
                elif c.stop_after_s and now - self._cruise_started >= c.stop_after_s:
                    self._halt("time reached")
                elif self.speed == c.inspect_speed and now - self._last_crack > c.resume_after_s:
                    self._apply(c.cruise_speed, 0.0)
                    self._emit("resume", {"speed": self.speed})

    def _watchdog(self) -> None:
        period = 1.0 / self.cfg.watchdog_hz
        while not self._stop.wait(period):
            try:
                self.tick()
            except Exception as e:  # noqa: BLE001 - the watchdog must never die silently
                log.exception("drive watchdog")
                self.fault(f"watchdog error: {e}")

    def close(self) -> None:
        """Motors off and the watchdog ended (on exit, signals, errors). Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        self.robot.stop()
        with self._lock:
            self._halt("shutdown")
        self._thread.join(2)
        self.robot.close()
        self._events.put(None)
        self._writer.join(5)  # let the last events reach the record, within reason

    def status(self) -> Dict[str, Any]:
        return {"mode": self.mode, "speed": round(self.speed, 3), "estop": self.estopped,
                "odometry_m": round(self.odometry_m, 3), "stop_reason": self.stop_reason}
