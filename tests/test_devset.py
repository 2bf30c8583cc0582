"""The development-set benchmarks' bookkeeping: families, doubt, out-of-fold splits and the regression gate.

Every row comes from a clips.csv the test writes into its own temporary folder, in the
development set's format; the development clips themselves are never opened (a user's clone
has none).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import confidence_cv  # noqa: E402
import devset  # noqa: E402
import fusion_cv  # noqa: E402
import gate  # noqa: E402

from vidsense.agents.evidence import SourceScores  # noqa: E402
from vidsense.agents.fusion import PRIOR_WEIGHTS, FitExample, FusionWeights  # noqa: E402

HEADER = "file,label,labelset,family,source,evidence,sha256,license_note\n"


def _clips(tmp_path: Path, lines: list[tuple[str, str, str, str]]) -> Path:
    text = HEADER + "".join(f"clips/{f},{lab},{ls},{fam},src,{'DOUBT: maybe' if 'doubt' in f else 'seen'},{i:064x},x\n" for i, (f, lab, ls, fam) in enumerate(lines))
    (tmp_path / "clips.csv").write_text(text)
    return tmp_path


def _rows(tmp_path: Path) -> list[devset.DevRow]:
    lines = [(f"u{i}.mp4", "Biking", "ucf101", "ucf101") for i in range(5)]
    lines += [("free.mp4", "cooking", "other:freetext", "free-text"), ("free_doubt.mp4", "pouring coffee", "other:freetext", "free-text"), ("kth.avi", "boxing", "other:kth", "kth")]
    folder = _clips(tmp_path, lines)
    labels = tmp_path / "other.txt"
    labels.write_text("\n".join(devset.other_labels_of(folder)) + "\n")
    rows = devset.pool(devset.clips_csv_rows(folder, labels))
    assert rows and all(r.path.is_relative_to(tmp_path) for r in rows)  # nothing from outside the test's folder
    return rows


def test_small_families_pool_as_other_and_user_labels_share_one_file(tmp_path):
    rows = _rows(tmp_path)
    fams = {r.path.name: r.family for r in rows}
    assert fams["u0.mp4"] == "ucf101" and fams["free.mp4"] == devset.POOLED and fams["kth.avi"] == devset.POOLED
    assert {r.origin for r in rows if r.family == devset.POOLED} == {"free-text", "kth"}
    users = {r.labelset for r in rows if r.path.suffix != ".mp4" or r.path.name.startswith("free")}
    assert users == {str(tmp_path / "other.txt")}
    assert (tmp_path / "other.txt").read_text().split("\n")[:3] == ["cooking", "pouring coffee", "boxing"]
    assert [r.doubt for r in rows if r.path.name == "free_doubt.mp4"] == [True]
    assert len({r.group for r in rows}) == len(rows)


def _case(row: devset.DevRow, action_right: bool) -> fusion_cv.Case:
    # Two labels; the action source is right or wrong, the objects source always wrong.
    action = np.log([0.9, 0.1]) if action_right else np.log([0.1, 0.9])
    scores = (SourceScores("action", action), SourceScores("objects", np.log([0.4, 0.6])))
    return fusion_cv.Case(row, FitExample(scores, 0), 2, 0.0)


def test_folds_never_fit_on_what_they_score_nor_on_rows_in_doubt(tmp_path):
    cs = [_case(r, True) for r in _rows(tmp_path)]
    for fold in fusion_cv.family_folds(cs) + fusion_cv.group_folds(cs, k=3):
        assert not set(fold.train) & set(fold.test)
        assert not any(cs[i].row.doubt for i in fold.train)
    for fold in fusion_cv.family_folds(cs):
        assert len({cs[i].row.family for i in fold.test}) == 1
        assert cs[fold.test[0]].row.family not in {cs[i].row.family for i in fold.train}
    scored = sorted(i for f in fusion_cv.group_folds(cs, k=3) for i in f.test)
    assert scored == list(range(len(cs)))


def test_out_of_fold_fit_learns_the_source_that_is_right(tmp_path):
    cs = [_case(r, True) for r in _rows(tmp_path)]
    ws = fusion_cv.out_of_fold(cs, fusion_cv.group_folds(cs, k=3), fusion_cv.fit_at(0.01))
    assert all(w.weights["action"] > PRIOR_WEIGHTS["action"] for w in ws)
    t = fusion_cv.tally(cs, ws)
    assert t["all"] == {"n": 7, "top1": 7, "top5": 7} and t[fusion_cv.DOUBT]["n"] == 1
    assert fusion_cv.rank(cs[0], FusionWeights({"scene": 1.0})) == 1.5  # no evidence: the middle


def test_a_fit_per_label_set_learns_each_sets_own_right_source(tmp_path):
    # On UCF-101 rows the action recogniser is right; on the user's label file the objects are.
    def case(row: devset.DevRow) -> fusion_cv.Case:
        right, wrong = np.log([0.9, 0.1]), np.log([0.1, 0.9])
        ucf = row.labelset == "ucf101"
        return fusion_cv.Case(row, FitExample((SourceScores("action", right if ucf else wrong), SourceScores("objects", wrong if ucf else right)), 0), 2, 0.0)

    cs = [case(r) for r in _rows(tmp_path)]
    fitted = fusion_cv.per_set(fusion_cv.fit_at(0.01))([c for c in cs if not c.row.doubt])
    assert set(fitted) == {"ucf101", str(tmp_path / "other.txt")}
    assert fitted["ucf101"].weights["action"] > fitted["ucf101"].weights["objects"]
    assert fitted[str(tmp_path / "other.txt")].weights["objects"] > fitted[str(tmp_path / "other.txt")].weights["action"]
    # Out of fold each row gets its own set's weights, or the prior where its fold held no row of that set.
    folds = fusion_cv.group_folds(cs, k=3)
    ws = fusion_cv.out_of_fold(cs, folds, fusion_cv.per_set(fusion_cv.fit_at(0.01)))
    own = []
    for fold in folds:
        sets = {cs[i].row.labelset for i in fold.train}
        for i in fold.test:
            mine, other = ("action", "objects") if cs[i].row.labelset == "ucf101" else ("objects", "action")
            own.append(cs[i].row.labelset in sets)
            if own[-1]:
                assert ws[i].weights[mine] > ws[i].weights[other], (cs[i].row.path.name, ws[i].weights)
            else:
                assert ws[i].weights == PRIOR_WEIGHTS
    assert any(own) and not all(own)


def test_a_sure_source_outvotes_an_unsure_one_when_weights_follow_confidence(tmp_path):
    # The action recogniser is unsure and wrong (0.3 / 0.7), the objects sure and right (0.8 / 0.2):
    # the prior's weights (1.0 against 0.3) answer label 1; scaled by confidence, label 0.
    rows = _rows(tmp_path)
    scores = (SourceScores("action", np.log([0.3, 0.7])), SourceScores("objects", np.log([0.8, 0.2])))
    case = fusion_cv.Case(rows[0], FitExample(scores, 0), 2, 0.0)
    median = {"action": 0.2, "objects": 0.2, "speech": 1e-3}
    assert confidence_cv.rank(case, confidence_cv.PRIOR) == 2
    assert confidence_cv.rank(case, ("negentropy", 1.0, np.inf, median)) == 1
    # Softer only: the objects may not gain past the prior, and the action's loss alone is not enough here.
    assert confidence_cv.rank(case, ("negentropy", 1.0, 1.0, median)) == 2
    # Speech is never scaled: an almost flat transcript whose median confidence is tiny would get
    # 7 times its weight and flip the answer; it keeps its bounded say.
    spoken = fusion_cv.Case(rows[0], FitExample((*scores, SourceScores("speech", np.log([0.45, 0.55]))), 0), 2, 0.0)
    assert confidence_cv.rank(spoken, ("negentropy", 1.0, np.inf, median)) == 1
    # Chosen on training rows like it, the scaling is taken; where the prior is already right, the prior stays.
    sure = fusion_cv.Case(rows[1], FitExample((SourceScores("action", np.log([0.9, 0.1])), SourceScores("objects", np.log([0.55, 0.45]))), 0), 2, 0.0)
    assert confidence_cv.choose([case, sure, sure], ["negentropy"], np.inf)[1] > 0
    assert confidence_cv.choose([_case(r, True) for r in rows], ["negentropy"], np.inf) == confidence_cv.PRIOR


def test_gate_fails_only_when_a_family_falls_by_more_than_one_clip(tmp_path, capsys):
    rows = _rows(tmp_path)
    ranks: list[float | None] = [1.0] * len(rows)
    base = gate.save(tmp_path / "baseline.json", gate.tally(rows, ranks), rows, ranks, {"route": "cascade"})
    assert gate.check(base, gate.tally(rows, ranks), rows, ranks) == []
    one = [2.0 if r.path.name == "u0.mp4" else k for r, k in zip(rows, ranks)]
    assert gate.check(base, gate.tally(rows, one), rows, one) == []
    assert "lost top-1: u0.mp4" in capsys.readouterr().out
    two = [9.0 if r.path.name in ("u0.mp4", "u1.mp4") else k for r, k in zip(rows, ranks)]
    failures = gate.check(base, gate.tally(rows, two), rows, two)
    assert any(f.startswith("ucf101: top1 3/5") for f in failures) and any(f.startswith("ucf101: top5 3/5") for f in failures)
    # A failed row is a miss; rows in doubt never gate.
    doubt = [None if r.doubt else k for r, k in zip(rows, ranks)]
    assert gate.check(base, gate.tally(rows, doubt), rows, doubt) == []


@pytest.mark.parametrize("dropped", ["kth.avi"])
def test_gate_names_a_changed_set(tmp_path, dropped):
    rows = _rows(tmp_path)
    ranks = [1.0] * len(rows)
    base = gate.save(tmp_path / "baseline.json", gate.tally(rows, ranks), rows, ranks, {})
    fewer = [r for r in rows if r.path.name != dropped]
    failures = gate.check(base, gate.tally(fewer, [1.0] * len(fewer)), fewer, [1.0] * len(fewer))
    assert failures and "the set changed" in failures[0]


def test_the_baseline_says_what_cpu_it_was_measured_on_and_the_gate_notes_another(tmp_path, capsys):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse avx avx2 avx512f avx512_vnni\n")
    assert gate.machine(cpuinfo)["cpu"] == "Some CPU" and gate.machine(cpuinfo)["instructions"] == ["avx2", "avx512f", "avx512_vnni"]
    rows = _rows(tmp_path)
    ranks: list[float | None] = [1.0] * len(rows)
    base = gate.save(tmp_path / "baseline.json", gate.tally(rows, ranks), rows, ranks, {"route": "cascade"})
    saved = json.loads(base.read_text())
    assert saved["machine"] == gate.machine()
    assert gate.check(base, gate.tally(rows, ranks), rows, ranks) == [] and "note:" not in capsys.readouterr().out
    saved["machine"]["instructions"] = ["amx_tile"]
    base.write_text(json.dumps(saved))
    assert gate.check(base, gate.tally(rows, ranks), rows, ranks) == []  # a note, never a failure
    assert "the baseline was measured on a CPU with amx_tile" in capsys.readouterr().out
