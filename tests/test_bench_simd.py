"""``--simd``: benchmarks run fastrec at each SIMD level and the BLAS peers at the matching core."""

from __future__ import annotations

import json

import pytest
from conftest import simd_levels

from fastrec.bench import kmeans, suite, topn


def test_simd_contenders_cover_every_level_and_match_the_blas_core():
    found = [
        suite.Contender("fastrec cpp", peer=False),
        suite.Contender("fastrec numba", peer=False),  # FASTREC_SIMD does not reach Numba
        suite.Contender("sklearn [Haswell]", key="sklearn", env={"OPENBLAS_CORETYPE": "Haswell"}),
        suite.Contender("sklearn [SkylakeX]", key="sklearn", env={"OPENBLAS_CORETYPE": "SkylakeX"}),
        suite.Contender("faiss", key="faiss", blas=True),
        suite.Contender("implicit", key="implicit"),  # no OpenBLAS: left alone
    ]
    out = suite.simd_contenders(found, ["baseline", "avx2", "avx512"])
    rows = [(c.name, c.dispatch, c.peer, c.simd, c.env) for c in out]
    expected = [
        ("fastrec cpp [baseline]", "fastrec cpp", False, "baseline", {"FASTREC_SIMD": "baseline"}),
        ("fastrec cpp [avx2]", "fastrec cpp", False, "avx2", {"FASTREC_SIMD": "avx2"}),
        ("fastrec cpp [avx512]", "fastrec cpp", False, "avx512", {"FASTREC_SIMD": "avx512"}),
        ("fastrec numba", "fastrec numba", False, None, {}),
    ]
    for peer in ("sklearn", "faiss"):
        expected += [
            (
                f"{peer} [{level}: {core}]",
                peer,
                True,
                level,
                {"OPENBLAS_CORETYPE": core, "FAISS_SIMD_LEVEL": faiss_level},
            )
            for level, core, faiss_level in (
                ("baseline", "Nehalem", "NONE"),
                ("avx2", "Haswell", "AVX2"),
                ("avx512", "SkylakeX", "AVX512"),
            )
        ]
    expected.append(("implicit", "implicit", True, None, {}))
    assert rows == expected
    assert suite.worker_env(out[1], base={"FASTREC_SIMD": "avx512", "PATH": "/bin"}) == {
        "FASTREC_SIMD": "avx2",
        "PATH": "/bin",
    }


def test_kmeans_and_topn_mark_their_peers_as_blas_users():
    for module in (kmeans, topn):
        opts = suite.module_options(module, None)
        opts.update(peers=True, backends=["cpp"], coretypes=[])
        peers = [c for c in module.contenders(opts) if c.peer]
        assert all(c.blas for c in peers)


def test_bench_simd_option_records_each_level(tmp_path, capsys):
    levels = simd_levels()
    if not levels:  # without the compiled core no level can be forced
        with pytest.raises(SystemExit):
            kmeans.main(["--simd", "baseline", "--size", "XS", "--no-peers"])
        return
    asked = levels[:1] + levels[-1:] if len(levels) > 1 else levels
    argv = [
        "--simd",
        ",".join(asked),
        "--size",
        "XS",
        "--threads",
        "1",
        "--repeats",
        "1",
        "--backends",
        "cpp,numpy",
        "--no-peers",
        "--iterations",
        "2",
        "--out",
        str(tmp_path),
    ]
    assert kmeans.main(argv) == 0
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["settings"]["simd"] == asked
    rows = payload["results"]
    assert [(r["contender"], r["simd"], r["peer"]) for r in rows] == [
        *((f"fastrec cpp [{level}]", level, False) for level in asked),
        ("fastrec numpy", levels[-1], False),
    ]  # the level of the worker, which numpy ignores
    assert all(len(r["times"]) == 1 and not r["errors"] for r in rows)
    inertia = {r["quality"]["final inertia"] for r in rows}
    assert len(inertia) == 1  # every level clusters to the same centres
    assert "fastrec cpp [" + asked[0] + "]" in capsys.readouterr().out


@pytest.mark.parametrize("value, message", [("sse9", "is not one of baseline, avx2, avx512")])
def test_bench_simd_option_rejects_unknown_levels(value, message, capsys):
    with pytest.raises(SystemExit) as exc:
        kmeans.main(["--simd", value, "--size", "XS", "--no-peers"])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_bench_simd_option_rejects_levels_the_cpu_cannot_run(monkeypatch, capsys):
    monkeypatch.setattr("fastrec._runtime.available_simd_levels", lambda: ("baseline",))
    with pytest.raises(SystemExit) as exc:
        kmeans.main(["--simd", "avx2", "--size", "XS", "--no-peers"])
    assert exc.value.code == 2
    assert "this CPU cannot run 'avx2'; it runs baseline" in capsys.readouterr().err
