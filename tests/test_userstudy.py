"""Table 4's user study without a browser: the study folder, the answers database behind the real
server (bad requests, 20 concurrent participants, a killed server), AHR / Kendall's W / bootstrap
against hand computation and scipy, and the ``results`` command."""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats

from scpdiff.cli import main
from scpdiff.userstudy import results
from scpdiff.userstudy.study import QUESTION_KEYS, load_study
from scpdiff.userstudy.tokens import invite
from userstudy_support import Server, http, make_study, token_of


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("userstudy")
    study, values = make_study(root)
    return root, study, values


def _copy_study(built, tmp_path) -> Path:
    import shutil

    dst = tmp_path / "study"
    shutil.copytree(built[1], dst)
    return dst


def _answer(study, group: str, order: list[str]) -> dict:
    """Ranks by the position in ``order`` (best first) for quality, reversed for fidelity."""
    return {"group": group, "ranks": {"quality": {im: i + 1 for i, im in enumerate(order)},
                                      "fidelity": {im: len(order) - i for i, im in enumerate(order)}}}


def _db_rows(study) -> tuple[list, list]:
    con = sqlite3.connect(Path(study) / "answers.sqlite")
    try:
        return (sorted(con.execute("SELECT participant, grp FROM answers")),
                sorted(con.execute("SELECT participant, grp, question, image, method, rank FROM ranks")))
    finally:
        con.close()


# --------------------------------------------------------------------------- the study folder


def test_build_writes_groups_with_one_image_per_method_and_hides_the_method(built):
    root, study_dir, values = built
    study = load_study(study_dir)
    assert study.methods == ["OASIS", "normal:1", "SCP-Diff"]
    assert len(study.groups) == 4 and len({g.label_map for g in study.groups.values()}) == 4
    with open(study_dir / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * (1 + 3)
    for row in rows:
        data = (study_dir / row["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
        if row["role"] == "image":
            # the copied file is the method's own image, and its name says nothing of the method
            assert data == Path(row["source"]).read_bytes()
            assert np.asarray(Image.open(study_dir / row["file"]))[0, 0, 0] == values[row["method"]]
            assert Path(row["file"]).stem in {"1", "2", "3"}
    # the mask is the label map in the dataset's palette
    from scpdiff.datasets import open_dataset

    ds = open_dataset("toy", root=str(root / "data"), split="val", resolution=(64, 128))
    group = study.groups["g0001"]
    index = [ds[i][2] for i in range(len(ds))].index(group.label_map)
    mask = ds[index][1]
    shown = np.asarray(Image.open(study_dir / group.mask).convert("RGB"))
    np.testing.assert_array_equal(shown[mask != 255], ds.classes.palette[mask[mask != 255]])


def _build_args(root: Path, out: Path, groups: int = 4) -> list[str]:
    return ["user-study", "build", "--benchmark", str(root / "bench.yaml"), "--images", f"OASIS={root / 'oasis'}",
            "--methods", "normal:1", "SCP-Diff=joint:0.85", "--work-dir", str(root / "work"),
            "--groups", str(groups), "--seed", "3", "--out", str(out)]


def test_build_is_reproducible_and_refuses_to_replace_a_study_with_answers(built, tmp_path, capsys):
    root, study_dir, _ = built
    assert main(_build_args(root, tmp_path / "again")) == 0
    assert (tmp_path / "again" / "manifest.csv").read_bytes() == (study_dir / "manifest.csv").read_bytes()
    copy = _copy_study(built, tmp_path)
    invite(copy, count=1)
    manifest = (copy / "manifest.csv").read_bytes()
    assert main(_build_args(root, copy)) == 1
    assert "has participants" in capsys.readouterr().err
    assert (copy / "manifest.csv").read_bytes() == manifest
    assert main(_build_args(root, tmp_path / "too_many", groups=7)) == 1
    assert "only 6 label maps" in capsys.readouterr().err
    assert not (tmp_path / "too_many").exists()


def test_each_participant_has_a_fixed_order_of_groups_and_images(built):
    study = load_study(built[1])
    first, again = study.participant_order(1), study.participant_order(1)
    assert first == again
    assert sorted(g for g, _ in first) == sorted(study.groups)
    for gid, images in first:
        assert sorted(images) == sorted(study.groups[gid].images)
    orders = {tuple(g for g, _ in study.participant_order(p)) for p in range(1, 30)}
    assert len(orders) > 1  # not the same order for everyone


# --------------------------------------------------------------------------- the server


@pytest.fixture
def served(built, tmp_path):
    study = _copy_study(built, tmp_path)
    links = invite(study, count=20)
    server = Server(study)
    yield study, server, [token_of(link) for link in links]
    server.stop()


def test_bad_requests_get_a_4xx_with_a_reason_and_change_nothing(served):
    study, server, tokens = served
    assert server.url.startswith("http://127.0.0.1:")  # loopback unless --host says otherwise
    base = f"{server.url}/p/{tokens[0]}"
    status, state = http("GET", f"{base}/next")
    assert status == 200 and state["answered"] == 0 and state["total"] == 4
    group, images = state["group"], [im["id"] for im in state["images"]]
    good = _answer(study, group, images)
    assert http("POST", f"{base}/answer", good)[0] == 201
    before = _db_rows(study)

    def bad(ranks_q, ranks_f=None):
        return {"group": group, "ranks": {"quality": ranks_q, "fidelity": ranks_f or good["ranks"]["fidelity"]}}

    other = next(g for g in load_study(study).groups if g != group)
    cases = [
        # (request, expected status, words in the message)
        (("POST", f"{base}/answer", bad({images[0]: 4, images[1]: 1, images[2]: 2})), 400, "out of range 1..3"),
        (("POST", f"{base}/answer", bad({images[0]: 0, images[1]: 1, images[2]: 2})), 400, "out of range"),
        (("POST", f"{base}/answer", bad({images[0]: 1, images[1]: 1, images[2]: 2})), 400, "repeated"),
        (("POST", f"{base}/answer", {"group": "g9999", "ranks": good["ranks"]}), 404, "unknown group"),
        (("POST", f"{server.url}/p/not-a-token/answer", good), 404, "unknown invitation token"),
        (("GET", f"{server.url}/p/not-a-token/next", None), 404, "unknown invitation token"),
        (("POST", f"{base}/answer", bad({images[0]: 1, images[1]: 2})), 400, "rank exactly the images"),
        (("POST", f"{base}/answer", {"group": group, "ranks": {"quality": good["ranks"]["quality"]}}), 400,
         "exactly the questions"),
        (("POST", f"{base}/answer", bad({images[0]: "1", images[1]: 2, images[2]: 3})), 400, "must be an integer"),
        (("POST", f"{base}/answer", _answer(study, group, images[::-1])), 409, "already answered"),
        (("POST", f"{base}/answer", {"group": other, "ranks": good["ranks"]}), 400, "rank exactly the images"),
        (("GET", f"{base}/file/../manifest.csv", None), 400, "outside the study"),
        (("GET", f"{base}/file/%2e%2e/%2e%2e/etc/passwd", None), 400, "outside the study"),
        (("GET", f"{base}/file/manifest.csv", None), 404, "not an image of this study"),
        (("GET", f"{base}/file/answers.sqlite", None), 404, "not an image of this study"),
        (("GET", f"{server.url}/p/not-a-token/file/masks/g0001.png", None), 404, "unknown invitation token"),
    ]
    for (method, url, body), status, words in cases:
        got, reply = http(method, url, body)  # urllib sends '..' as typed: no client-side normalising
        message = reply["error"] if isinstance(reply, dict) else str(reply)
        assert got == status and words in message, (url, body, got, reply)
    got, reply = http("POST", f"{base}/answer", raw=b"{not json")
    assert got == 400 and "JSON" in reply["error"]
    assert _db_rows(study) == before
    # the same answer again is a no-op that says so
    status, reply = http("POST", f"{base}/answer", good)
    assert status == 200 and reply["duplicate"] is True
    assert _db_rows(study) == before
    assert http("GET", f"{base}/file/{load_study(study).groups[group].mask}")[0] == 200


def test_twenty_concurrent_participants_lose_no_answer_and_create_no_duplicate(served):
    study, server, tokens = served
    sent: dict[tuple[str, str], dict] = {}
    errors: list = []
    barrier = threading.Barrier(len(tokens))

    def participant(token: str):
        try:
            barrier.wait(timeout=30)
            while True:
                status, state = http("GET", f"{server.url}/p/{token}/next")
                assert status == 200, state
                if state["group"] is None:
                    return
                images = [im["id"] for im in state["images"]]
                rng = np.random.default_rng(abs(hash((token, state["group"]))) % 2**32)
                answer = _answer(study, state["group"], [images[i] for i in rng.permutation(len(images))])
                sent[(token, state["group"])] = answer
                # a double submit, as from an impatient double click
                replies = [http("POST", f"{server.url}/p/{token}/answer", answer) for _ in range(2)]
                assert [r[0] for r in replies] == [201, 200], replies
        except BaseException as exc:  # noqa: BLE001 -- reported below with the token
            errors.append((token, exc))

    threads = [threading.Thread(target=participant, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    answers, ranks = _db_rows(study)
    assert len(sent) == 20 * 4 and len(answers) == 20 * 4 == len(set(answers))
    ids, groups = dict(_participant_ids(study)), load_study(study).groups
    expected = sorted((ids[tok], g, q, im, groups[g].images[im], r)
                      for (tok, g), a in sent.items() for q, given in a["ranks"].items() for im, r in given.items())
    assert ranks == expected


def _participant_ids(study):
    con = sqlite3.connect(Path(study) / "answers.sqlite")
    try:
        return [(token, pid) for pid, token in con.execute("SELECT id, token FROM participants")]
    finally:
        con.close()


def test_a_killed_server_restarted_on_the_same_database_keeps_every_committed_answer(served):
    study, server, tokens = served
    committed = []
    for token in tokens[:5]:
        for _ in range(2):
            state = http("GET", f"{server.url}/p/{token}/next")[1]
            answer = _answer(study, state["group"], [im["id"] for im in state["images"]])
            assert http("POST", f"{server.url}/p/{token}/answer", answer)[0] == 201
            committed.append((token, state["group"]))
    before = _db_rows(study)
    server.kill()
    restarted = Server(study)
    try:
        assert _db_rows(study) == before and len(before[0]) == 10
        for token in tokens[:5]:
            state = http("GET", f"{restarted.url}/p/{token}/next")[1]
            assert state["answered"] == 2  # resumes at the third group of this participant's order
            order = [g for g, _ in load_study(study).participant_order(dict(_participant_ids(study))[token])]
            assert state["group"] == order[2]
    finally:
        restarted.stop()


# --------------------------------------------------------------------------- Table 4


def _frame(rows, k=3):
    frame = pd.DataFrame(rows, columns=["participant", "group", "question", "method", "rank"])
    frame["image"] = frame["method"]
    frame["score"] = k + 1 - frame["rank"]
    return frame


def test_ahr_is_the_mean_and_std_of_k_plus_1_minus_rank():
    methods = ["A", "B", "C"]
    # participant 1 ranks A>B>C twice, participant 2 ranks B>A>C once (quality); fidelity reversed
    rows = []
    for p, g, order in [(1, "g1", "ABC"), (1, "g2", "ABC"), (2, "g1", "BAC")]:
        for i, m in enumerate(order):
            rows += [(p, g, "quality", m, i + 1), (p, g, "fidelity", m, 3 - i)]
    table = results.table4(_frame(rows), methods, n_boot=200, seed=0)
    # hand computation: quality scores A = [3, 3, 2], B = [2, 2, 3], C = [1, 1, 1]
    assert table.loc["A", "quality_ahr"] == pytest.approx(8 / 3)
    assert table.loc["A", "quality_std"] == pytest.approx(np.std([3, 3, 2], ddof=1))
    assert table.loc["C", "quality_std"] == 0.0
    assert table.loc["C", "fidelity_ahr"] == pytest.approx(3.0)
    assert (table["answers"] == 3).all()
    # the bootstrap interval holds the mean, and collapses where every answer agrees
    assert table.loc["A", "quality_ci_low"] <= 8 / 3 <= table.loc["A", "quality_ci_high"]
    assert table.loc["C", "quality_ci_low"] == table.loc["C", "quality_ci_high"] == 1.0
    # with one participant's answers resampled together: the interval's ends are participant means
    assert {table.loc["A", "quality_ci_low"], table.loc["A", "quality_ci_high"]} <= {3.0, 2.0, 8 / 3}


def test_kendall_w_matches_hand_computation_and_scipys_friedman_statistic():
    ranks = np.array([[1, 2, 3, 4], [2, 1, 3, 4], [1, 3, 2, 4]])
    m, k = ranks.shape
    totals = ranks.sum(0)  # 4, 6, 8, 12
    s = ((totals - totals.mean()) ** 2).sum()
    assert results.kendall_w(ranks) == pytest.approx(12 * s / (m**2 * (k**3 - k)))
    chi2 = stats.friedmanchisquare(*ranks.T).statistic
    assert results.kendall_w(ranks) == pytest.approx(chi2 / (m * (k - 1)))
    assert results.kendall_w(np.array([[1, 2, 3]] * 4)) == pytest.approx(1.0)
    assert results.kendall_w(np.array([[1, 2], [2, 1]])) == pytest.approx(0.0)


def test_agreement_averages_w_over_groups_ranked_twice_or_more():
    rows = []
    for p, g, order in [(1, "g1", "ABC"), (2, "g1", "ABC"), (1, "g2", "ABC"), (2, "g2", "CBA"), (3, "g3", "ABC")]:
        for i, m in enumerate(order):
            rows += [(p, g, q, m, i + 1) for q in QUESTION_KEYS]
    agree = results.agreement(_frame(rows), ["A", "B", "C"])
    # g1: full agreement (1), g2: opposite orders (0), g3: one rater (left out)
    assert agree.loc["quality", "kendall_w"] == pytest.approx(0.5)
    assert agree.loc["quality", "w_groups"] == 2


def test_results_command_writes_table4_in_the_papers_form(served, tmp_path):
    study, server, tokens = served
    for token in tokens[:3]:
        state = http("GET", f"{server.url}/p/{token}/next")[1]
        images = sorted(state["images"], key=lambda im: load_study(study).groups[state["group"]].images[im["id"]])
        # everyone ranks SCP-Diff first and OASIS last (methods sorted: OASIS, SCP-Diff, normal:1)
        order = [images[1]["id"], images[2]["id"], images[0]["id"]]
        assert http("POST", f"{server.url}/p/{token}/answer", _answer(study, state["group"], order))[0] == 201
    out = tmp_path / "table4"
    assert main(["user-study", "results", str(study), "--out", str(out), "--bootstrap", "100"]) == 0
    table = pd.read_csv(out / "table4.csv", index_col="method")
    assert list(table.index) == ["OASIS", "normal:1", "SCP-Diff"]
    assert table.loc["SCP-Diff", "quality_ahr"] == 3 and table.loc["OASIS", "quality_ahr"] == 1
    assert table.loc["SCP-Diff", "fidelity_ahr"] == 1 and table.loc["normal:1", "fidelity_ahr"] == 2
    summary = json.loads((out / "table4_summary.json").read_text())
    assert summary["participants"] == 3 and summary["answers"] == 3 and summary["groups"] == 4
    tex = (out / "table4.tex").read_text()
    assert r"\textbf{3.00$\pm$0.00}" in tex and "Result Quality" in tex and "Condition Fidelity" in tex
    assert "SCP-Diff" in tex and "normal:1" in tex and r"\toprule" in tex


def test_results_without_answers_fail_clearly(built, tmp_path, capsys):
    study = _copy_study(built, tmp_path)
    assert main(["user-study", "results", str(study), "--out", str(tmp_path / "t4")]) == 1
    assert "no answers database" in capsys.readouterr().err
    invite(study, count=1)
    assert main(["user-study", "results", str(study), "--out", str(tmp_path / "t4")]) == 1
    assert "no answers yet" in capsys.readouterr().err
    assert not (tmp_path / "t4").exists()


def _table4_folder(folder, bench, rows):
    folder.mkdir(parents=True)
    table = pd.DataFrame(rows, columns=["method", "quality_ahr", "quality_std", "quality_ci_low", "quality_ci_high",
                                        "fidelity_ahr", "fidelity_std", "fidelity_ci_low", "fidelity_ci_high",
                                        "answers"]).set_index("method")
    table.to_csv(folder / "table4.csv")
    (folder / "table4.tex").write_text(f"% the table of {bench}\n")
    summary = {"benchmark": bench, "methods": list(table.index), "participants": 2, "groups": 4,
               "groups_answered": 3, "answers": 5, "kendall_w": {"quality": 0.5, "fidelity": None}}
    (folder / "table4_summary.json").write_text(json.dumps(summary))
    return folder


def test_table4_over_benchmarks_one_is_its_table_several_are_column_groups(tmp_path):
    a = _table4_folder(tmp_path / "a" / "table4", "cityscapes",
                       [["normal:1", 1.2, 0.4, 1.0, 1.4, 1.5, 0.5, 1.2, 1.8, 5],
                        ["joint:0.85", 2.8, 0.4, 2.6, 3.0, 2.5, 0.5, 2.2, 2.8, 5]])
    b = _table4_folder(tmp_path / "b" / "table4", "ade20k",
                       [["joint:0.85", 2.0, 0.0, 2.0, 2.0, 1.0, 0.0, 1.0, 1.0, 5],
                        ["normal:1", 1.0, 0.0, 1.0, 1.0, 2.0, 0.0, 2.0, 2.0, 5]])
    one = tmp_path / "one"
    assert main(["user-study", "combine", str(a), "--out-dir", str(one)]) == 0
    assert (one / "table4.csv").read_bytes() == (a / "table4.csv").read_bytes()
    assert (one / "table4.tex").read_text() == "% the table of cityscapes\n"
    both = tmp_path / "both"
    assert main(["user-study", "combine", str(a), str(b), "--out-dir", str(both)]) == 0
    table = pd.read_csv(both / "table4.csv", index_col=["benchmark", "method"])
    assert table.loc[("ade20k", "normal:1"), "fidelity_ahr"] == 2.0
    assert table.loc[("cityscapes", "joint:0.85"), "quality_ahr"] == 2.8 and len(table) == 4
    tex = (both / "table4.tex").read_text()
    # one column group per benchmark, methods in one row each, the best of each question bold per benchmark
    assert tex.count(r"\multicolumn{2}{c}") == 2 and "cityscapes" in tex and "ade20k" in tex
    joint = next(line for line in tex.splitlines() if line.startswith("joint:0.85"))
    assert joint.count(r"\textbf") == 3  # cityscapes quality + fidelity, ade20k quality
    assert main(["user-study", "combine", str(tmp_path / "missing"), "--out-dir", str(tmp_path / "x")]) == 1
    assert not (tmp_path / "x").exists()
