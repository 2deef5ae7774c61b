"""Driving on gpiozero's mock pins: modes, cruise behaviour, odometry and every stop trigger."""

import time

import pytest

from edge_app.motion.drive import DriveConfig, DriveController, make_robot

PINS = {}


def pins(robot):
    """The motor pins (remembered: close() releases them). The robot is kept with them, so
    its id() cannot be reused by a later robot and hand that one these pins."""
    if id(robot) not in PINS:
        PINS[id(robot)] = (robot, [d.pin for m in (robot.left_motor, robot.right_motor)
                                   for d in m])
    return PINS[id(robot)][1]


def off(robot):
    return all(p.state == 0 for p in pins(robot))


def wait_for(pred, timeout):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(0.002)
    return None


@pytest.fixture
def car():
    made = []

    def make(frame_age=lambda: 0.0, **over):
        cfg = DriveConfig(**over)
        robot = make_robot(cfg, sim=True)
        events = []
        d = DriveController(cfg, robot, lambda k, v: events.append((k, v)), frame_age)
        made.append(d)
        return d, robot, events
    yield make
    for d in made:
        d.close()


def test_cruise_slows_for_cracks_resumes_and_counts_distance(car):
    d, robot, events = car(resume_after_s=0.3, m_per_s_at_full=1.0)
    d.start("cruise")
    assert pins(robot)[0].state == pytest.approx(0.5) and pins(robot)[2].state == \
        pytest.approx(0.5)
    d.cracks_in_view(True)
    assert pins(robot)[0].state == pytest.approx(0.25)
    assert wait_for(lambda: pins(robot)[0].state == pytest.approx(0.5), 1.0) > 0.25
    time.sleep(0.5)
    assert 0.2 < d.odometry_m < 0.6
    assert [e[0] for e in events] == ["mode", "inspect", "resume"]


def test_cruise_stops_after_distance_and_after_time(car):
    d, robot, events = car(stop_after_m=0.1, m_per_s_at_full=1.0)
    d.start("cruise")
    assert wait_for(lambda: off(robot), 1.0) is not None and d.stop_reason == "distance reached"
    d2, robot2, _ = car(stop_after_s=0.2, left=[5, 6], right=[13, 19])
    d2.start("cruise")
    t = wait_for(lambda: off(robot2), 1.0)
    assert 0.15 < t < 0.5 and d2.stop_reason == "time reached"


@pytest.mark.parametrize("trigger", ["estop", "frames", "timeout", "fault", "close"])
def test_every_stop_trigger_turns_the_motors_off_within_half_a_second(car, trigger):
    age = {"v": 0.0}
    d, robot, _ = car(frame_age=lambda: age["v"], command_timeout_s=0.2, frame_timeout_s=0.3)
    pins(robot)  # remember the pins: close() releases them
    if trigger == "timeout":
        d.start("manual")
        d.drive(0.6, 0.2)
    else:
        d.start("cruise")
    assert not off(robot)
    t0 = time.monotonic()
    if trigger == "estop":
        d.estop()
    elif trigger == "frames":
        age["v"] = 5.0  # the camera went quiet
    elif trigger == "fault":
        d.fault("inference failed")
    elif trigger == "close":
        d.close()
    limit = {"timeout": 0.2 + 0.5, "frames": 0.5}.get(trigger, 0.5)
    assert wait_for(lambda: off(robot), 2.0) is not None
    assert time.monotonic() - t0 < limit
    assert d.mode == "stopped"


def test_estop_latches_and_faults_cannot_be_restarted(car):
    d, robot, _ = car()
    d.start("cruise")
    d.estop()
    with pytest.raises(PermissionError, match="emergency stop"):
        d.set_mode("cruise")
    with pytest.raises(PermissionError, match="manual mode"):
        d.drive(0.5)
    d.start("manual")
    d.drive(1.0, 0.0)
    assert pins(robot)[0].state == pytest.approx(0.8)  # capped at max_speed
    d.fault("camera gone")
    with pytest.raises(PermissionError, match="after a fault"):
        d.start("cruise")
    assert off(robot)


def test_phase_enable_driver_and_bad_mode(car):
    d, robot, _ = car(driver="phase_enable", left=[5, 6], right=[13, 19])
    d.start("manual")
    d.drive(-0.4, 0.0)
    assert robot.value[0] == pytest.approx(-0.4)
    phase, enable = pins(robot)[:2]
    assert phase.state == 1 and enable.state == pytest.approx(0.4)  # reverse at 40%
    with pytest.raises(ValueError, match="mode 'fly'"):
        d.set_mode("fly")


@pytest.mark.parametrize("first", ["estop", "stop", "fault", None])
def test_a_stop_during_start_up_is_not_undone_by_the_start_mode(car, first):
    """An estop (or stop, or fault) that arrives over MQTT while the car is still starting
    up holds: the run's start mode is applied only to a car nothing has stopped."""
    d, robot, _ = car()
    if first == "estop":
        d.estop()
    elif first == "stop":
        d.stop("command")
    elif first == "fault":
        d.fault("inference")
    started = d.begin("cruise")
    assert started is (first is None)
    if first is None:
        assert d.mode == "cruise" and not off(robot)
    else:
        assert d.mode == "stopped" and off(robot)
        with pytest.raises(PermissionError):
            d.drive(0.3)


def test_off_a_pi_auto_motors_fall_back_in_one_line_and_gpio_motors_refuse():
    """No gpiozero fallback warnings per library tried, one log line; drive.motors: gpio
    is an error that says how to simulate (each in a fresh process: the pin factory is
    process-wide)."""
    import subprocess
    import sys

    from tests.conftest import REPO
    code = ("import logging, sys; logging.basicConfig(level=logging.WARNING); "
            "from edge_app.motion.drive import DriveConfig, make_robot; "
            "r = make_robot(DriveConfig(motors=sys.argv[1]), False); "
            "print(type(r.left_motor.pin_factory).__name__)")
    auto = subprocess.run([sys.executable, "-W", "always", "-c", code, "auto"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert auto.returncode == 0 and auto.stdout.strip() == "MockFactory"
    assert "PinFactoryFallback" not in auto.stderr
    assert auto.stderr.count("no GPIO here") == 1
    gpio = subprocess.run([sys.executable, "-c", code, "gpio"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert gpio.returncode != 0 and "use --sim to drive simulated motors" in gpio.stderr
