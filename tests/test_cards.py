"""Model cards and the zoo they fill."""

from __future__ import annotations


def test_card_reports_the_shifted_test_sets_next_to_the_plain_one():
    from edge.models.cards import _shifted_section

    assert _shifted_section({"accuracy": 0.9}) == []
    text = "\n".join(_shifted_section({"accuracy": 0.96, "unseen_backgrounds": {
        "accuracy": 0.36, "sources": ["orl", "scenes"], "images": 306}, "camera_shifts": {"one stop darker": 0.93},
        "hand_positions": {"turned 30 degrees": 0.81}}))
    assert "| test split as it is | 0.9600 |" in text and "| test hands turned 30 degrees | 0.8100 |" in text
    assert "never saw (orl, scenes) | 0.3600 |" in text and "| test photos, one stop darker | 0.9300 |" in text


def test_publishing_a_new_model_clears_the_old_ones_artifacts_from_the_zoo(tmp_path):
    from edge.models.cards import fill_zoo

    zoo = tmp_path / "zoo" / "asl"
    zoo.mkdir(parents=True)
    for name in ("asl.int8.onnx", "asl.int8.onnx.json"):  # the earlier model: the runtime would prefer it
        (zoo / name).write_text("old")
    new = tmp_path / "artifacts"
    new.mkdir()
    rows = []
    for fmt, name, ok in (("onnx-int8", "asl.int8.onnx", False), ("tflite-int8", "asl.int8.tflite", True)):
        (new / name).write_bytes(b"new")
        (new / (name + ".json")).write_text("{}")
        rows.append({"format": fmt, "artifact": new / name, "parity": {"within_tolerance": ok}})
    assert fill_zoo(rows, ["onnx-int8"], zoo) == []  # nothing qualifies: the zoo stays as it was
    assert (zoo / "asl.int8.onnx").read_text() == "old"
    assert fill_zoo(rows, ["onnx-int8", "tflite-int8"], zoo) == [zoo / "asl.int8.tflite"]
    assert sorted(p.name for p in zoo.iterdir()) == ["asl.int8.tflite", "asl.int8.tflite.json"]


def test_publish_refuses_artifacts_of_another_checkpoint_or_an_older_manifest():
    from pathlib import Path

    from edge.models.cards import stale_exports

    pre = {"kind": "center_crop", "fraction": 0.8}
    row = {"artifact": Path("tomato.int8.onnx"), "source": {"metrics": {"test_accuracy": 0.9437}}, "prestep": pre}
    assert stale_exports([row], {"test": {"accuracy": 0.9437}}, pre) == []
    why = stale_exports([row], {"test": {"accuracy": 0.9249}}, pre)
    assert len(why) == 1 and "test accuracy 0.9437, the run has 0.9249" in why[0]
    why = stale_exports([{**row, "prestep": {}}], {"test": {"accuracy": 0.9437}}, pre)
    assert len(why) == 1 and "has prestep {}" in why[0]
