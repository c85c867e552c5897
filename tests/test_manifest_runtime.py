"""Manifests and the torch-free runtime: loading, shape/dtype checks, corrupt files, missing packages."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge import runtime
from edge.errors import EdgeError, InputError
from edge.manifest import read_manifest, sha256_of


def test_runtime_imports_without_torch():
    code = ("import sys; import edge.runtime, edge.data, edge.manifest, edge.formats, edge.families, edge.parity;"
            "import edge.bench.worker, edge.bench.report, edge.bench.runner;"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'sklearn')];"
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("fmt,path", [("onnx", "fer.onnx"), ("onnx-int8", "fer.int8.onnx"), ("tflite", "fer.tflite"),
                                      ("tflite-int8", "fer.int8.tflite"), ("ncnn", "fer.ncnn")])
def test_every_backend_loads_and_agrees_with_onnx(fer_artifacts, fmt, path):
    ref = runtime.load(fer_artifacts / "fer" / "fer.onnx")
    model = runtime.load(fer_artifacts / "fer" / path, threads=2)
    assert model.manifest.format == fmt
    x = np.random.default_rng(0).standard_normal((3, 1, 32, 32)).astype(np.float32)
    y = model.predict(x)
    assert y.shape == (3, 7)
    if not fmt.endswith("int8"):
        np.testing.assert_allclose(y, ref.predict(x), rtol=1e-3, atol=1e-3 * np.abs(ref.predict(x)).max())


def test_manifest_has_what_the_runtime_needs(fer_artifacts):
    artifact, man = read_manifest(fer_artifacts / "fer" / "fer.int8.onnx", check_hash=True)
    assert man.input.shape == [None, 1, 32, 32]
    assert man.input.color == "gray" and man.input.mean and man.input.std and man.input.resize == [32, 32]
    assert man.classes[3] == "happy" and man.task == "classify"
    assert man.sha256 == sha256_of(artifact)
    assert man.calibration and man.calibration["images"] == 24
    assert man.parity["within_tolerance"] and man.parity["n"] == 8
    assert man.trained is False and "random init" in man.source["note"]
    assert "onnxruntime" in man.exporter and "quantizer" in man.exporter


def _int8_weight_peak(path) -> int:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    weights = [numpy_helper.to_array(t) for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    return max(int(np.abs(w.astype(np.int32)).max()) for w in weights if w.size > 1)


def test_int8_weights_use_8_bits_unless_reduce_range_and_the_runtime_warns_where_they_can_saturate(
        fer_artifacts, tmp_path, caplog, monkeypatch):
    from edge.export.image_formats import quantize_onnx

    full = fer_artifacts / "fer" / "fer.int8.onnx"
    _, man = read_manifest(full)
    assert man.exporter["reduce_range"] == "false" and "S8 8-bit" in man.exporter["quantizer"]
    assert man.exporter["int8_target"] == "arm" and man.exporter["int8_weights"] == "s8"
    assert _int8_weight_peak(full) > 64  # symmetric per-channel: each channel's largest weight maps to 127
    calib = np.random.default_rng(0).standard_normal((8, 1, 32, 32)).astype(np.float32)
    notes = quantize_onnx(fer_artifacts / "fer" / "fer.onnx", tmp_path / "r.int8.onnx", calib, "x86-fast")
    assert notes["reduce_range"] == "true" and "7-bit" in notes["quantizer"]
    assert _int8_weight_peak(tmp_path / "r.int8.onnx") <= 64

    old_cpu = {"sse4_2", "avx2", "fma"}
    risk = runtime.int8_saturation_risk(man, "x86_64", old_cpu)
    assert risk and "--int8-target x86" in risk
    assert runtime.int8_saturation_risk(man, "x86_64", old_cpu | {"avx512_vnni"}) is None
    assert runtime.int8_saturation_risk(man, "aarch64", old_cpu) is None  # the Pi
    # an export that fails its gate on such a CPU says the drop may be the CPU's (AMD EPYC without VNNI, session p:
    # the zoo's fer file 0.6874 there vs 0.6946 on a VNNI CPU)
    from edge.export.pipeline import gate_reason

    monkeypatch.setenv("EDGE_INT8_EXACT", "0")  # the runtime runs the file as stored
    why = gate_reason(["accuracy_drop 0.0209 (limit 0.01)"], man, "x86_64", old_cpu)
    assert why.startswith("parity out of tolerance: accuracy_drop 0.0209") and "--int8-target x86" in why
    assert "VNNI" not in gate_reason(["accuracy_drop 0.0209 (limit 0.01)"], man, "aarch64", old_cpu)
    assert runtime.int8_note(man, "x86_64", old_cpu) == risk
    monkeypatch.setenv("EDGE_INT8_EXACT", "1")  # the default: such weights run as U8 in memory, nothing saturates
    assert "VNNI" not in gate_reason(["accuracy_drop 0.0209 (limit 0.01)"], man, "x86_64", old_cpu)
    assert "run here as the same integers stored U8" in runtime.int8_note(man, "x86_64", old_cpu)
    assert runtime.int8_note(man, "aarch64", old_cpu) is None
    with monkeypatch.context() as m:  # a runtime without the onnx package (it is an x86-only dependency) warns
        m.setitem(sys.modules, "onnx", None)
        assert runtime.int8_note(man, "x86_64", old_cpu) == risk + ("; with the onnx package (pip install onnx) the "
                                                                     "runtime does this in memory")
        assert "--int8-target x86" in gate_reason(["accuracy_drop 0.0209 (limit 0.01)"], man, "x86_64", old_cpu)
    man.exporter["int8_weights"] = "u8"
    assert runtime.int8_saturation_risk(man, "x86_64", old_cpu) is None
    man.exporter["int8_weights"] = "s8"
    man.exporter["reduce_range"] = "true"
    assert runtime.int8_saturation_risk(man, "x86_64", old_cpu) is None
    del man.exporter["reduce_range"]  # manifests from before the option: 7-bit weights
    assert runtime.int8_saturation_risk(man, "x86_64", old_cpu) is None
    _, onnx_man = read_manifest(fer_artifacts / "fer" / "fer.onnx")
    assert runtime.int8_saturation_risk(onnx_man, "x86_64", old_cpu) is None
    flags = runtime.cpu_flags()
    if flags is not None and not any(f in flags for f in runtime.VNNI_FLAGS) and runtime.platform.machine() == "x86_64":
        with caplog.at_level("INFO", logger="edge.runtime"):
            assert runtime.load(full).int8_as_u8
        assert "stored U8" in caplog.text
        caplog.clear()
        monkeypatch.setenv("EDGE_INT8_EXACT", "0")
        with caplog.at_level("WARNING", logger="edge.runtime"):
            assert not runtime.load(full).int8_as_u8
        assert "--int8-target x86" in caplog.text
    else:  # ARM / VNNI: every file runs as stored
        assert not runtime.load(full).int8_as_u8


def _saturating_conv(path) -> None:
    """A 1x1 conv over 64 channels, every weight 0.5: at input 1.0 its U8 x S8 products are 255 x 127 and any two of
    them overflow int16 (AVX2's VPMADDUBSW saturates them to 32767, about half the sum)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["output"])], "saturating",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 64, 2, 2])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [None, 8, 2, 2])],
        [numpy_helper.from_array(np.full((8, 64, 1, 1), 0.5, np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_int8_targets_store_weights_so_that_no_cpu_saturates(tmp_path):
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    from edge.export.image_formats import quantize_onnx
    from edge.export.int8_targets import get_target, store_weights, target_here

    _saturating_conv(tmp_path / "f.onnx")
    calib = np.random.default_rng(0).uniform(0, 1, (8, 64, 2, 2)).astype(np.float32)
    calib[0] = 1.0  # the activation range is [0, 1]: 1.0 is exactly 255, 0.5 exactly 127 x its scale

    def run(target: str) -> np.ndarray:
        notes = quantize_onnx(tmp_path / "f.onnx", tmp_path / f"{target}.onnx", calib, target)
        assert notes["int8_target"] == target and notes["int8_weights"] == get_target(target).weights
        sess = ort.InferenceSession(str(tmp_path / f"{target}.onnx"), providers=["CPUExecutionProvider"])
        return sess.run(None, {"input": np.ones((1, 64, 2, 2), np.float32)})[0]

    exact = np.full((1, 8, 2, 2), 32.0, np.float32)  # 64 x 1.0 x 0.5
    np.testing.assert_allclose(run("x86"), exact, rtol=0.01)  # U8 x U8: exact on every CPU
    np.testing.assert_allclose(run("x86-fast"), exact, rtol=0.01)  # 7-bit: no pair reaches int16's limit
    signed = run("arm")
    if target_here() == "x86":  # this CPU is x86 without VNNI: the S8 file saturates here
        assert signed.max() < 0.75 * 32
    else:  # ARM or VNNI: the S8 file is exact
        np.testing.assert_allclose(signed, exact, rtol=0.01)

    # the same integers: u8 is s8 + 128 with zero point 128, and back again byte for byte
    def weights(path) -> list[np.ndarray]:
        return [numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer
                if t.name in ("w_quantized", "w_zero_point")]

    u8 = weights(tmp_path / "x86.onnx")
    assert all(w.dtype == np.uint8 for w in u8)
    assert [np.array_equal(a.astype(np.int16) - 128, b) for a, b in zip(u8, weights(tmp_path / "arm.onnx"))] \
        == [True] * len(u8)
    shutil.copy(tmp_path / "x86.onnx", tmp_path / "back.onnx")
    assert store_weights(tmp_path / "back.onnx", "s8") == 1
    back, arm = onnx.load(str(tmp_path / "back.onnx")), onnx.load(str(tmp_path / "arm.onnx"))
    assert back.graph.node == arm.graph.node
    assert [(t.name, t.data_type, numpy_helper.to_array(t).tolist()) for t in back.graph.initializer] \
        == [(t.name, t.data_type, numpy_helper.to_array(t).tolist()) for t in arm.graph.initializer]
    assert target_here("aarch64", set()) == "arm"
    assert target_here("x86_64", {"avx2"}) == "x86" and target_here("x86_64", {"avx2", "avx_vnni"}) == "x86-vnni"


def test_an_int8_onnx_file_is_restored_for_another_cpu_without_its_checkpoint(fer_artifacts, tmp_path, capsys,
                                                                            monkeypatch):
    from edge.cli import main

    src = fer_artifacts / "fer" / "fer.int8.onnx"
    assert main(["export", str(src), "--int8-target", "x86", "--out", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["weights"] == "u8" and out["tensors_changed"] > 10 and out["metric"] is None  # untrained: no score
    artifact, man = read_manifest(tmp_path / "fer" / "fer.int8.onnx", check_hash=True)
    assert man.exporter["int8_weights"] == "u8" and "U8 8-bit" in man.exporter["quantizer"]
    assert man.exporter["rewritten_from"].startswith("fer.int8.onnx sha256 ")
    import onnxruntime as ort

    def run(path, optimised: bool = True) -> np.ndarray:
        opts = ort.SessionOptions()
        if not optimised:  # DequantizeLinear in float, then float Conv: the real numbers the integers stand for
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return sess.run(None, {sess.get_inputs()[0].name: x})[0]

    x = np.random.default_rng(0).uniform(-1, 1, (4, 1, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(run(artifact, optimised=False), run(src, optimised=False))  # the same numbers
    fake = run(src, optimised=False)
    restored, original = run(artifact), run(src)
    if runtime.int8_saturation_risk(read_manifest(src)[1]) is None:  # ARM / VNNI: the same integer sums
        np.testing.assert_array_equal(restored, original)
    else:  # x86 without VNNI: U8 x U8 sums are exact, U8 x S8 ones saturate
        assert np.abs(restored - fake).max() < np.abs(original - fake).max()
    # the runtime runs the S8 file as the U8 one wherever S8 would saturate (EDGE_INT8_EXACT=0: as stored)
    np.testing.assert_array_equal(runtime.load(src).predict(x), restored)
    monkeypatch.setenv("EDGE_INT8_EXACT", "0")
    np.testing.assert_array_equal(runtime.load(src).predict(x), original)
    monkeypatch.delenv("EDGE_INT8_EXACT")
    for argv, says in ((["export", str(src), "--out", str(tmp_path)], "with --int8-target"),
                       (["export", str(src), "--int8-target", "x86", "--out", str(fer_artifacts)], "source file"),
                       (["export", str(tmp_path / "r.int8.onnx"), "--int8-target", "x86"], "not found"),
                       (["export", str(fer_artifacts / "fer" / "fer.onnx"), "--int8-target", "x86", "--out",
                         str(tmp_path)], "ONNX int8 files only"),
                       (["export", str(src), "--int8-target", "x86-fast", "--out", str(tmp_path / "b")],
                        "only a new export from the checkpoint")):
        assert main(argv) == 2 and says in capsys.readouterr().err, argv
    # 7-bit weights (the zoo's asl file) cannot saturate anywhere: copied as they are, whatever the target
    seven = Path(__file__).resolve().parents[1] / "models" / "zoo" / "asl" / "asl.int8.onnx"
    assert main(["export", str(seven), "--int8-target", "x86", "--out", str(tmp_path / "7"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tensors_changed"] == 0 and out["weights"] == "s8" and "copied unchanged" in out["note"]
    assert (tmp_path / "7" / "asl" / "asl.int8.onnx").read_bytes() == seven.read_bytes()
    assert out["here"] == out["source_here"]


def test_wrong_shape_says_what_is_expected(fer_artifacts):
    model = runtime.load(fer_artifacts / "fer" / "fer.onnx")
    with pytest.raises(InputError, match=r"expects input shape \(N, 1, 32, 32\) float32, got \(2, 3, 32, 32\)"):
        model.predict(np.zeros((2, 3, 32, 32), np.float32))
    with pytest.raises(InputError, match="NaN"):
        model.predict(np.full((1, 1, 32, 32), np.nan, np.float32))
    with pytest.raises(InputError, match="numpy array"):
        model.predict([[1, 2, 3]])
    # one unbatched image and float64 are accepted and converted
    assert model.predict(np.zeros((1, 32, 32))).shape == (1, 7)
    x = np.random.default_rng(0).standard_normal((70, 1, 32, 32)).astype(np.float32)
    assert np.allclose(model.predict_all(x, batch=32), model.predict(x), atol=1e-5)  # 32 + 32 + 6, in order
    with pytest.raises(InputError, match="no inputs"):
        model.predict_all(x[:0])
    with pytest.raises(InputError, match="expects input shape"):  # each batch is checked as predict checks it
        model.predict_all(np.zeros((40, 3, 32, 32), np.float32))


def test_corrupt_artifacts_give_clear_errors(fer_artifacts, tmp_path):
    for name in ("fer.onnx", "fer.tflite", "fer.int8.onnx"):  # int8: re-stored as U8 first on x86 without VNNI
        dst = tmp_path / name
        shutil.copy(fer_artifacts / "fer" / (name + ".json"), tmp_path / (name + ".json"))
        dst.write_bytes(b"this is not a model" * 10)
        with pytest.raises(EdgeError, match="cannot load"):
            runtime.load(dst)
        with pytest.raises(EdgeError, match="does not match the sha256"):
            runtime.load(dst, check_hash=True)
    nc = tmp_path / "fer.ncnn"
    shutil.copytree(fer_artifacts / "fer" / "fer.ncnn", nc)
    shutil.copy(fer_artifacts / "fer" / "fer.ncnn.json", tmp_path / "fer.ncnn.json")
    (nc / "model.ncnn.param").write_text("garbage\n")
    with pytest.raises(EdgeError, match="NCNN"):
        runtime.load(nc)


def test_missing_manifest_and_bad_manifest(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(EdgeError, match="no manifest"):
        runtime.load(tmp_path / "m.onnx")
    (tmp_path / "m.onnx.json").write_text("{not json")
    with pytest.raises(EdgeError, match="not valid"):
        runtime.load(tmp_path / "m.onnx")
    with pytest.raises(EdgeError, match="artifact not found"):
        runtime.load(tmp_path / "nothing.onnx")


def test_missing_litert_names_the_extra(fer_artifacts):
    tfl = fer_artifacts / "fer" / "fer.tflite"
    proc = subprocess.run([sys.executable, "-c",
                           "import sys\n"
                           "for m in ('ai_edge_litert', 'tflite_runtime', 'tensorflow'): sys.modules[m] = None\n"
                           "from edge import runtime\n"
                           "from edge.errors import EdgeError\n"
                           f"try:\n    runtime.load(r'{tfl}')\nexcept EdgeError as e:\n    print(e); sys.exit(3)\n"],
                          capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    assert "pip install 'edge[runtime]'" in proc.stdout and "ai-edge-litert" in proc.stdout


def test_manifest_file_points_to_artifact(fer_artifacts):
    data = json.loads((fer_artifacts / "fer" / "fer.ncnn.json").read_text())
    assert data["file"] == "fer.ncnn" and data["io_names"] == {"input": "in0", "output": "out0"}
    assert data["size_bytes"] > 100_000


@pytest.mark.parametrize("name", ["fer.tflite", "fer.int8.tflite", "fer.int8.onnx"])
def test_one_model_serves_many_threads_at_once(fer_artifacts, name):
    """edge serve calls one loaded model from its request threads: every answer must be the serial one."""
    from concurrent.futures import ThreadPoolExecutor

    model = runtime.load(fer_artifacts / "fer" / name)
    rng = np.random.default_rng(0)
    xs = [rng.random((1, 1, 32, 32), dtype=np.float32) * 2 - 1 for _ in range(64)]
    serial = [model.predict(x) for x in xs]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(model.predict, xs * 4))
    for i, y in enumerate(parallel):
        assert np.array_equal(y, serial[i % len(xs)]), i
