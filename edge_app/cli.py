"""The `crack-car` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import List, Optional

from crack_common import project_version
from crack_common.cli_util import (
    missing_module_hint,
    parse_command_line,
    quiet_broken_pipe,
    show_defaults,
)
from crack_common.logsetup import report_error, setup_logging

log = logging.getLogger("crack-car")


def _cmd_devices(args: argparse.Namespace) -> int:
    from edge_app.model.ov_runtime import list_devices, runtime_version
    devices = list_devices()
    if args.json:
        print(json.dumps({"openvino": runtime_version(), "devices": devices}))
    else:
        print(f"OpenVINO {runtime_version()}")
        for d in devices:
            print(f"  {d['device']:<10} {d['name']}")
    return 0


def _car_config(args: argparse.Namespace):
    from crack_common.yamlconfig import parse_override
    from edge_app.config import load_car_config
    over = [parse_override(t) for t in (args.set or [])]
    flags = {"source": {"url": args.source}, "inference": {"device": args.device,
                                                           "model": _s(args.model)},
             "server": {"port": args.port, "host": args.host},
             "record": {"root": _s(args.record), "enabled": False if args.no_record else None},
             "mqtt": {"url": args.mqtt}, "start_mode": None}
    if args.fast:
        flags["source"]["realtime"] = False
    over.append({k: {kk: vv for kk, vv in v.items() if vv is not None}
                 for k, v in flags.items() if isinstance(v, dict)})
    if args.mode:
        over.append({"start_mode": args.mode})
    return load_car_config(args.config, over)


def _s(v):
    return None if v is None else str(v)


def _cmd_config(args: argparse.Namespace) -> int:
    import yaml

    from crack_common.redact import redact
    from crack_common.yamlconfig import parse_override
    from edge_app.config import CarConfig, load_car_config
    if args.schema:
        from crack_common.yamlconfig import json_schema
        from edge_app.config import EXAMPLE_CONFIG
        example = EXAMPLE_CONFIG.read_text() if EXAMPLE_CONFIG.is_file() else None
        print(json.dumps(json_schema(CarConfig, example), indent=1))
        return 0
    cfg = load_car_config(args.config, [parse_override(t) for t in (args.set or [])])
    data = redact(cfg.to_dict())
    print(json.dumps(data, indent=1) if args.json else
          yaml.safe_dump(data, sort_keys=False), end="" if not args.json else "\n")
    return 0


def _cmd_view_check(args: argparse.Namespace) -> int:
    from crack_common.yamlconfig import parse_override
    from edge_app.config import load_car_config
    from edge_app.tools.view_check import run, table
    cfg = load_car_config(args.config, [parse_override(t) for t in (args.set or [])])
    if args.limit < 0:
        raise ValueError(f"--limit must be 0 (all) or more, got {args.limit}")
    results = run(args.paths, cfg.view, args.size, args.limit)
    print(json.dumps(results, indent=1) if args.json else table(results, cfg.view))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    import signal

    from edge_app.runner import run_car
    cfg = _car_config(args)
    stop = {"requested": False}

    def on_signal(signum, _frame):
        stop["requested"] = True
        log.info("signal %d: stopping", signum)
        if stop.get("pipeline"):
            stop["pipeline"].stop()
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    summary = run_car(cfg, args.max_frames, stop, sim=args.sim,
                      allow_modified_model=args.allow_modified_model)
    print(json.dumps(summary, default=str) if args.json else _summary_text(summary))
    return 1 if summary.get("fault") else 0


def _cmd_review(args: argparse.Namespace) -> int:
    if args.serve:
        from edge_app.review.server import ReviewServer
        if len(args.runs) != 1:
            raise ValueError("--serve takes one run folder")
        srv = ReviewServer(args.runs[0], args.host or "127.0.0.1",
                           8091 if args.port is None else args.port)
        print(f"review page: {srv.url}  (Ctrl-C to stop)", flush=True)
        try:
            srv.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            srv.close()
        return 0
    from edge_app.review.report import write_report
    out = args.out or Path(args.runs[0]) / "report.html"
    write_report(args.runs, out)
    print(f"report: {out}")
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    import os

    from edge_app.review.replay import replay
    if args.model is None and not args.device.startswith("remote:"):
        raise ValueError("replay needs --model IR.xml, or --device remote:URL")
    r = replay(args.run, args.model, args.device,
               api_key=os.environ.get("CRACK_CAR_REMOTE_KEY", ""))
    print(json.dumps(r) if args.json else
          f"{r['frames']} frames: mask IoU with the recorded masks {r['mask_iou_mean']}; "
          f"cracks in both {r['frames_with_cracks_both']}, gained {len(r['gained_frames'])}, "
          f"lost {len(r['lost_frames'])} frames")
    return 0


def _emit(text: str, out: Optional[Path], what: str = "") -> None:
    """TEXT into the file OUT (written whole), or onto standard output."""
    if out:
        from crack_common.files import atomic_write_text
        atomic_write_text(out, text)
        print(f"wrote {what}{' to ' if what else ''}{out}")
    else:
        sys.stdout.write(text)


def _cmd_export(args: argparse.Namespace) -> int:
    from edge_app.review.export import to_csv, to_geojson
    _emit(to_csv(args.run) if args.format == "csv" else to_geojson(args.run), args.out)
    return 0


def _cmd_survey(args: argparse.Namespace) -> int:
    from edge_app.survey.store import SurveyStore
    run_alone = {"listen": _survey_listen, "serve": _survey_serve,
                 "calibrate": _survey_calibrate}  # each opens what it needs itself
    if args.survey_command in run_alone:
        return run_alone[args.survey_command](args)
    store = SurveyStore(args.db)
    try:
        if args.survey_command == "ingest":
            from edge_app.survey.ground import GroundConfig
            from edge_app.survey.ingest import ingest_runs
            cfg = GroundConfig(px_per_m=args.px_per_m, ahead_m=args.ahead_m)
            t = ingest_runs(store, args.runs, cfg)
            c = store.counts()
            print(f"{t['runs']} run(s): {t['new_sightings']} new sighting(s), "
                  f"{t['refused']} detection(s) refused; the survey holds {c['sightings']} "
                  f"sightings of {c['cracks']} crack(s)")
        elif args.survey_command == "export":
            from edge_app.survey.export import segments, to_csv, to_geojson
            cracks = store.cracks()
            if args.format == "gpkg":
                from edge_app.survey.geopackage import write_geopackage
                if not args.out:
                    raise ValueError("--format gpkg writes a file: give --out FILE.gpkg")
                n = write_geopackage(cracks, args.out)
                print(f"wrote {n} crack(s) to {args.out}")
                return 0
            text = {"csv": to_csv, "geojson": to_geojson, "segments": segments}[
                args.format](cracks)
            _emit(text, args.out, f"{len(cracks)} crack(s)")
        elif args.survey_command == "plot":
            from edge_app.survey.export import length_plot
            view = store.view(tuple(args.bbox) if args.bbox else None)
            n = length_plot([c for c, _, _ in view], {c.crack_id: days for c, days, _ in view},
                            str(args.out))
            print(f"wrote the lengths of {n} crack(s) to {args.out}")
        else:
            print(json.dumps(store.counts(), indent=1))
    finally:
        store.close()
    return 0


def _survey_calibrate(args: argparse.Namespace) -> int:
    from edge_app.survey.calibrate import calibrate
    try:
        cols, rows = (int(v) for v in args.squares.lower().split("x"))
    except ValueError:
        raise ValueError(f"--squares {args.squares!r}: inner corners as COLSxROWS, "
                         "e.g. 9x6") from None
    r = calibrate(args.photo, (cols, rows), args.square_mm)
    print(f"measure.px_per_m: {r['px_per_m']}   # across {r['across_px_per_m']}, along "
          f"{r['along_px_per_m']}")
    if r["tilt_ratio"] > 1.15:
        print(f"note: along and across differ by {r['tilt_ratio']:.2f}x: the camera sees "
              "the road at an angle, and lengths far from the board will be off")
    return 0


def _survey_serve(args: argparse.Namespace) -> int:
    """The survey map until Ctrl-C."""
    from edge_app.survey.server import SurveyServer
    srv = SurveyServer(args.db, args.host, args.port, args.tiles)
    print(f"survey map: {srv.url} (Ctrl-C stops)", flush=True)
    try:
        srv.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.httpd.server_close()
        srv.store.close()
    return 0


def _survey_listen(args: argparse.Namespace) -> int:
    """Until SIGINT or SIGTERM: every car's detections from the broker into the store."""
    import signal
    import threading

    from edge_app.survey.ground import GroundConfig
    from edge_app.survey.listen import SurveyListener
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    lis = SurveyListener(args.mqtt, args.db, GroundConfig(px_per_m=args.px_per_m,
                                                          ahead_m=args.ahead_m),
                         args.prefix).start()
    print(f"listening on {args.mqtt} for {lis.topic}; Ctrl-C stops", flush=True)
    done.wait()
    lis.stop()
    print(json.dumps(lis.counts))
    return 0


def _summary_text(s: dict) -> str:
    return (f"processed {s['frames_processed']} frames at {s['fps']} fps "
            f"(latency p50 {s['latency_ms_p50']} ms, p95 {s['latency_ms_p95']} ms), "
            f"{s['stale_dropped']} stale frames dropped; {s.get('detections', 0)} detections"
            + (f"; fault: {s['fault']}" if s.get("fault") else ""))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="crack-car",
        description="Find cracks from a robot car: camera stream -> OpenVINO -> overlay, "
                    "drive, MQTT, recording.")
    p.add_argument("--version", action="version", version=f"crack-car {project_version()}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    d = sub.add_parser("devices", help="list the inference devices OpenVINO sees",
                       description="List the inference devices OpenVINO sees (CPU, GPU, "
                                   "MYRIAD for an NCS2 with OpenVINO 2022.3).")
    d.add_argument("--json", action="store_true", help="print one JSON object")
    d.set_defaults(func=_cmd_devices)

    r = sub.add_parser(
        "run", help="the car's main loop: stream -> inference -> overlay, live view",
        description="Read the camera stream, segment cracks with OpenVINO, measure and overlay "
                    "them, serve the live view. Without options: the bundled demo drive and "
                    "model on the CPU.")
    r.add_argument("--config", type=Path, help="YAML config (see config/crack-car.example.yaml)")
    r.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override one config key, e.g. --set inference.requests=4")
    r.add_argument("--source", help="MJPG URL (http://host:8080/?action=stream), demo, "
                   "picamera, a video file or a recorded run folder")
    r.add_argument("--device", help="MYRIAD, CPU, GPU, AUTO, ...")
    r.add_argument("--model", type=Path, help="OpenVINO IR .xml")
    r.add_argument("--max-frames", type=int, help="stop after this many frames")
    r.add_argument("--fast", action="store_true",
                   help="read files and recorded runs as fast as possible")
    r.add_argument("--host", help="live view address (default 127.0.0.1)")
    r.add_argument("--port", type=int, help="live view port (default 8090, 0: any free)")
    r.add_argument("--sim", action="store_true",
                   help="simulated motors (gpiozero's mock pins) where there is no GPIO")
    rec = r.add_mutually_exclusive_group()
    rec.add_argument("--record", type=Path, metavar="DIR", help="record runs under DIR")
    rec.add_argument("--no-record", action="store_true", help="do not record")
    r.add_argument("--mqtt", metavar="URL", help="broker, mqtt://[user:pass@]host[:port]")
    r.add_argument("--mode", choices=["stopped", "manual", "cruise"],
                   help="drive mode at start (default: stopped until a command)")
    r.add_argument("--json", action="store_true", help="print the summary as JSON")
    r.add_argument("--allow-modified-model", action="store_true",
                   help="run an IR whose .bin does not match its card's sha256 (a warning, "
                        "and detections carry the real hash)")
    r.set_defaults(func=_cmd_run)

    c = sub.add_parser("config", help="print the effective configuration (secrets masked)",
                       description="Print the configuration crack-car run would use: the "
                                   "defaults, the config file (--config, $CRACK_CAR_CONFIG or "
                                   "/etc/crack-car/config.yaml) and --set overrides, with "
                                   "passwords and keys masked.")
    c.add_argument("--config", type=Path, help="YAML config file")
    c.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one key")
    c.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    c.add_argument("--schema", action="store_true",
                   help="print the configuration's JSON schema (for editors) instead")
    c.set_defaults(func=_cmd_config)

    vc = sub.add_parser("view-check", help="how the view gauges judge photos or a run",
                        description="Gauge the sharpness and brightness of photos (a folder, "
                                    "image files) or a recorded run as the car does, as they "
                                    "are and under the paper's two noise cases, and report "
                                    "the share the car would flag as blurred or dark with "
                                    "the configured view thresholds.")
    vc.add_argument("paths", nargs="+", type=Path, help="image folder, image file or run folder")
    vc.add_argument("--config", type=Path, help="YAML config file (its view section)")
    vc.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="override one key, e.g. view.min_sharpness=20")
    vc.add_argument("--size", type=int, default=448, help="the model's input side (448)")
    vc.add_argument("--limit", type=int, default=0,
                    help="at most this many photos per path, evenly spread (0: all)")
    vc.add_argument("--json", action="store_true", help="print JSON instead of a table")
    vc.set_defaults(func=_cmd_view_check)

    v = sub.add_parser("review", help="an HTML report of recorded runs, or a review page",
                       description="Write a self-contained HTML report of one or more "
                                   "recorded runs, or (--serve) serve a page to scrub a run "
                                   "frame by frame and label its detections.")
    v.add_argument("runs", nargs="+", type=Path, help="run folder(s)")
    v.add_argument("--out", type=Path, help="report file (default RUN/report.html)")
    v.add_argument("--serve", action="store_true", help="serve the interactive review page")
    v.add_argument("--host", help="review page address (default 127.0.0.1)")
    v.add_argument("--port", type=int, help="review page port (default 8091, 0: any)")
    v.set_defaults(func=_cmd_review)
    rp = sub.add_parser("replay", help="re-infer a recorded run with another model",
                        description="Run a recorded run's frames through another model and "
                                    "compare with the recorded masks.")
    rp.add_argument("run", type=Path, help="a run folder (runs/<run_id>)")
    rp.add_argument("--model", type=Path, help="IR .xml (not needed with a remote device)")
    rp.add_argument("--device", default="CPU",
                    help="OpenVINO device, or remote:URL for crack-distill serve (API key "
                         "in CRACK_CAR_REMOTE_KEY) (default CPU)")
    rp.add_argument("--json", action="store_true")
    rp.set_defaults(func=_cmd_replay)
    ex = sub.add_parser("export", help="detections as CSV or GeoJSON",
                        description="Export a run's detections as CSV or GeoJSON.")
    ex.add_argument("run", type=Path)
    ex.add_argument("--format", choices=["csv", "geojson"], default="csv")
    ex.add_argument("--out", type=Path, help="file to write (default: standard output)")
    ex.set_defaults(func=_cmd_export)
    sv = sub.add_parser("survey", help="every run's cracks in one store: ingest, export",
                        description="The survey: detections of many runs and cars placed "
                                    "on the ground, the same crack recognised across "
                                    "frames, runs and cars (SQLite, one file).")
    svsub = sv.add_subparsers(dest="survey_command", metavar="ACTION", required=True)
    si = svsub.add_parser("ingest", help="add recorded runs (each one transaction; "
                                         "a run ingested twice changes nothing)")
    si.add_argument("runs", type=Path, nargs="+", help="recorded run folders")
    se = svsub.add_parser("export", help="the cracks as GeoJSON (QGIS) or CSV")
    se.add_argument("--format", choices=["geojson", "csv", "gpkg", "segments"],
                    default="geojson", help="segments: per 100 m of road, as CSV")
    se.add_argument("--out", type=Path, help="file to write (default: standard output)")
    svsub.add_parser("stats", help="how many sightings, cracks and refusals")
    sl = svsub.add_parser("listen", help="every car's detections from the broker, live")
    sl.add_argument("--mqtt", required=True, help="broker, mqtt://[user:pass@]host[:port]")
    sl.add_argument("--prefix", default="crackcar", help="topic prefix (mqtt.topic_prefix)")
    for q in (si, sl):
        q.add_argument("--px-per-m", type=float, default=448.0,
                       help="ground resolution of the model input (measure.px_per_m)")
        q.add_argument("--ahead-m", type=float, default=0.5,
                       help="from the GPS antenna to the centre of the seen patch")
    sp = svsub.add_parser("plot", help="crack length over the surveys, as a PNG")
    sp.add_argument("--out", type=Path, required=True, help="PNG to write")
    sp.add_argument("--bbox", type=float, nargs=4, metavar=("MIN_LON", "MIN_LAT", "MAX_LON",
                                                           "MAX_LAT"), help="a stretch")
    sm = svsub.add_parser("serve", help="the cracks on a map page (offline)")
    sm.add_argument("--host", default="127.0.0.1", help="address to serve on")
    sm.add_argument("--port", type=int, default=8095, help="0: any free port")
    sm.add_argument("--tiles", help="base map tile URL template ({z}/{x}/{y}); default: a "
                                    "plain grid")
    sc = svsub.add_parser("calibrate", help="measure.px_per_m from a checkerboard photo")
    sc.add_argument("photo", type=Path, help="a frame of the car's stream with the board")
    sc.add_argument("--squares", required=True, help="inner corners, COLSxROWS (e.g. 9x6)")
    sc.add_argument("--square-mm", type=float, required=True, help="side of one square")
    for q in (si, se, sl, sm, sp, svsub.choices["stats"]):  # calibrate needs no store
        q.add_argument("--db", type=Path, default=Path("survey.sqlite"),
                       help="the survey store")
    sv.set_defaults(func=_cmd_survey)
    p.commands = sub.choices  # for errors in a subcommand's own usage
    show_defaults(p)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_command_line(build_parser(), argv)
    setup_logging(args.verbose)
    try:
        return args.func(args)
    except BrokenPipeError:
        return quiet_broken_pipe()
    except ImportError as e:
        hint = missing_module_hint(e)
        if hint is None:
            raise
        logging.getLogger("crack-car").error("%s", hint)
        return 1
    except (RuntimeError, ValueError, OSError) as e:
        return report_error(logging.getLogger("crack-car"), e, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
