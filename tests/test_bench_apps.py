"""`edge bench apps` / `edge bench trail` run end to end on small settings and report what they measured (no
speed is asserted: the figures only have to be present and consistent)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import HAS_DATA, run_edge

pytestmark = pytest.mark.skipif(not HAS_DATA, reason="shared data sets not found (EDGE_DATA)")


def test_apps_pieces_report_consistent_figures() -> None:
    from edge.bench.apps import bench_attend, bench_live, bench_serve_api

    live = bench_live(["tomato"], None, threads=1, n=6)
    assert len(live) == 1 and live[0]["frames"] == 6 and live[0]["fps"] > 0
    assert live[0]["classified"] == 6 and 0 <= live[0]["accuracy_on_classified"] <= 1
    assert all(live[0][f"{k}_ms"] >= 0 for k in ("capture", "prestep", "inference", "overlay"))
    serve = bench_serve_api(["tomato"], clients=2, seconds=1.0)
    assert serve[0]["errors"] == 0 and serve[0]["requests"] > 0 and serve[0]["p99_ms"] >= serve[0]["p50_ms"]
    att = bench_attend(threads_list=(1,), with_dlib=False)
    assert [f["frames"] for f in att["fps"]] == [70, 70] and all(f["fps"] > 0 for f in att["fps"])
    assert list(att["identification"]) == ["edge (blazeface-auto)", "edge (blazeface-auto), hard side light",
                                           "edge (blazeface-auto), low light", "edge (haar)"]
    ids = att["identification"]
    plain = ids["edge (blazeface-auto)"]
    for lit in (ids["edge (blazeface-auto), hard side light"], ids["edge (blazeface-auto), low light"]):
        assert (plain["eer"], plain["dir_at_far"]) != (lit["eer"], lit["dir_at_far"])  # the light reached the queries
    for ident in att["identification"].values():  # 5 rounds, each person a stranger once: 10 x 7 queries a round
        assert ident["rounds"] == 5 and ident["queries_known"] + ident["queries_strangers"] + ident["no_face"] >= 350
        assert ident["queries_known"] == 5 * 56 and len(ident["per_round"]) == 5
        assert 0 <= ident["identification_accuracy"] <= 1 and 0 <= ident["eer"] <= 1
        # the station's ratio test only ever turns accepted faces away
        alone = ident["threshold_only"]
        assert ident["ratio"] == 0.8 and ident["identification_accuracy"] <= alone["identification_accuracy"]
        assert ident["strangers_accepted"] <= alone["strangers_accepted"]
        assert ident["misidentified"] <= alone["misidentified"]
    # and it does turn strangers away (zoo face model, evenly lit: 13 vs 32 of 70 when measured); ranked by the
    # ratio, the zoo model names more people at each strangers' rate than ranked by distance (0.73 vs 0.51 at none)
    assert plain["strangers_accepted"] < plain["threshold_only"]["strangers_accepted"]
    assert set(plain["dir_at_far_ratio"]) == set(plain["dir_at_far"])
    assert plain["dir_at_far_ratio"]["far_0.1"] > plain["dir_at_far"]["far_0.1"]
    json.dumps(att)  # plain types only
    for spec in ("blazeface", "blazeface-short"):  # the box mapping in use (training people) holds on held-out ones
        fit = att["detectors"][spec]
        assert fit["both_found"] >= 90 and np.allclose(fit["dx_dy_size_median"], fit["in_use"], atol=0.05)


def test_low_light_dims_and_adds_seeded_noise() -> None:
    from edge.conditions import low_light

    frame = np.full((40, 60), 200, np.uint8)
    dim = low_light(frame, 3)
    assert abs(float(dim.mean()) - 50.5) < 1.0 and 2.0 < float(dim.std()) < 6.0  # a quarter of the light, noisy
    assert np.array_equal(dim, low_light(frame, 3)) and not np.array_equal(dim, low_light(frame, 4))
    assert low_light(np.zeros((4, 4, 3), np.uint8), 0).shape == (4, 4, 3)


def test_dir_at_far_on_known_scores() -> None:
    from edge.bench.apps import dir_at_far

    known = [(0.1, True), (0.2, True), (0.3, False), (0.5, True)]  # (nearest distance, nearest is right)
    strangers = [0.25, 0.4, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3]
    # FAR 0: below 0.25 -> 2 of 5 known (one had no face); FAR 0.1: 1 stranger may pass -> below 0.4 -> still 2;
    # FAR 0.2: below 0.6 -> 3 (the wrong nearest never counts)
    assert dir_at_far(known, strangers, 5, (0.0, 0.1, 0.2)) == {"far_0": 0.4, "far_0.1": 0.4, "far_0.2": 0.6}


def test_bench_trail_writes_json_and_markdown(tmp_path) -> None:
    r = run_edge("bench", "trail", "-n", "300", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "trail-x86-2core.json").read_text())
    assert [(i["publishers"], i["stored"], i["lost"]) for i in res["ingest"]] == [(1, 300, 0), (2, 300, 0)]
    assert res["tree"]["c_ns"] > 0 and res["tree"]["cpython_ns"] > 0 and res["tree"]["micropython_unix_ns"] > 0
    assert res["firmware"]["mpy_total_bytes"] < res["firmware"]["py_total_bytes"]
    assert res["firmware"]["heap_after_import_bytes"] > 0
    assert "| 2 | 300 | 300 | 0 |" in (tmp_path / "trail-x86-2core.md").read_text()
