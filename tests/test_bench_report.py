"""The benchmark report writer and registry, on hand-made measurement records."""

from __future__ import annotations

import json

from fastrec.bench import BENCHMARKS, report, suite


def record(contender, times, size="S", threads=2, peer=True, errors=(), quality=None):
    return {
        "kernel": "cosine",
        "size": size,
        "shape": "3 x 4",
        "contender": contender,
        "peer": peer,
        "threads": threads,
        "times": list(times),
        "cpu_times": [t / 2 for t in times],
        "quality": quality or {},
        "errors": list(errors),
    }


RECORDS = [
    record("fastrec cpp", [1.0, 3.0, 2.0], peer=False, quality={"agree": 1.0}),
    record("other lib", [4.0, 6.0, 5.0], quality={"agree": 0.5}),
    record("broken lib", [], errors=["MemoryError"]),
    record("fastrec cpp", [10.0], size="M", peer=False),
    record("other lib", [15.0], size="M"),
]


def test_ratios_are_medians_over_the_reference_of_the_same_size_and_threads():
    ratios = report.ratios(RECORDS)
    assert ratios == {
        ("S", 2, "fastrec cpp"): 1.0,
        ("S", 2, "other lib"): 2.5,
        ("M", 2, "fastrec cpp"): 1.0,
        ("M", 2, "other lib"): 1.5,
    }
    # without fastrec cpp, the first fastrec backend is the reference
    numba_only = [
        dict(r, contender="fastrec numba") if r["contender"] == "fastrec cpp" else r for r in RECORDS
    ]
    assert report.reference_name(numba_only) == "fastrec numba"
    assert report.ratios(numba_only)[("S", 2, "other lib")] == 2.5


def test_tables_show_failures_and_quality_columns():
    section = report.Section(
        "cosine", "cosine top-k", "s", "", ["S", "M"], {"S": "small", "M": "medium"}, RECORDS
    )
    text = report.section_tables(section)
    lines = text.splitlines()
    assert lines[0] == "### S: small"
    assert "| contender | threads | median s | min | CPU (median) | time / fastrec cpp | agree |" in text
    other = next(line for line in lines if line.startswith("| other lib | 2 | 5 |"))
    assert "| 2.50x | 0.5 |" in other
    broken = next(line for line in lines if line.startswith("| broken lib"))
    assert "| failed |" in broken and "1 failed: MemoryError" in broken


def test_write_report_json_and_chart(tmp_path):
    section = report.Section(
        "cosine", "cosine top-k", "s", "About ``this``.", ["S", "M"], {"S": "small", "M": "medium"}, RECORDS
    )
    machine = report.machine_info([2])
    settings = {"benchmarks": ["cosine"], "threads": [2], "repeats": 3, "peers": True, "backends": ["cpp"]}
    written = report.write(tmp_path / "out" / "run.md", [section], machine, settings)
    assert [p.name for p in written] == ["run.md", "run-results.json", "run-cosine.png"]
    text = (tmp_path / "out" / "run.md").read_text()
    assert "About `this`." in text and "![cosine](run-cosine.png)" in text
    assert f"| CPU | {machine['cpu']} |" in text
    payload = json.loads((tmp_path / "out" / "run-results.json").read_text())
    assert payload["results"] == [dict(r, rates={}) for r in RECORDS]
    assert {
        "kernel": "cosine",
        "size": "S",
        "threads": 2,
        "contender": "other lib",
        "time_ratio": 2.5,
    } in payload["ratios"]
    assert (tmp_path / "out" / "run-cosine.png").read_bytes()[:4] == b"\x89PNG"


def test_rates_divide_the_work_of_one_run_by_the_median_time(tmp_path):
    fast = dict(
        record("fastrec cpp", [2.0, 8.0, 4.0], peer=False, quality={"RMSE": 0.8}), work={"M updates/s": 16.0}
    )
    slow = dict(record("other lib", [16.0, 20.0], quality={"RMSE": 0.9}), work={"M updates/s": 16.0})
    failed = dict(record("broken lib", [], errors=["MemoryError"]), work={"M updates/s": 16.0})
    assert report.rates(fast) == {"M updates/s": 4.0}  # 16 / median 4 s, not 16 / the last round
    assert report.rates(slow) == {"M updates/s": 0.8889}  # 4 significant digits
    assert report.rates(failed) == {} and report.rates(RECORDS[0]) == {}
    section = report.Section("mf", "mf", "s", "", ["S"], {"S": "small"}, [fast, slow, failed])
    text = report.section_tables(section)
    assert "| time / fastrec cpp | RMSE | M updates/s | all rounds |" in text
    assert "| fastrec cpp | 2 | 4 | 2 | 2 | 1.00x | 0.8 | 4 | 2, 8, 4 |" in text
    assert "| other lib | 2 | 18 | 16 | 9 | 4.50x | 0.9 | 0.8889 | 16, 20 |" in text
    settings = {"benchmarks": ["mf"], "threads": [2], "repeats": 3, "peers": True, "backends": ["cpp"]}
    report.write(tmp_path / "out", [section], report.machine_info([2]), settings)
    payload = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["rates"] for r in payload["results"]] == [{"M updates/s": 4.0}, {"M updates/s": 0.8889}, {}]


def test_all_runs_the_registered_names_in_order_and_skips_the_others():
    names = suite.registered(("zzz", "cosine", "topn", "mf", "kmeans"))
    rest = [n for n in BENCHMARKS if n not in ("cosine", "topn", "mf", "kmeans")]
    assert rest and names == ["cosine", "topn", "mf", "kmeans", *rest]
    assert suite.registered() == [
        "cosine",
        "mf",
        "kmeans",
        "knn",
        "metrics",
        "topn",
        "implicit",
        "roofline",
        "dask",
    ]
    assert sorted(BENCHMARKS) == sorted(suite.registered())
    assert sorted(suite.registered(("nothing",))) == sorted(BENCHMARKS)
    for name in BENCHMARKS:  # every registered module implements the interface
        module = suite.module(name)
        for attribute in (
            "NAME",
            "TITLE",
            "UNIT",
            "SIZES",
            "DEFAULT_SIZES",
            "contenders",
            "prepare",
            "measure",
            "main",
        ):
            assert hasattr(module, attribute), (name, attribute)
        assert module.NAME == name
        options = suite.module_options(module, None)
        options.update(peers=False, backends=["cpp"])
        if name in ("roofline", "dask"):  # ceilings, engines and cluster layouts, not backends (own tests)
            continue
        # one contender per fastrec model (one for most benchmarks) on the backend asked for
        names = [c.name for c in module.contenders(options)]
        assert names and all(n.startswith("fastrec ") and n.endswith(" cpp") for n in names), names
        assert report.reference_name([{"contender": n, "peer": False} for n in names]) == names[0]


def test_under_simd_every_row_is_compared_with_fastrec_cpp_at_its_own_level():
    def record(name, time, level, peer):
        return {"size": "S", "threads": 2, "contender": name, "peer": peer, "times": [time], "simd": level}

    records = [
        record("fastrec cpp [avx2]", 2.0, "avx2", False),
        record("fastrec cpp [avx512]", 1.0, "avx512", False),
        record("sklearn [avx2: Haswell]", 4.0, "avx2", True),
        record("sklearn [avx512: SkylakeX]", 3.0, "avx512", True),
        record("fastrec numba", 5.0, "avx512", False),
    ]
    assert report.reference_name(records) == "fastrec cpp [same level]"
    assert report.ratios(records) == {
        ("S", 2, "fastrec cpp [avx2]"): 1.0,
        ("S", 2, "fastrec cpp [avx512]"): 1.0,
        ("S", 2, "sklearn [avx2: Haswell]"): 2.0,
        ("S", 2, "sklearn [avx512: SkylakeX]"): 3.0,
        ("S", 2, "fastrec numba"): 5.0,
    }
