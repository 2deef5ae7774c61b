"""scripts/release/ship_model.py keeps the replaced card's rows that a new work folder did not
score, so shipping a retrained student does not drop the KD, teacher and older rows."""

import importlib.util

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "release" / "ship_model.py"
spec = importlib.util.spec_from_file_location("ship_model", SCRIPT)
ship_model = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ship_model)


def row(iou: float) -> dict:
    return {"model": "m", "DeepCrack": {"clean": {"iou": iou}}}


def test_new_rows_first_old_shipped_rows_relabelled_baseline_last():
    base = ship_model.BASELINE
    found = {"new (shipped)": row(0.7), "new (shipped), INT8 IR": row(0.69), base: row(0.4)}
    previous = {"old + flip averaging (h) (shipped)": row(0.67),
                "old (single pass)": row(0.66), "teacher": row(0.3),
                "new (shipped)": row(0.1), base: row(0.2)}
    out = ship_model.carried_rows(found, previous)
    assert list(out) == ["new (shipped)", "new (shipped), INT8 IR",
                         "old + flip averaging (h) (shipped before)",
                         "old (single pass, shipped before)", "teacher", base]
    # this work folder's scores win over the old card's, the baseline's included
    assert out["new (shipped)"]["DeepCrack"]["clean"]["iou"] == 0.7
    assert out[base]["DeepCrack"]["clean"]["iou"] == 0.4
    assert out["teacher"] == previous["teacher"]


def test_nothing_to_carry_and_no_baseline_in_work():
    base = ship_model.BASELINE
    assert ship_model.carried_rows({"a (shipped)": row(0.5)}, {}) == {"a (shipped)": row(0.5)}
    out = ship_model.carried_rows({"a (shipped)": row(0.5)}, {base: row(0.2)})
    assert list(out) == ["a (shipped)", base]


def test_shipping_the_same_run_again_replaces_its_rows_instead_of_carrying_them(tmp_path):
    import yaml
    bin_ = tmp_path / "student.bin"
    bin_.write_bytes(b"weights")
    rows = {"new + flip averaging (h) (shipped)": row(0.7), "new (single pass)": row(0.69),
            "old (shipped before)": row(0.6), "old (single pass, shipped before)": row(0.5)}
    card, single = tmp_path / "m.yaml", tmp_path / "m_single.yaml"
    card.write_text(yaml.safe_dump({"files": {"bin_sha256": "flipped graph"},
                                    "evaluation": {"models": rows}}))
    single.write_text(yaml.safe_dump({"files": {"bin_sha256": ship_model.sha256_file(bin_)},
                                      "evaluation": {"models": {}}}))
    again = ship_model.previous_rows(card, single, bin_)
    assert list(again) == ["old (shipped before)", "old (single pass, shipped before)"]
    bin_.write_bytes(b"retrained weights")  # another run: the shipped rows are carried
    assert ship_model.previous_rows(card, single, bin_) == rows
    assert ship_model.previous_rows(tmp_path / "none.yaml", None, bin_) == {}


def test_a_row_the_work_folder_scored_again_under_a_new_label_is_not_carried():
    found = {"ft (shipped)": row(0.7), "seed 1": row(0.6)}
    previous = {"seed 1 (the ensemble's second member)": row(0.6), "teacher": row(0.3)}
    assert list(ship_model.carried_rows(found, previous)) == ["ft (shipped)", "seed 1",
                                                              "teacher"]


def test_the_cards_commands_include_student_runs_named_by_a_variable():
    steps = ship_model.script_commands()
    assert any(s.startswith('EXPORT=last student_run "${n}q_$i"') for s in steps)
    assert any(s.startswith("EXPORT=last student_run ft0 ") for s in steps)
    assert all("\\" not in s for s in steps)  # continuation lines joined


def test_the_card_of_a_long_run_names_the_switches_that_train_it():
    assert ship_model.reproduce_script("ft0") == ("scripts/research/train_shipped_model DATA_DIR "
                                                  "[WORK_DIR] (CPU)")
    line = ship_model.reproduce_script("long30r36q_0")
    assert line.startswith("LONG=1 LONG_EPOCHS=30 MORE=36 scripts/research/train_shipped_model ")
    # every switch it names is one the script reads
    script = ship_model.SCRIPT.read_text()
    assert all(f"${{{k.split('=')[0]}:-" in script for k in line.split()[:3])


def test_the_cards_commands_write_out_the_scripts_option_arrays():
    text = ('A=(--set x=1\n   --set y=2)\nB=(--no-kd "${A[@]}")\nP=()\nP=(--bf16)\n'
            'f() { S=(--data "$T/d:${1:-2}"); }\n')
    arrays = ship_model.script_arrays(text)
    # B names A; P is defined twice and S from a function's argument: both left as named
    assert arrays == {"A": "--set x=1 --set y=2", "B": "--no-kd --set x=1 --set y=2"}
    assert ship_model.expand_arrays('run t "${B[@]}" "${P[@]}"', arrays) == (
        'run t --no-kd --set x=1 --set y=2 "${P[@]}"')
    ft0 = next(s for s in ship_model.script_commands() if " student_run ft0 " in f" {s}")
    assert "--set crop.min_area=0.3" in ft0 and "--set train.lr=0.0003" in ft0
    assert "${VIEWS" not in ft0 and "${FT" not in ft0
