"""The roofline benchmark: its ceilings measure what they claim, its fractions divide the right rates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastrec import _runtime
from fastrec.bench import kmeans, report, roofline, suite
from fastrec.datasets import make_ratings

needs_core = pytest.mark.skipif(_runtime._cpp is None, reason="measures the compiled core")
LANES = {"baseline": 4, "avx2": 8, "avx512": 16}


@needs_core
@pytest.mark.parametrize("threads", [1, 2])
def test_fma_peak_counts_its_flops_and_covers_the_fma_latency(threads):
    for level in _runtime.available_simd_levels():
        out = roofline.fma_peak(level, threads, seconds=0.005)
        lanes, acc = out["lanes"], out["accumulators"]
        assert lanes == LANES[level]
        assert acc >= 8  # 4 cycles of latency x 2 FMA pipes at the least
        assert out["flops"] == 2.0 * lanes * acc * out["iterations"] * threads
        assert out["seconds"] > 0 and out["flops"] / out["seconds"] > 0
        # every accumulator climbs from its seed (0.5 + ...) toward a / (1 - m) ~ 0.84
        mean = out["checksum"] / (lanes * acc * threads)
        assert math.isfinite(mean) and 0.5 <= mean <= 0.85


@needs_core
def test_fma_peak_rounds_report_one_work_figure(monkeypatch):
    # rounds calibrate different trip counts; a record keeps one work figure, so each
    # round's time is scaled to that figure and the rate is seconds-independent
    calls = iter([{"seconds": 0.5, "flops": 2e11}, {"seconds": 0.01, "flops": 1e9}])
    monkeypatch.setattr(roofline, "fma_peak", lambda *a, **k: dict(next(calls), lanes=16, accumulators=16))
    first, second = (roofline.measure("fma:avx512", {"peak_seconds": 0.5}, 2) for _ in range(2))
    assert first["work"] == second["work"] == {roofline.GFLOPS: roofline.FMA_WORK / 1e9}
    assert first["seconds"] == pytest.approx(roofline.FMA_WORK / 4e11)
    assert second["seconds"] == pytest.approx(roofline.FMA_WORK / 1e11)


@needs_core
def test_stream_kernels_compute_copy_and_triad_and_count_stream_bytes():
    rng = np.random.default_rng(0)
    n = 10_001
    b = rng.random(n, dtype=np.float32)
    c = rng.random(n, dtype=np.float32)
    b0, c0 = b.copy(), c.copy()
    for level in _runtime.available_simd_levels():
        a = np.zeros(n, dtype=np.float32)
        assert _runtime._cpp.roofline_stream(level, a, b, c, 3.0, True, 2) == 12.0 * n
        exact = (b.astype(np.float64) + 3.0 * c.astype(np.float64)).astype(np.float32)
        np.testing.assert_allclose(a, exact, rtol=2e-7)  # one or two roundings
        a = np.zeros(n, dtype=np.float32)
        assert _runtime._cpp.roofline_stream(level, a, b, c, 3.0, False, 1) == 8.0 * n
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(b, b0)
    np.testing.assert_array_equal(c, c0)
    out = roofline.stream("triad", 4096, 1, passes=2)
    assert out["seconds"] > 0 and out["bytes"] == 12.0 * 4096


@needs_core
def test_ceilings_refuse_bad_arguments():
    cpp = _runtime._cpp
    a = np.zeros(8, dtype=np.float32)
    with pytest.raises(ValueError, match="unknown SIMD level"):
        cpp.roofline_fma_peak("avx9", 10, 1)
    with pytest.raises(ValueError, match="iterations"):
        cpp.roofline_fma_peak("baseline", 0, 1)
    with pytest.raises(ValueError, match="n_threads"):
        cpp.roofline_fma_peak("baseline", 10, 0)
    with pytest.raises(ValueError, match="b: expected a 1-D array of length 8"):
        cpp.roofline_stream("baseline", a, a[:3], a, 1.0, True, 1)
    with pytest.raises(ValueError, match="c: expected"):
        cpp.roofline_stream("baseline", a, a, a[:3], 1.0, True, 1)
    frozen = np.zeros(8, dtype=np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        cpp.roofline_stream("baseline", frozen, a, a, 1.0, False, 1)
    with pytest.raises(ValueError, match="copy"):
        roofline.stream("scale", 8, 1)


def _record(name, work, times, threads=2, size="S", simd=None, peer=True):
    return {
        "kernel": "roofline",
        "size": size,
        "shape": "",
        "contender": name,
        "peer": peer,
        "threads": threads,
        "times": list(times),
        "cpu_times": [None] * len(times),
        "quality": {},
        "work": dict(work),
        "errors": [],
        "simd": simd,
    }


def _synthetic_run():
    return [
        _record("FMA peak avx512", {"GFLOP/s": 100.0}, [2.0, 1.0, 1.0]),  # 100 GFLOP/s
        _record("FMA peak avx2", {"GFLOP/s": 50.0}, [1.0]),  # 50 GFLOP/s
        _record("SGEMM (numpy)", {"GFLOP/s": 60.0}, [1.0]),
        _record("SGEMM (numpy) [SkylakeX]", {"GFLOP/s": 80.0}, [1.0]),  # the fastest
        _record("stream triad", {"GB/s": 20.0}, [1.0]),  # ridge: 100 / 20 = 5 flop/B
        _record("stream copy", {"GB/s": 30.0}, [1.0]),
        # compute-bound: 40 GFLOP in 0.8 s = 50 GFLOP/s at 50 flop/B
        _record("dense kernel", {"GFLOP/s": 40.0, "GB/s": 0.8}, [0.8, 0.9, 0.7], simd="avx512", peer=False),
        # memory-bound: 2 GFLOP, 4 GB in 0.5 s = 4 GFLOP/s, 8 GB/s at 0.5 flop/B
        _record("sparse kernel", {"GFLOP/s": 2.0, "GB/s": 4.0}, [0.5], simd="avx512", peer=False),
        # other thread count: compared with nothing of the 2-thread run
        _record("dense kernel", {"GFLOP/s": 40.0, "GB/s": 0.8}, [1.0], threads=1, simd="avx512", peer=False),
    ]


def test_fractions_divide_each_kernel_by_its_own_bound():
    rows = {(f["kernel"], f["threads"]): f for f in roofline.fractions(_synthetic_run())}
    assert set(rows) == {("dense kernel", 2), ("sparse kernel", 2), ("dense kernel", 1)}
    dense = rows[("dense kernel", 2)]
    assert dense["bound"] == "compute"
    assert dense["gflops"] == pytest.approx(50.0) and dense["intensity"] == pytest.approx(50.0)
    assert dense["of_sgemm"] == pytest.approx(50.0 / 80.0)
    assert dense["of_fma"] == pytest.approx(0.5)
    assert dense["of_stream"] is None and dense["roof"] == pytest.approx(100.0)
    sparse = rows[("sparse kernel", 2)]
    assert sparse["bound"] == "memory"
    assert sparse["gbs"] == pytest.approx(8.0) and sparse["intensity"] == pytest.approx(0.5)
    assert sparse["of_stream"] == pytest.approx(0.4)
    assert sparse["of_sgemm"] is None and sparse["of_fma"] is None
    assert sparse["roof"] == pytest.approx(0.5 * 20.0)
    alone = rows[("dense kernel", 1)]
    assert alone["of_sgemm"] is None and alone["of_fma"] is None and alone["fma"] is None


def test_fractions_under_simd_use_the_ceilings_of_the_kernels_level():
    records = [
        _record("FMA peak avx512", {"GFLOP/s": 100.0}, [1.0]),
        _record("FMA peak avx2", {"GFLOP/s": 50.0}, [1.0]),
        _record("sgemm [avx2: Haswell]", {"GFLOP/s": 40.0}, [1.0], simd="avx2"),
        _record("sgemm [avx512: SkylakeX]", {"GFLOP/s": 90.0}, [1.0], simd="avx512"),
        _record("stream triad", {"GB/s": 10.0}, [1.0]),
        _record("k [avx2]", {"GFLOP/s": 20.0, "GB/s": 0.1}, [1.0], simd="avx2", peer=False),
        _record("k [avx512]", {"GFLOP/s": 30.0, "GB/s": 0.1}, [1.0], simd="avx512", peer=False),
    ]
    rows = {f["kernel"]: f for f in roofline.fractions(records)}
    assert rows["k [avx2]"]["of_sgemm"] == pytest.approx(0.5)
    assert rows["k [avx2]"]["of_fma"] == pytest.approx(0.4)
    assert rows["k [avx512]"]["of_sgemm"] == pytest.approx(30.0 / 90.0)
    assert rows["k [avx512]"]["of_fma"] == pytest.approx(0.3)


def test_work_models():
    assert roofline.kmeans_work(1000, 32, 64) == (2.0 * 1000 * 64 * 32, 4.0 * 1000 * 32)
    assert roofline.mf_work(10, 100) == (8000.0, 10 * (1600.0 + 12.0))
    R = make_ratings(40, 30, 300, seed=1).tocsr()
    B = (R.toarray() != 0).astype(np.int64)
    pairs = B.T @ B  # users shared by items i and j
    multiply_adds = (pairs.sum() + np.trace(pairs)) / 2  # each pair once, i <= j
    assert roofline.cosine_work(R) == (2.0 * multiply_adds, 8.0 * multiply_adds)
    flops, nbytes = roofline.topn_work(5, 7, 4, 9, 2)
    assert flops == 2.0 * 5 * 7 * 4 and nbytes == 4.0 * 4 * 12 + 4.0 * 9 + 12.0 * 5 * 2


@needs_core
def test_a_tiny_run_prepares_measures_and_reports(tmp_path):
    opts = suite.module_options(roofline, None)
    opts.update(
        peers=True,
        backends=["cpp"],
        gemm_size=64,
        stream_mib=1.0,
        peak_seconds=0.005,
        kmeans_iterations=2,
        mf_epochs=1,
        coretypes=[],
    )
    found = [c for c in roofline.contenders(opts) if c.runs_on("XS")]
    names = [c.name for c in found]
    assert [f"FMA peak {level}" for level in _runtime.available_simd_levels()] == names[
        : len(_runtime.available_simd_levels())
    ]
    assert "stream triad" in names and "SGEMM (numpy)" in names
    kernels = [c for c in found if not c.peer]
    assert [c.dispatch for c in kernels] == ["kmeans:XS cpp", "topn:XS cpp", "cosine:XS cpp", "mf:XS cpp"]
    data = roofline.prepare("XS", tmp_path, opts)
    records = []
    for contender in found:
        out = roofline.measure(contender.dispatch, data, 1)
        assert out["seconds"] > 0 and all(v > 0 for v in out["work"].values())
        record = _record(
            contender.name,
            out["work"],
            [out["seconds"]],
            threads=1,
            size="XS",
            simd=_runtime.simd_level() if not contender.peer else None,
            peer=contender.peer,
        )
        record["quality"] = out["quality"]
        records.append(record)
    n, d, k = kmeans.SHAPES["XS"]
    kmeans_out = next(r for r in records if r["contender"].startswith("KMeans"))
    assert kmeans_out["work"]["GFLOP/s"] == pytest.approx(2.0 * n * k * d / 1e9)
    rows = roofline.fractions(records)
    assert len(rows) == 4 and all(r["gflops"] > 0 and r["bound"] in ("compute", "memory") for r in rows)
    assert all((r["of_stream"] is None) == (r["bound"] == "compute") for r in rows)
    section = report.Section(
        "roofline", roofline.TITLE, roofline.UNIT, "", ["XS"], {"XS": roofline.SIZES["XS"]}, records
    )
    machine = report.machine_info([1])
    settings = {"benchmarks": ["roofline"], "threads": [1], "repeats": 1, "peers": True, "backends": ["cpp"]}
    written = report.write(tmp_path / "out", [section], machine, settings)
    text = (tmp_path / "out" / "report.md").read_text()
    assert "of SGEMM" in text and "stream triad" in text and "KMeans 2,000 x 16" in text
    assert any(p.name == "roofline.png" and p.stat().st_size > 0 for p in written)


def test_roofline_is_registered_and_sized():
    from fastrec.bench import BENCHMARKS

    assert BENCHMARKS["roofline"] == "fastrec.bench.roofline"
    assert set(roofline.SIZES) == set(roofline.CASES) and set(roofline.DEFAULT_SIZES) <= set(roofline.SIZES)
    assert "roofline" in suite.registered()  # `fastrec bench all` runs it, last
