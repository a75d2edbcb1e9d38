"""``geoattn solve-tsp``: the default run, inputs, outputs, options, and a one-line error for every bad input.

Most tests call :func:`geoattn.cli.main` in-process with a tiny randomly initialised policy in place of the
shipped weights (``_load_model`` patched), so they are fast and independent of training.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import geoattn.cli_tsp as cli_tsp
from geoattn.cli import main
from geoattn.nn.attention_model import TSPAttentionModel
from geoattn.solvers import pretrained, solve
from geoattn.tasks import read_tsp_instance, read_tsplib_tour

ROOT = Path(__file__).resolve().parents[2]
TSPLIB = ROOT.parent / "shared" / "data" / "tsplib"
PACKAGED = ROOT / "geoattn" / "data"
LOAD_MODEL = cli_tsp._load_model  # the real loader, before the autouse fixture replaces it


@pytest.fixture(autouse=True)
def tiny_policy(monkeypatch: pytest.MonkeyPatch) -> TSPAttentionModel:
    torch.manual_seed(0)
    model = TSPAttentionModel(embed_dim=16, heads=2, layers=1, ff_dim=32)
    monkeypatch.setattr(cli_tsp, "_load_model", lambda path, device: model)
    return model


def _tsplib(name: str) -> Path:
    path = TSPLIB / f"{name}.tsp"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


def _fails(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run, expect exit status 2 and one error line on stderr; return that line."""
    assert main(["solve-tsp", *argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geoattn solve-tsp: error: "), captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    return lines[0]


def test_default_solves_the_shipped_berlin52(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["solve-tsp", "--device", "cpu"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    line = out[0]
    assert line.startswith("berlin52 (52 cities, EUC_2D): length ") and "optimum 7542, gap " in line
    length = float(line.split("length ")[1].split(",")[0])
    gap = float(line.split("gap ")[1].split("%")[0])
    assert length >= 7542 and gap == pytest.approx(100 * (length - 7542) / 7542, abs=0.006)
    assert "time " in line and "multistart 52 starts x8" in line and "2-opt + Or-opt" in line


def test_packaged_data_matches_tsplib_and_is_package_data() -> None:
    assert "7542" in (PACKAGED / "optimal.csv").read_text()
    if TSPLIB.is_dir():
        assert (PACKAGED / "berlin52.tsp").read_bytes() == (TSPLIB / "berlin52.tsp").read_bytes()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"geoattn.data" = ["*.tsp", "*.csv", "*.md"]' in pyproject


def test_parser_constants_agree_with_the_solver() -> None:
    assert cli_tsp.DECODINGS == solve.DECODINGS
    assert cli_tsp.SOLVE_MAX_CITIES == solve.SOLVE_MAX_CITIES


def test_outputs_tour_json_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tour, summary, plot = tmp_path / "t.tour", tmp_path / "s.json", tmp_path / "t.png"
    path = _tsplib("att48")
    argv = ["solve-tsp", str(path), "--tour-out", str(tour), "--json", str(summary), "--plot", str(plot)]
    assert main([*argv, "--decoding", "greedy", "--no-augment"]) == 0
    line = capsys.readouterr().out
    data = json.loads(summary.read_text())
    (entry,) = data["instances"]
    assert data["settings"]["decoding"] == "greedy" and data["settings"]["augment"] is False
    instance = read_tsp_instance(path)
    order = read_tsplib_tour(tour, instance.n)
    assert instance.tour_length(order) == entry["length"] and f"length {entry['length']:g}" in line
    assert [int(c) + 1 for c in order] == entry["tour"]
    assert entry["optimum"] == 10628 and entry["edge_weight_type"] == "ATT"
    assert entry["gap_percent"] == pytest.approx(100 * (entry["length"] - 10628) / 10628)
    assert {"decoded_length", "times_s", "local_search", "duplicates", "timed_out"} <= set(entry)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_several_inputs_write_one_file_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "pts.csv"
    csv.write_text("x,y\n" + "\n".join(f"{x},{y}" for x, y in np.random.default_rng(0).random((9, 2))))
    npy = tmp_path / "pts2.npy"
    np.save(npy, np.random.default_rng(1).random((7, 2)))
    outs = tmp_path / "tours"
    argv = [str(_tsplib("burma14")), str(csv), str(npy), "--random", "8", "--seed", "3"]
    assert main(["solve-tsp", *argv, "--tour-out", str(outs), "--json", "-", "--starts", "2"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)  # stdout holds the JSON only
    names = [e["name"] for e in data["instances"]]
    assert names == ["burma14", "pts", "pts2", "random8-seed3"]
    assert [e["n"] for e in data["instances"]] == [14, 9, 7, 8]
    assert sorted(p.name for p in outs.iterdir()) == sorted(f"{n}.tour" for n in names)
    assert data["instances"][0]["optimum"] == 3323 and data["instances"][1]["optimum"] is None
    assert "solve-tsp" in captured.err  # the progress bar


def test_options_reach_the_solver(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _tsplib("berlin52")
    argv = [str(path), "--decoding", "sampling", "--samples", "3", "--no-local-search", "--optimal", "8000"]
    assert main(["solve-tsp", *argv, "--json", str(tmp_path / "s.json")]) == 0
    (entry,) = json.loads((tmp_path / "s.json").read_text())["instances"]
    assert entry["decoding"] == "sampling" and entry["local_search"] == "off" and entry["optimum"] == 8000
    assert entry["length"] == entry["decoded_length"]
    assert "no local search" in capsys.readouterr().out
    assert main(["solve-tsp", str(path), "--time-limit", "1e-9", "--starts", "1"]) == 0
    assert "stopped at the time limit" in capsys.readouterr().out


def test_duplicates_and_three_cities(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "dup.csv"
    csv.write_text("0,0\n1,0\n1,0\n0,1\n1,1\n0,0\n")
    assert main(["solve-tsp", str(csv), "--json", str(tmp_path / "d.json")]) == 0
    assert "dup (6 cities, 2 at the same place as another, Euclidean): length 4," in capsys.readouterr().out
    (entry,) = json.loads((tmp_path / "d.json").read_text())["instances"]
    assert sorted(entry["tour"]) == list(range(1, 7)) and entry["duplicates"] == 2
    assert entry["length"] == pytest.approx(4.0)
    three = tmp_path / "three.csv"
    three.write_text("0,0\n3,0\n0,4\n")
    assert main(["solve-tsp", str(three)]) == 0
    assert "length 12," in capsys.readouterr().out


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


_HEADER = "NAME : bad\nTYPE : TSP\nDIMENSION : {n}\nEDGE_WEIGHT_TYPE : {kind}\nNODE_COORD_SECTION\n"


def _tsp(n: int, rows: int, kind: str = "EUC_2D") -> str:
    return _HEADER.format(n=n, kind=kind) + "".join(f"{i + 1} {i} {i * i}\n" for i in range(rows)) + "EOF\n"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "a.tsp",
            _tsp(5, 5, "EXPLICIT"),
            "unsupported EDGE_WEIGHT_TYPE 'EXPLICIT'; supported: ATT, CEIL_2D, EUC_2D, GEO",
        ),
        ("b.tsp", _tsp(6, 5), "DIMENSION 6 disagrees with the 5 cities"),
        ("c.tsp", _tsp(2, 2), "DIMENSION 2 is out of range; accepted: 3 to 100000"),
        ("d.tsp", _tsp(10**9, 3), "DIMENSION 1000000000 is out of range"),
        ("e.tsp", "hello world\n", "no DIMENSION in the header"),
        ("f.csv", "0,0\n1,1\n", "needs at least 3 cities, got 2"),
        ("g.csv", "0,0\n1,nan\n2,2\n", "coordinates must be finite"),
        ("h.csv", "0,0\n1\n2,2\n", "every row must be 'x,y'"),
        ("i.txt", "0,0\n", "unsupported file type '.txt'"),
    ],
)
def test_bad_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, message: str
) -> None:
    assert message in _fails(capsys, _write(tmp_path, name, text))


def test_bad_inputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "not found" in _fails(capsys, str(tmp_path / "missing.tsp"))
    binary = tmp_path / "bin.tsp"
    binary.write_bytes(b"\xff\xfe\x00\x01" * 10)
    assert "not a text file" in _fails(capsys, str(binary))
    big = tmp_path / "big.npy"
    np.save(big, np.random.default_rng(0).random((solve.SOLVE_MAX_CITIES + 1, 2)))
    assert "10001 cities; solve-tsp solves up to 10000" in _fails(capsys, str(big))
    assert "--random 2: accepted sizes are 3 to 10000" in _fails(capsys, "--random", "2")
    assert "--random 1000000000" in _fails(capsys, "--random", str(10**9))
    two = [str(_tsplib("burma14")), "--random", "5"]
    assert "--optimal applies to one instance" in _fails(capsys, *two, "--optimal", "5")
    assert "--device 'tpu'" in _fails(capsys, "--device", "tpu")
    if not torch.cuda.is_available():
        assert "CUDA is not available" in _fails(capsys, "--device", "cuda")
    blocker = tmp_path / "file"
    blocker.write_text("")
    message = _fails(capsys, "--random", "5", "--tour-out", str(blocker / "t.tour"))
    assert f"cannot write there, {blocker} is not a folder" in message
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "matplotlib" else real(name)
    )
    assert "pip install 'geoattn[plot]'" in _fails(capsys, "--plot", str(tmp_path / "p.png"))


def test_a_failure_while_solving_is_one_line_with_status_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def out_of_memory(*args: object, **kwargs: object) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory.\nTried to allocate 2 GiB")

    monkeypatch.setattr(solve, "solve_tsp", out_of_memory)
    assert main(["solve-tsp", "--random", "5"]) == 1
    err = capsys.readouterr().err
    assert err == "geoattn solve-tsp: error while solving: CUDA out of memory. Tried to allocate 2 GiB\n"


@pytest.mark.parametrize("argv", [["--time-limit", "-1"], ["--decoding", "beam"], ["--random", "x"]])
def test_bad_option_values_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["solve-tsp", *argv])
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert "geoattn solve-tsp: error: argument" in err and "Traceback" not in err


def test_console_script_reports_errors_in_one_line(tmp_path: Path) -> None:
    exe = shutil.which("geoattn", path=str(Path(sys.executable).parent))
    assert exe is not None
    result = subprocess.run(
        [exe, "solve-tsp", str(tmp_path / "nope.tsp")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip() == f"geoattn solve-tsp: error: TSPLIB file not found: {tmp_path / 'nope.tsp'}"
    )


def _export(model: TSPAttentionModel, folder: Path, name: str = "tiny") -> Path:
    """A weights folder as ``python -m geoattn.solvers.pretrained export`` writes it."""
    from safetensors.torch import save

    data = save({k: v.contiguous() for k, v in model.state_dict().items()})
    folder.mkdir()
    (folder / f"{name}.safetensors").write_bytes(data)
    entry = {
        "file": f"{name}.safetensors",
        "sha256": hashlib.sha256(data).hexdigest(),
        "model_config": model.config(),
    }
    manifest = {"format_version": 1, "default": name, "models": {name: entry}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _tour_with(tmp_path: Path, capsys: pytest.CaptureFixture[str], *model: str) -> list[int]:
    assert main(["solve-tsp", "--random", "12", *model, "--json", "-", "--device", "cpu"]) == 0
    tour: list[int] = json.loads(capsys.readouterr().out)["instances"][0]["tour"]
    return tour


def test_model_option_loads_exported_weights(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tiny_policy: TSPAttentionModel,
) -> None:
    expected = _tour_with(tmp_path, capsys)  # the injected policy
    folder = _export(tiny_policy, tmp_path / "weights")
    monkeypatch.setattr(cli_tsp, "_load_model", LOAD_MODEL)
    for target in (folder, folder / "tiny.safetensors", folder / "manifest.json"):
        assert _tour_with(tmp_path, capsys, "--model", str(target)) == expected
    assert "expected a weights folder" in _fails(capsys, "--model", str(_write(tmp_path, "w.pt", "x")))
    assert "policy weights not found" in _fails(capsys, "--model", str(tmp_path / "nothing"))
    (folder / "tiny.safetensors").write_bytes((folder / "tiny.safetensors").read_bytes()[:-1] + b"!")
    assert "the file is corrupt or was modified" in _fails(capsys, "--model", str(folder))


def test_missing_shipped_weights_say_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_tsp, "_load_model", LOAD_MODEL)
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", tmp_path / "weights")
    message = _fails(capsys)
    assert "no pretrained TSP weights" in message and "or pass --model PATH" in message
