"""scripts/research/train_shipped_model's long pairs: the commands each seed runs, where a pair
trained on from another starts, a failed seed waiting for the other, and the sittings
after a pair. The script's own functions run in bash with the stages they call
(student_run, ensemble_run, pair) replaced by ones that log their arguments; the whole
script runs with a crack-distill that logs and makes empty files (MAIN=0 and the
sittings), since training is tested elsewhere."""
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "research" / "train_shipped_model"


def function(name: str) -> str:
    """The bash function NAME as the script defines it."""
    m = re.search(rf"^{name}\(\) \{{.*?^\}}\n", SCRIPT.read_text(), re.S | re.M)
    assert m, f"{SCRIPT} defines no {name}()"
    return m.group(0)


def run_pair(tmp_path: Path, call: str, student_run: str) -> subprocess.CompletedProcess:
    """Run CALL (a pair ... line) with the script's VIEWS/FT/QUIETER arrays and pair
    functions, STUDENT_RUN standing in for the training stage; each stage logs to log.txt."""
    arrays = "\n".join(re.findall(r"^(?:VIEWS|FT|QUIETER)=\(.*\)$", SCRIPT.read_text(), re.M))
    harness = f"""set -euo pipefail
W=work; OMP_NUM_THREADS=2; LOG={tmp_path}/log.txt
{arrays}
sources() {{ :; }}
student_run() {{ {student_run} }}
ensemble_run() {{ echo "ensemble $*" >> "$LOG"; }}
{function("pair_student")}
{function("side_by_side")}
{function("pair")}
{call} & p=$!
s=0; wait "$p" || s=$?
echo "pair returned $s" >> "$LOG"
exit "$s"
"""
    return subprocess.run(["bash", "-c", harness], capture_output=True, text=True, timeout=60)


def log(tmp_path: Path) -> List[str]:
    return (tmp_path / "log.txt").read_text().splitlines()


def test_a_pair_trained_on_starts_each_seed_from_that_seeds_last_checkpoint(tmp_path):
    r = run_pair(tmp_path, 'pair long30r36 long30 --set train.epochs=36 --set train.lr=0.0005',
                 'echo "$OMP_NUM_THREADS $*" >> "$LOG";')
    assert r.returncode == 0, r.stderr
    runs = {line.split()[1]: line for line in log(tmp_path)
            if not line.startswith(("ensemble", "pair"))}
    assert sorted(runs) == ["long30r36_0", "long30r36_1", "long30r36q_0", "long30r36q_1"]
    for i in (0, 1):
        first, quiet = runs[f"long30r36_{i}"], runs[f"long30r36q_{i}"]
        assert first.startswith("1 ")  # the two cores split between the two seeds
        assert f"student.init=work/long30_{i}/checkpoints/last.pth" in first
        assert f"train.seed={i}" in first and "train.epochs=36" in first
        assert "train.lr=0.0005" in first and "train.bf16=true" in first
        # the quieter fine-tune starts from this pair's own student, at the fine-tune's rate
        assert f"student.init=work/long30r36_{i}/checkpoints/last.pth" in quiet
        assert "train.epochs=3" in quiet and "train.lr=0.0003" in quiet
        assert "crop.clear_share=0.3" in quiet
    assert log(tmp_path)[-3:] == ["ensemble ens_long30r36 long30r36_0 long30r36_1",
                                  "ensemble ens_long30r36q long30r36q_0 long30r36q_1",
                                  "pair returned 0"]


def test_a_pair_from_scratch_names_no_starting_checkpoint(tmp_path):
    r = run_pair(tmp_path, "pair long72 - --set train.epochs=72",
                 'echo "$*" >> "$LOG";')
    assert r.returncode == 0, r.stderr
    first = [line for line in log(tmp_path) if line.startswith("long72_")]
    assert len(first) == 2 and all("student.init" not in line for line in first)


def test_a_failed_seed_fails_the_pair_only_once_the_other_seed_has_stopped(tmp_path):
    # seed 0 fails at once; seed 1 is still training for a while
    r = run_pair(tmp_path, "pair long72 - --set train.epochs=72",
                 'case "$1" in *_0) echo "failed $1" >> "$LOG"; return 1;; '
                 '*_1) sleep 1; echo "finished $1" >> "$LOG";; esac')
    assert r.returncode != 0
    lines = log(tmp_path)
    assert lines[0] == "failed long72_0" and lines[-1] == "pair returned 1"
    # the pair returned only after seed 1 had finished both its runs, and built nothing
    assert lines[1:-1] == ["finished long72_1", "finished long72q_1"]


def run_sittings(tmp_path: Path, more: str, pair: str) -> subprocess.CompletedProcess:
    """The script's more_sittings for MORE, PAIR standing in for the pair stage."""
    harness = f"""set -euo pipefail
LOG={tmp_path}/log.txt; : > "$LOG"
pair() {{ {pair} }}
{function("more_sittings")}
more_sittings long30 {more}
"""
    return subprocess.run(["bash", "-c", harness], capture_output=True, text=True, timeout=60)


def test_each_further_sitting_starts_from_the_sitting_before(tmp_path):
    r = run_sittings(tmp_path, "36 30", 'echo "$*" >> "$LOG";')
    assert r.returncode == 0, r.stderr
    assert log(tmp_path) == [
        "long30r36 long30 --set train.epochs=36 --set train.lr=0.0005 --set train.warmup_iters=50",
        "long30r36r30 long30r36 --set train.epochs=30 --set train.lr=0.0005 "
        "--set train.warmup_iters=50"]


def test_no_further_sitting_for_none_or_zero_and_a_failed_one_stops_the_rest(tmp_path):
    for more in ("", "0"):
        assert run_sittings(tmp_path, more, 'echo "$*" >> "$LOG";').returncode == 0
        assert log(tmp_path) == []
    r = run_sittings(tmp_path, "36 30", 'echo "$1" >> "$LOG"; return 1;')
    assert r.returncode != 0 and log(tmp_path) == ["long30r36"]


FAKE_DISTILL = """#!/usr/bin/env bash
# crack-distill as the script calls it: logs its arguments, makes the files it would make
echo "$*" >> "$LOG"
prev=; work=
for a in "$@"; do
  case "$prev" in
    --json-out) echo '{"best_threshold": 0.6}' > "$a";;
    --out) case "$a" in
             *.xml) mkdir -p "$(dirname "$a")"; touch "$a";;
             *) mkdir -p "$a/images";;
           esac;;
    --work) work=$a;;
  esac
  prev=$a
done
if [ "$1" = export ]; then
  mkdir -p "$work/export"; touch "$work/export/student.xml" "$work/export/student_int8.xml"
fi
"""


def run_script(tmp_path: Path, script: Path = SCRIPT, fake: str = FAKE_DISTILL,
               **switches: str) -> List[str]:
    """The whole training script (SCRIPT, or a copy) with SWITCHES, crack-distill replaced
    by FAKE (the real python beside it), on empty folders of the datasets it checks for;
    the crack-distill lines it ran."""
    bin_dir, data = tmp_path / "bin", tmp_path / "data"
    bin_dir.mkdir()
    (bin_dir / "crack-distill").write_text(fake)
    (bin_dir / "crack-distill").chmod(0o755)
    (bin_dir / "python").symlink_to(sys.executable)
    checked = re.search(r"^for s in (.*?); do$", SCRIPT.read_text().replace("\\\n", " "),
                        re.M)
    assert checked, f"{SCRIPT}: no check of the dataset folders"
    for name in checked.group(1).split():
        (data / "train" / name).mkdir(parents=True)
    env = {"PATH": "/usr/bin:/bin", "VENV_BIN": str(bin_dir), "LOG": str(tmp_path / "log.txt"),
           **switches}
    r = subprocess.run([str(script), str(data), str(tmp_path / "work")], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return log(tmp_path)


def trained(lines: List[str]) -> List[str]:
    """The runs the crack-distill lines trained (train --work W/RUN), in order."""
    return [re.search(r"--work \S*/work/(\S+)", x).group(1) for x in lines
            if x.startswith("train ")]


def test_main0_trains_only_the_long_pair_and_its_sittings(tmp_path):
    lines = run_script(tmp_path, LONG="1", LONG_EPOCHS="2", MORE="1 1", MAIN="0")
    runs = trained(lines)
    assert sorted(runs) == sorted(f"long2{s}_{i}" for s in ("", "q", "r1", "r1q", "r1r1", "r1r1q")
                                  for i in (0, 1))
    for i in (0, 1):  # each sitting after the seed's own previous one
        assert runs.index(f"long2_{i}") < runs.index(f"long2r1_{i}") < runs.index(f"long2r1r1_{i}")
        (third,) = [x for x in lines if f"/work/long2r1r1_{i} " in x and x.startswith("train")]
        assert f"student.init={tmp_path}/work/long2r1_{i}/checkpoints/last.pth" in third
    ensembles = [x.split()[-1] for x in lines if x.startswith("ensemble ")]
    assert f"{tmp_path}/work/ens_long2r1r1q/export/student.xml" in ensembles


def test_the_main_path_runs_unless_switched_off(tmp_path):
    runs = trained(run_script(tmp_path))
    assert runs == ["shipped", "seed1", "ft0", "ft1"]


def run_blur(tmp_path: Path, chosen: str) -> List[str]:
    """BLUR=1 MAIN=0 with gate_choice.json already saying CHOSEN (the cut, or null)."""
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "gate_choice.json").write_text(
        f'{{"chosen": {chosen}, "expert_threshold": 0.85}}')
    return run_script(tmp_path, BLUR="1", MAIN="0", BLUR_MAIN="/m/ens.xml",
                      BLUR_THRESHOLD="0.75")


def test_blur_trains_the_expert_and_gates_it_at_the_chosen_cut(tmp_path):
    lines = run_blur(tmp_path, "8.0")
    assert trained(lines) == ["blur_0", "blur_0q"]
    train, quiet = [x for x in lines if x.startswith("train ")]
    assert "cache.noise_mix=0.85" in train and "train.epochs=24" in train
    assert "crop.max_area=3.0" in train and "train.bf16=true" in train
    assert f"student.init={tmp_path}/work/blur_0/checkpoints/last.pth" in quiet
    assert "crop.clear_share=0.3" in quiet and "cache.noise_mix=0.85" in quiet
    gates = [x for x in lines if x.startswith("gate ")]
    expert = f"{tmp_path}/work/blur_0q/export/student"
    assert gates == [f"gate /m/ens.xml {expert}.xml --below-sharpness 8.0 --threshold 0.75 "
                     f"--expert-threshold 0.85 --out {tmp_path}/work/gated/export/student.xml",
                     f"gate /m/ens_int8.xml {expert}_int8.xml --below-sharpness 8.0 "
                     "--threshold 0.75 --expert-threshold 0.85 "
                     f"--out {tmp_path}/work/gated/export/student_int8.xml"]
    scored = [x for x in lines if x.startswith("eval ") and "/work/gated/" in x]
    assert len(scored) == 2 and all("eval.threshold=0.75" in x for x in scored)


def test_blur_gates_nothing_when_no_cut_passes_the_rule(tmp_path):
    lines = run_blur(tmp_path, "null")
    assert trained(lines) == ["blur_0", "blur_0q"]
    assert not [x for x in lines if x.startswith("gate ")]


def test_third_trains_on_from_the_blur_expert_and_ensembles_the_trios(tmp_path):
    ck = tmp_path / "work" / "blur_0" / "checkpoints"
    ck.mkdir(parents=True)
    (ck / "last.pth").touch()
    lines = run_script(tmp_path, THIRD="1", MAIN="0", THIRD_EPOCHS="5",
                       THIRD_PAIR="/m/a.xml /m/b.xml")
    assert trained(lines) == ["third", "thirdq", "thirdqs"]
    train, quiet, synthetic = [x for x in lines if x.startswith("train ")]
    assert f"student.init={ck}/last.pth" in train and "train.epochs=5" in train
    assert "train.lr=0.0005" in train and "train.seed=2" in train
    assert "cache.noise_mix" not in train  # the shipped recipe's 35% noise views
    for ft in (quiet, synthetic):
        assert f"student.init={tmp_path}/work/third/checkpoints/last.pth" in ft
        assert "crop.clear_share=0.3" in ft and "train.epochs=3" in ft
    assert "/work/synth:0.7" in quiet and "/work/synth:2.5" in synthetic
    ensembles = [x for x in lines if x.startswith("ensemble ")]
    assert ensembles == [
        f"ensemble /m/a{s}.xml /m/b{s}.xml {tmp_path}/work/{t}/export/student{s}.xml "
        f"--out {tmp_path}/work/{trio}/export/student{s}.xml"
        for t, trio in (("thirdq", "trio"), ("thirdqs", "trios")) for s in ("", "_int8")]
    for trio in ("trio", "trios"):
        scored = [x for x in lines if x.startswith("eval ") and f"/work/{trio}/" in x]
        assert any("--sweep" in x for x in scored) and len(scored) == 3


def test_onward_trains_the_shipped_pair_on_from_its_irs_and_rebuilds_the_trio(tmp_path):
    lines = run_script(tmp_path, ONWARD="1", MAIN="0", ONWARD_EPOCHS="4", ONWARD_MODEL="/m/car")
    assert sorted(trained(lines)) == ["on4_0", "on4_1", "on4q_0", "on4q_1"]
    for i, member in ((0, "single"), (1, "seed1")):
        (first,) = [x for x in lines if x.startswith("train ") and f"/work/on4_{i} " in x]
        assert f"student.init=/m/car_{member}.xml" in first and "train.epochs=4" in first
        assert "train.lr=0.0005" in first and f"train.seed={i}" in first
        (quiet,) = [x for x in lines if x.startswith("train ") and f"/work/on4q_{i} " in x]
        assert f"student.init={tmp_path}/work/on4_{i}/checkpoints/last.pth" in quiet
        assert "crop.clear_share=0.3" in quiet and "train.epochs=3" in quiet
    trio = [x for x in lines if x.startswith("ensemble ") and "/work/trio_on4/" in x]
    assert trio == [f"ensemble {tmp_path}/work/on4q_0/export/student{s}.xml "
                    f"{tmp_path}/work/on4q_1/export/student{s}.xml /m/car_third{s}.xml "
                    f"--out {tmp_path}/work/trio_on4/export/student{s}.xml"
                    for s in ("", "_int8")]
    scored = [x for x in lines if x.startswith("eval ") and "/work/trio_on4/" in x]
    assert any("--sweep" in x for x in scored) and len(scored) == 3


def test_third_refuses_to_start_without_the_blur_expert(tmp_path):
    with pytest.raises(AssertionError, match="needs BLUR=1"):
        run_script(tmp_path, THIRD="1", MAIN="0")


def test_an_edit_made_while_the_script_runs_does_not_reach_the_run(tmp_path):
    """A run of hours must not read lines edited after it started (bash reads a plain
    script as it goes, so an edit shifts what it reads next): the first crack-distill
    call rewrites a copy of the script, adding bytes near its top and a command at its
    end; the run goes on as written when it started."""
    copy = tmp_path / "repo" / "scripts" / "research" / "train_shipped_model"
    copy.parent.mkdir(parents=True)
    copy.write_text(SCRIPT.read_text())
    copy.chmod(0o755)
    edit = tmp_path / "edit.py"
    edit.write_text(f"import pathlib\np = pathlib.Path({str(copy)!r})\n"
                    "lines = p.read_text().splitlines(True)\n"
                    "lines.insert(2, '#' * 4000 + '\\n')\n"
                    "lines.append('echo EDITED >> \"$LOG\"\\n')\n"
                    "p.write_text(''.join(lines))\n")
    first = f'[ -f "$LOG.edited" ] || {{ touch "$LOG.edited"; {sys.executable} {edit}; }}\n'
    fake = FAKE_DISTILL.replace('echo "$*" >> "$LOG"\n', 'echo "$*" >> "$LOG"\n' + first, 1)
    lines = run_script(tmp_path, copy, fake)
    assert "#" * 4000 in copy.read_text()  # the edit was made, during the run
    assert "EDITED" not in lines and trained(lines) == ["shipped", "seed1", "ft0", "ft1"]


@pytest.mark.parametrize("chosen", [[0.4, 0.95], None])
def test_hyst_scores_the_chosen_mask_rule_on_the_test_sets(tmp_path, chosen):
    """HYST=1 sweeps the model for its plain threshold and, with hyst.json (the study's
    choice) there, scores the chosen rule on the test sets, FP16 and INT8; nothing when
    no rule passed."""
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "hyst.json").write_text(json.dumps({"chosen": chosen}))
    lines = run_script(tmp_path, HYST="1", MAIN="0", HYST_MODEL="/m/car")
    (sweep,) = [x for x in lines if "--sweep" in x]
    assert sweep.startswith("eval /m/car.xml --sweep") and "/work/hyst " in sweep
    scored = [x for x in lines if x.startswith("eval /m/car") and "--sweep" not in x]
    if chosen is None:
        assert scored == []
        return
    assert [x.split()[1] for x in scored] == ["/m/car.xml", "/m/car_int8.xml"]
    for x in scored:
        assert "eval.seed_threshold=0.95" in x and "eval.threshold=0.4" in x
        assert x.endswith("--quiet") and "/work/eval_hyst" in x


@pytest.mark.parametrize("chosen", [[5.0, 2.0], None])
def test_vshift_builds_and_scores_the_chosen_view_shift(tmp_path, chosen):
    """VSHIFT=1 studies the car's model against its card's own rule and, with vshift.json
    (the study's choice) there, builds the view-shifted IRs (FP16, INT8) and scores them
    on the test sets at the card's threshold; nothing when no shift passed."""
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "vshift.json").write_text(json.dumps({"chosen": chosen}))
    (tmp_path / "car.yaml").write_text("threshold: 0.4\nseed_threshold: 0.95\n")
    lines = run_script(tmp_path, VSHIFT="1", MAIN="0", VSHIFT_MODEL=str(tmp_path / "car"))
    gates = [x for x in lines if x.startswith("gate ")]
    scored = [x for x in lines if x.startswith("eval ") and "/work/vshift/" in x]
    if chosen is None:
        assert gates == [] and scored == []
        return
    assert [x.split()[1] for x in gates] == [f"{tmp_path}/car.xml", f"{tmp_path}/car_int8.xml"]
    for x in gates:
        assert "--below-sharpness 5.0 --blurred-shift 2.0 --out" in x
    assert [x.split()[1] for x in scored] == [f"{tmp_path}/work/vshift/car.xml",
                                             f"{tmp_path}/work/vshift/car_int8.xml"]
    for x in scored:
        assert "eval.threshold=0.4" in x and "/work/eval_vshift" in x
