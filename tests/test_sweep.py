"""Tests of the grid runner."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from complemjax import sweep


def _fn(key, noise, scale, width=2):
    x = jax.random.normal(key, (50, width))
    return {"var": jnp.var(x * noise) * scale, "vec": jnp.arange(2.0) * noise}


def test_run_grid_equals_python_loop():
    key = jax.random.key(0)
    grid = {"noise": [0.5, 1.0, 2.0], "scale": [1.0, 3.0]}
    df = sweep.run_grid(_fn, key=key, grid=grid, n_seeds=3, progress=False)
    assert len(df) == 18
    assert list(df.columns[:3]) == ["noise", "scale", "seed"]
    for row in df.itertuples():
        ref = _fn(jax.random.fold_in(key, row.seed), row.noise, row.scale)
        np.testing.assert_allclose(row.var, ref["var"], rtol=1e-5)
        np.testing.assert_allclose(row.vec_1, ref["vec"][1], rtol=1e-6)


def test_chunking_and_padding_do_not_change_results():
    key = jax.random.key(1)
    grid = {"noise": [0.5, 1.0, 2.0], "scale": [1.0]}
    a = sweep.run_grid(_fn, key=key, grid=grid, n_seeds=3, progress=False)
    b = sweep.run_grid(_fn, key=key, grid=grid, n_seeds=3, chunk_size=4, progress=False)
    np.testing.assert_allclose(a["var"], b["var"], rtol=1e-6)


def test_static_knobs_bucket_and_common_random_numbers():
    df = sweep.run_grid(
        _fn, key=jax.random.key(2), grid={"noise": [1.0], "scale": [1.0, 2.0]}, n_seeds=2,
        static={"width": [1, 3]}, progress=False,
    )  # fmt: skip
    assert sorted(df["width"].unique()) == [1, 3]
    # Same seed, different scale: same draw, so var scales exactly.
    w1 = df[(df["width"] == 1) & (df["seed"] == 0)].sort_values("scale")["var"].to_numpy()
    np.testing.assert_allclose(w1[1], 2 * w1[0], rtol=1e-6)


def test_bad_grids_raise():
    with pytest.raises(ValueError, match="noise"):
        sweep.run_grid(_fn, key=jax.random.key(0), grid={"noise": [], "scale": [1.0]})
    with pytest.raises(ValueError, match="n_seeds"):
        sweep.run_grid(_fn, key=jax.random.key(0), grid={"noise": [1.0]}, n_seeds=0)
    with pytest.raises(ValueError, match="scale"):
        sweep.expand_grid({"scale": 1.0})


# --- checkpoints, resume, memory planning ---------------------------------------------

_GRID = {"noise": [0.5, 1.0, 2.0], "scale": [1.0, 2.0]}


def _run(tmp_path=None, **kw):
    args = {"key": jax.random.key(4), "grid": _GRID, "n_seeds": 2, "progress": False}
    args.update(kw)
    return sweep.run_grid(_fn, **args)


def test_checkpoint_roundtrip_and_skip(tmp_path):
    ref = _run()
    ck = tmp_path / "ck"
    a = _run(chunk_size=5, checkpoint_dir=ck, fingerprint="f1")
    pd_equal(ref, a)
    assert a.attrs["sweep"]["chunks_computed"] == 3
    files = sorted(p.name for p in ck.iterdir())
    assert files == [
        "chunk-s0000-c000000.npz",
        "chunk-s0000-c000001.npz",
        "chunk-s0000-c000002.npz",
        "manifest.json",
    ]
    manifest = json.loads((ck / "manifest.json").read_text())
    assert manifest["grid"] == _GRID and manifest["n_seeds"] == 2
    assert manifest["chunk_sizes"] == [5] and manifest["fingerprint"] == "f1"
    # A rerun computes nothing and reads everything back.
    b = _run(chunk_size=5, checkpoint_dir=ck, fingerprint="f1")
    assert b.attrs["sweep"]["chunks_computed"] == 0
    assert b.attrs["sweep"]["chunks_skipped"] == 3
    pd_equal(ref, b)
    # Losing one chunk file recomputes exactly that chunk.
    (ck / "chunk-s0000-c000001.npz").unlink()
    c = _run(chunk_size=5, checkpoint_dir=ck, fingerprint="f1")
    assert c.attrs["sweep"]["chunks_computed"] == 1
    pd_equal(ref, c)


def pd_equal(a, b):
    assert list(a.columns) == list(b.columns)
    for col in a.columns:
        np.testing.assert_array_equal(a[col].to_numpy(), b[col].to_numpy(), err_msg=col)


def test_checkpoint_of_another_sweep_is_refused(tmp_path):
    ck = tmp_path / "ck"
    _run(checkpoint_dir=ck, fingerprint="f1", chunk_size=4)
    before = {p.name: p.read_bytes() for p in ck.iterdir()}
    bad = [
        ({"fingerprint": "f2"}, "fingerprint"),
        ({"fingerprint": None}, "fingerprint"),
        ({"grid": {"noise": [0.5, 1.0], "scale": [1.0, 2.0]}}, "grid"),
        ({"grid": {"scale": [1.0, 2.0], "noise": [0.5, 1.0, 2.0]}}, "grid"),
        ({"n_seeds": 3}, "n_seeds"),
        ({"key": jax.random.key(5)}, "key"),
        ({"static": {"width": [2]}}, "static"),
    ]
    for override, name in bad:
        kw = {"checkpoint_dir": ck, "fingerprint": "f1", **override}
        with pytest.raises(ValueError, match=f"`{name}`"):
            _run(**kw)
    with pytest.raises(ValueError, match="resume"):
        _run(checkpoint_dir=ck, fingerprint="f1", resume=False)
    assert {p.name: p.read_bytes() for p in ck.iterdir()} == before  # nothing overwritten
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="checkpoint_dir"):
        _run(checkpoint_dir=other)


@pytest.mark.slow
def test_auto_chunk_size_from_memory_estimate(tmp_path):
    ref = _run()
    plan = sweep.plan_chunk_size(
        _fn, key=jax.random.key(0), knob_names=["noise", "scale"], n_devices=2, max_rows=1000,
        free_bytes=10**6,
    )  # fmt: skip
    assert plan.source == "memory_analysis"
    assert plan.bytes_per_row > 0 and plan.chunk_size % 2 == 0
    expect = 2 * int((0.5 * 10**6 - plan.bytes_base) // plan.bytes_per_row)
    assert plan.chunk_size == min(expect, 1000)
    small = sweep.plan_chunk_size(
        _fn, key=jax.random.key(0), knob_names=["noise", "scale"], n_devices=2,
        free_bytes=plan.bytes_base + 3 * plan.bytes_per_row,
    )  # fmt: skip
    assert small.chunk_size == 2  # at least one row per device
    budget = plan.bytes_base + 4 * plan.bytes_per_row
    df = _run(chunk_size="auto", free_bytes=budget, memory_fraction=1.0)
    assert df.attrs["sweep"]["chunk_sizes"] == [4]
    pd_equal(ref, df)


def test_configuration_that_cannot_fit_fails_before_work(tmp_path):
    ck = tmp_path / "ck"
    with pytest.raises(ValueError, match="one configuration"):
        _run(chunk_size="auto", free_bytes=64, checkpoint_dir=ck)
    with pytest.raises(ValueError, match="chunk_size"):
        _run(chunk_size=12, free_bytes=64, checkpoint_dir=ck)
    assert not ck.exists()


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="chunk_size"):
        _run(chunk_size="big")
    with pytest.raises(ValueError, match="chunk_size"):
        _run(chunk_size=0)
    with pytest.raises(ValueError, match="key"):
        _run(key=np.zeros(2))
    with pytest.raises(ValueError, match="key"):
        _run(key=jax.random.split(jax.random.key(0), 2))
    with pytest.raises(ValueError, match="memory_fraction"):
        _run(memory_fraction=0.0)
    with pytest.raises(ValueError, match="fingerprint"):
        _run(fingerprint=3)
    with pytest.raises(ValueError, match="devices"):
        _run(devices=[])


def test_raw_uint32_key_matches_typed_key():
    typed = _run(key=jax.random.key(4))
    raw = _run(key=jax.random.PRNGKey(4))
    pd_equal(typed, raw)


def test_progress_bar_counts_configurations(capsys):
    sweep.run_grid(
        _fn, key=jax.random.key(0), grid=_GRID, n_seeds=2, chunk_size=4, progress=True,
        description="tiny",
    )  # fmt: skip
    err = capsys.readouterr().err
    assert "tiny" in err and "12/12" in err and "config" in err


def test_fingerprint_and_free_memory():
    a = sweep.config_fingerprint({"n": 1, "xs": (1.0, 2.0)})
    assert a == sweep.config_fingerprint({"n": 1, "xs": [1.0, 2.0]})
    assert a != sweep.config_fingerprint({"n": 2, "xs": (1.0, 2.0)})
    assert len(a) == 64
    free, source = sweep.device_free_bytes(jax.devices()[0])
    assert free > 0 and source in ("memory_stats", "host_ram", "fallback")


def test_code_fingerprint_tracks_source(tmp_path):
    import importlib.util

    path = tmp_path / "mod_a.py"
    path.write_text("X = 1\n")
    spec = importlib.util.spec_from_file_location("mod_a", path)
    mod = importlib.util.module_from_spec(spec)
    before = sweep.code_fingerprint(mod)
    assert before == sweep.code_fingerprint(mod)
    path.write_text("X = 2\n")
    assert sweep.code_fingerprint(mod) != before
    with pytest.raises(ValueError, match="modules"):
        sweep.code_fingerprint(object())


def test_code_fingerprint_of_a_package_tracks_every_file(tmp_path):
    import hashlib
    import importlib.util

    pkg = tmp_path / "pkg_a"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "b.py").write_text("Y = 1\n")
    (pkg / "sub" / "__init__.py").write_text("Z = 1\n")
    spec = importlib.util.spec_from_file_location(
        "pkg_a", pkg / "__init__.py", submodule_search_locations=[str(pkg)]
    )
    mod = importlib.util.module_from_spec(spec)
    before = sweep.code_fingerprint(mod)
    # reference: name, then (relative path, bytes) in sorted path order
    ref = hashlib.sha256(b"pkg_a")
    for rel in ("__init__.py", "b.py", "sub/__init__.py"):
        ref.update(rel.encode())
        ref.update((pkg / rel).read_bytes())
    assert before == ref.hexdigest()
    (pkg / "b.py").write_text("Y = 2\n")  # not the package's __init__.py
    after = sweep.code_fingerprint(mod)
    assert after != before
    (pkg / "sub" / "__init__.py").write_text("Z = 2\n")
    assert sweep.code_fingerprint(mod) != after
    # a plain module is still its name and its bytes (fingerprints of existing runs hold)
    plain = importlib.util.module_from_spec(
        importlib.util.spec_from_file_location("b_mod", pkg / "b.py")
    )
    assert sweep.code_fingerprint(plain) == hashlib.sha256(b"b_modY = 2\n").hexdigest()
    # the sweep package itself (no single source file) fingerprints deterministically
    assert sweep.code_fingerprint(sweep) == sweep.code_fingerprint(sweep)


# --- ownership: lock, run identity, corrupt chunks ------------------------------------


def test_concurrent_run_on_the_same_folder_is_refused(tmp_path, monkeypatch):
    import threading

    ck = tmp_path / "ck"
    first_written, go_on = threading.Event(), threading.Event()
    write = sweep.checkpoint.write_chunk

    def paused_write(*args, **kwargs):  # the first run pauses after its first chunk
        write(*args, **kwargs)
        first_written.set()
        assert go_on.wait(60)

    monkeypatch.setattr(sweep.checkpoint, "write_chunk", paused_write)
    result = {}
    thread = threading.Thread(
        target=lambda: result.setdefault("a", _run(chunk_size=4, checkpoint_dir=ck))
    )
    thread.start()
    try:
        assert first_written.wait(120)
        assert (ck / sweep.LOCK).exists()
        lock = json.loads((ck / sweep.LOCK).read_text())
        assert lock["pid"] == __import__("os").getpid()
        with pytest.raises(ValueError, match="locked by this process"):
            _run(chunk_size=4, checkpoint_dir=ck, key=jax.random.key(5))
        leftover = ck / ".chunk-live.tmp"  # a refused run must not clean a live run's files
        leftover.write_bytes(b"in flight")
        with pytest.raises(ValueError, match="locked"):
            _run(chunk_size=4, checkpoint_dir=ck)
        assert leftover.exists()
        leftover.unlink()
    finally:
        go_on.set()
        thread.join(120)
    pd_equal(_run(), result["a"])  # the first run's table is intact
    assert not (ck / sweep.LOCK).exists()  # released at the end
    with pytest.raises(ValueError, match="`key`"):  # the folder belongs to the first run
        _run(chunk_size=4, checkpoint_dir=ck, key=jax.random.key(5))


def test_lock_of_a_live_process_names_it_and_a_dead_one_is_reclaimed(tmp_path, caplog):
    import os
    import socket
    import subprocess
    import sys

    ck = tmp_path / "ck"
    ck.mkdir()
    lock = ck / sweep.LOCK
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = socket.gethostname()
        lock.write_text(json.dumps({"pid": live.pid, "host": host, "created_unix": 0}))
        with pytest.raises(ValueError, match=f"pid {live.pid} on host '{host}'"):
            _run(checkpoint_dir=ck)
        lock.write_text(json.dumps({"pid": os.getpid(), "host": "elsewhere"}))
        with pytest.raises(ValueError, match=r"host 'elsewhere'.*delete"):
            _run(checkpoint_dir=ck)
        assert lock.exists()  # never removed by a refused run
    finally:
        live.kill()
        live.wait()
    lock.write_text(json.dumps({"pid": live.pid, "host": host, "created_unix": 0}))
    with caplog.at_level("WARNING", logger="complemjax.sweep"):
        df = _run(checkpoint_dir=ck)  # the holder is dead: stale lock reclaimed
    assert "stale lock" in caplog.text and str(live.pid) in caplog.text
    pd_equal(_run(), df)
    assert not lock.exists()


def test_chunk_of_another_run_is_refused(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _run(chunk_size=5, checkpoint_dir=a)
    _run(chunk_size=5, checkpoint_dir=b, key=jax.random.key(9))
    name = "chunk-s0000-c000001.npz"
    (a / name).write_bytes((b / name).read_bytes())  # same layout, another key
    with pytest.raises(ValueError, match=f"{name}.*another run"):
        _run(chunk_size=5, checkpoint_dir=a)


@pytest.mark.parametrize("damage", ["truncated", "empty", "flipped"])
def test_corrupt_chunk_is_named_moved_aside_and_recomputed(tmp_path, damage, caplog):
    ck = tmp_path / "ck"
    ref = _run(chunk_size=5, checkpoint_dir=ck)
    path = ck / "chunk-s0000-c000001.npz"
    raw = bytearray(path.read_bytes())
    if damage == "truncated":
        raw = raw[: len(raw) // 2]
    elif damage == "empty":
        raw = bytearray()
    else:
        start = raw.index(b"\x93NUMPY", raw.index(b"out:var")) + 128  # inside the data
        raw[start] ^= 0x01
    path.write_bytes(bytes(raw))
    with caplog.at_level("WARNING", logger="complemjax.sweep"):
        again = _run(chunk_size=5, checkpoint_dir=ck)
    assert path.name in caplog.text and "recomputing" in caplog.text
    assert again.attrs["sweep"]["chunks_computed"] == 1
    assert (ck / (path.name + ".corrupt")).read_bytes() == bytes(raw)
    pd_equal(ref, again)


def test_fn_and_grid_errors_are_clear():
    with pytest.raises(ValueError, match="`fn` must return"):
        sweep.run_grid(lambda k, noise: noise, key=jax.random.key(0), grid={"noise": [1.0]})
    with pytest.raises(ValueError, match="`grid` entry `noise` must hold numbers"):
        sweep.run_grid(_fn, key=jax.random.key(0), grid={"noise": ["a"], "scale": [1.0]})
    with pytest.raises(ValueError, match="seed"):
        sweep.run_grid(_fn, key=jax.random.key(0), grid={"seed": [1.0]})
    with pytest.raises(ValueError, match="`fn`"):
        sweep.run_grid(None, key=jax.random.key(0), grid={"noise": [1.0]})
