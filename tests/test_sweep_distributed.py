"""Sharded, multi-process and interrupted sweeps, each run in subprocesses.

``XLA_FLAGS=--xla_force_host_platform_device_count=N`` must be set before JAX is imported,
so every multi-device run happens in a fresh Python process. This test process itself has
one CPU device and provides the single-device reference.
"""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest

from complemjax import sweep

# The tiny study function, shared verbatim by the parent and the children.
FN_SRC = textwrap.dedent(
    """
    import jax
    import jax.numpy as jnp

    def fn(key, noise, scale, width=3):
        x = jax.random.normal(key, (40, width))
        w = jax.random.normal(jax.random.fold_in(key, 1), (width, 5))
        h = jnp.tanh(x @ w * noise)
        return {"m": jnp.mean(h) * scale, "v": jnp.var(h, axis=0)}

    GRID = {"noise": [0.5, 1.0, 2.0], "scale": [1.0, 3.0]}
    STATIC = {"width": [2, 4]}
    N_SEEDS = 3
    """
)
_NS: dict = {}
exec(FN_SRC, _NS)

ROOT = Path(__file__).resolve().parents[1]


def _env(n_devices: int) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n_devices}"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    return env


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "child.py"
    path.write_text(FN_SRC + "\nfrom complemjax import sweep\nimport sys\n" + body)
    return path


def _reference(**kw) -> pd.DataFrame:
    return sweep.run_grid(
        _NS["fn"],
        key=jax.random.key(3),
        grid=_NS["GRID"],
        n_seeds=_NS["N_SEEDS"],
        static=_NS["STATIC"],
        progress=False,
        **kw,
    )


def _assert_same_table(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    keys = ["width", "noise", "scale", "seed"]
    assert not b.duplicated(keys).any(), "duplicated rows"
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


@pytest.mark.slow
def test_four_devices_equal_one_device(tmp_path):
    out = tmp_path / "four.pkl"
    child = _script(
        tmp_path,
        textwrap.dedent(
            """
            assert jax.device_count() == 4, jax.devices()
            df = sweep.run_grid(fn, key=jax.random.key(3), grid=GRID, n_seeds=N_SEEDS,
                                static=STATIC, chunk_size=5, progress=False)
            assert df.attrs["sweep"]["n_devices"] == 4
            assert df.attrs["sweep"]["chunk_sizes"] == [8, 8], df.attrs  # 5 rounded up to 4k
            df.to_pickle(sys.argv[1])
            """
        ),
    )
    subprocess.run(
        [sys.executable, str(child), str(out)], env=_env(4), check=True, timeout=300, cwd=ROOT
    )
    four = pd.read_pickle(out)
    one = _reference()  # one device, whole bucket in one call
    assert one.attrs["sweep"]["n_devices"] == 1
    assert len(four) == 2 * 6 * 3
    _assert_same_table(one, four)  # bit-identical, not merely close


@pytest.mark.slow  # multi-process (kill -9 of a child): run by make test-slow and test-all (CI)
def test_sigkill_mid_sweep_then_resume(tmp_path):
    ck = tmp_path / "chunks"
    child = _script(
        tmp_path,
        textwrap.dedent(
            """
            import time
            write = sweep.checkpoint.write_chunk

            def slow_write(*args, **kwargs):  # leave time to be killed between chunks
                write(*args, **kwargs)
                time.sleep(0.5)

            sweep.checkpoint.write_chunk = slow_write
            sweep.run_grid(fn, key=jax.random.key(3), grid=GRID, n_seeds=N_SEEDS,
                           static=STATIC, chunk_size=4, progress=False,
                           checkpoint_dir=sys.argv[1], fingerprint="tiny-v1")
            print("FINISHED", flush=True)
            """
        ),
    )
    proc = subprocess.Popen(
        [sys.executable, str(child), str(ck)],
        env=_env(4),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    try:
        while not list(ck.glob("chunk-*.npz")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no chunk written in time"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert b"FINISHED" not in stdout
    finished = sorted(p.name for p in ck.glob("chunk-*.npz"))
    n_total = 2 * 5  # two static buckets of 18 rows in chunks of 4
    assert 1 <= len(finished) < n_total, finished
    # A write killed half-way leaves only a temporary file; simulate one.
    (ck / ".chunk-killed.tmp").write_bytes(b"partial")

    # Resume here, on one device: the recorded chunk layout (4 rows) is reused.
    resumed = _reference(chunk_size=7, checkpoint_dir=ck, fingerprint="tiny-v1")
    info = resumed.attrs["sweep"]
    assert info["chunk_sizes"] == [4, 4]
    assert info["chunks_skipped"] == len(finished)
    assert info["chunks_computed"] == n_total - len(finished)
    assert not list(ck.glob(".chunk-*.tmp"))
    _assert_same_table(_reference(), resumed)
    # Files written before the kill are untouched by the resume.
    assert set(finished) <= {p.name for p in ck.glob("chunk-*.npz")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_with_jax_distributed(tmp_path):
    ck = tmp_path / "chunks"
    port = _free_port()
    child = _script(
        tmp_path,
        textwrap.dedent(
            """
            pid = int(sys.argv[1])
            sweep.init_distributed(f"localhost:{sys.argv[2]}", num_processes=2, process_id=pid)
            assert jax.process_count() == 2 and jax.device_count() == 4
            df = sweep.run_grid(fn, key=jax.random.key(3), grid=GRID, n_seeds=N_SEEDS,
                                static=STATIC, chunk_size=5, progress=False,
                                checkpoint_dir=sys.argv[3], fingerprint="tiny-v1")
            df.to_pickle(sys.argv[3] + f".p{pid}.pkl")
            """
        ),
    )
    procs = [
        subprocess.Popen(
            [sys.executable, str(child), str(i), str(port), str(ck)],
            env=_env(2),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i in range(2)
    ]
    try:
        outs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], [o.decode()[-2000:] for o in outs]
    ref = _reference()
    for i in range(2):
        _assert_same_table(ref, pd.read_pickle(f"{ck}.p{i}.pkl"))
    assert len(list(ck.glob("chunk-*.npz"))) == 2 * 3  # written once, by process 0
    # Resuming the finished folder in one process recomputes nothing.
    again = _reference(checkpoint_dir=ck, fingerprint="tiny-v1")
    assert again.attrs["sweep"]["chunks_computed"] == 0
    np.testing.assert_array_equal(again["m"], ref["m"])
