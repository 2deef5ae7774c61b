"""A car's MQTT link and motors in a process of its own, for the slow-disk estop test:
it cruises, spools a detection every 20 ms (each one an fsync that the test's shim
stalls), and prints `STOP <monotonic time>` when an estop has the motors off, then
cruises again. Usage: python slow_disk_car.py BROKER_URL SPOOL_DIR"""

import sys
import threading
import time

from edge_app.links.mqtt_link import MqttConfig, MqttLink
from edge_app.motion.drive import DriveConfig, DriveController, make_robot


def main() -> None:
    url, spool = sys.argv[1], sys.argv[2]
    robot = make_robot(DriveConfig(), sim=True)
    drive = DriveController(DriveConfig(), robot)
    pin = robot.left_motor.forward_device.pin

    def on_command(cmd):
        if cmd["cmd"] == "estop":
            drive.estop()
            if pin.state == 0:
                print(f"STOP {time.monotonic():.6f}", flush=True)

    link = MqttLink(MqttConfig(url=url, reconnect_min=1, reconnect_max=2), "car1",
                    spool, on_command)
    link.start()
    if not link.listening.wait(20):
        sys.exit("no broker")
    drive.start("cruise")
    done = threading.Event()

    def spool_detections():
        n = 0
        while not done.is_set():
            t0 = time.monotonic()
            link.publish_detection(lambda seq, n=n: {"seq": seq, "n": n})
            if n == 0:
                print(f"APPEND {time.monotonic() - t0:.3f}", flush=True)
            n += 1
            time.sleep(0.02)

    threading.Thread(target=spool_detections, daemon=True).start()
    print("READY", flush=True)
    for line in sys.stdin:  # the test writes "cruise" after each estop, "quit" at the end
        if line.strip() == "quit":
            break
        drive.start("cruise")
        print("CRUISING", flush=True)
    done.set()
    drive.close()
    link.close(timeout=1.0)


if __name__ == "__main__":
    main()
