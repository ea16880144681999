"""``python -m backend import encoder|embeddings``: foreign encoders and precomputed vectors.

Happy paths run end to end (import -> embed -> the vectors a direct run of the model gives);
every bad input is one ``error:`` line naming the file, exit code 2 and an unchanged registry.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from backend.cli import main
from backend.registry import ModelRegistry
from backend.survey import Survey, SurveyWriter
from models.foreign_files import import_timm

ARCH = "test_resnet"  # timm's 0.4 M-parameter test network (96-d features)


# -- helpers -----------------------------------------------------------------------------------
def pixels(survey: Survey) -> torch.Tensor:
    return torch.from_numpy(np.asarray(survey.images[:], dtype=np.float32))


def resize(x: torch.Tensor, side: int) -> torch.Tensor:
    """The documented resampling: area average when shrinking, bilinear when enlarging."""
    if x.shape[-1] > side:
        return F.interpolate(x, size=(side, side), mode="area")
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)


def timm_net(in_chans: int = 3, num_classes: int = 4, seed: int = 0, arch: str = ARCH) -> nn.Module:
    torch.manual_seed(seed)
    timm = import_timm()
    net = timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=in_chans)
    for m in net.modules():  # non-trivial BatchNorm statistics, so eval mode matters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def as_encoder(net: nn.Module) -> nn.Module:
    """The same network without its classifier (what the import builds)."""
    net.reset_classifier(0)
    return net.eval()


class TinyConv(nn.Module):
    def __init__(self, in_chans: int = 2, dim: int = 6) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chans, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x)))
        return self.fc(h.mean(dim=(2, 3)))


def script_file(net: nn.Module, path: Path, shape: tuple[int, ...]) -> Path:
    with warnings.catch_warnings():  # torch.jit is deprecated, yet it is what people ship
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.trace(net, torch.zeros(shape)), str(path))
    return path


def tiny_conv(in_chans: int, seed: int = 1) -> nn.Module:
    torch.manual_seed(seed)
    net = TinyConv(in_chans)
    net.bn.running_mean.uniform_(-0.2, 0.2)
    return net.eval()


def export_onnx(net: nn.Module, path: Path, shape: tuple[int, ...], dynamic: bool = True) -> Path:
    kwargs = {"dynamic_axes": {"x": {0: "batch"}, "y": {0: "batch"}}} if dynamic else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (torch.zeros(shape),), str(path), input_names=["x"], output_names=["y"],
            dynamo=False, **kwargs,
        )  # fmt: skip
    return path


def stored(home: Path) -> list[str]:
    """Every file under the registry and the products (to show nothing was written)."""
    return sorted(
        str(p.relative_to(home))
        for top in ("models", "products")
        if (home / top).exists()
        for p in (home / top).rglob("*")
        if p.is_file()
    )


def embeddings(home: Path, version: str, survey: str = "tiny") -> np.ndarray:
    return np.load(home / "products" / survey / f"encoder-{version}" / "embeddings.npy")


def import_args(path: Path, fmt: str, *extra: str) -> list[str]:
    return ["import", "encoder", str(path), "--format", fmt, "--survey", "tiny", *extra]


def assert_refused(
    argv: list[str], home: Path, capsys: pytest.CaptureFixture[str], *words: str
) -> str:
    before = stored(home)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    for word in words:
        assert word in err, err
    assert stored(home) == before
    return err


# -- timm --------------------------------------------------------------------------------------
def test_timm_state_dict_import_then_embed_equals_the_model(
    tiny_survey: Survey, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = timm_net()
    path = tmp_path / "encoder.pth"
    torch.save({"state_dict": net.state_dict()}, path)  # Lightning-style wrapper
    args = [
        "--arch",
        ARCH,
        "--input-size",
        "24",
        "--channels",
        "g,r,i",
        "--mean",
        "1",
        "--std",
        "2",
    ]
    assert main(import_args(path, "timm", *args, "--activate")) == 0
    out = capsys.readouterr().out
    assert (
        "as encoder v0001" in out
        and "96-d" in out
        and "2 weight(s) of the file not used (classifier head): fc.weight, fc.bias" in out
    )

    version = ModelRegistry().get("encoder", "v0001")
    cfg = version.config
    assert cfg["kind"] == "timm_encoder" and cfg["arch"] == ARCH
    assert cfg["bands"] == ["g", "r", "i"] and cfg["input_channels"] == ["g", "r", "i"]
    assert cfg["input_size"] == 24 and cfg["embedding_dim"] == 96
    assert cfg["source"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ModelRegistry().active("tiny", "encoder").version == "v0001"

    assert main(["embed", "--survey", "tiny", "--model", "v0001"]) == 0
    got = embeddings(home, "v0001")
    with torch.no_grad():
        want = as_encoder(net)((resize(pixels(tiny_survey), 24) - 1) / 2).numpy()
    assert got.shape == (150, 96)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("weights_name", ["model.safetensors", "pytorch_model.bin"])
def test_timm_hub_cache_folder_gives_architecture_size_and_mean(
    tiny_survey: Survey,
    home: Path,
    tmp_path: Path,
    weights_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from safetensors.torch import save_file

    from models.adapter import AdapterConfig, InputAdapter

    net = timm_net(seed=3)
    repo = tmp_path / "hub" / "models--someone--galaxy-encoder"
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    mean, std = [0.3, 0.4, 0.5], [0.2, 0.25, 0.3]
    config = {
        "architecture": ARCH,
        "num_classes": 4,
        "num_features": 96,
        "pretrained_cfg": {"input_size": [3, 20, 20], "mean": mean, "std": std, "classifier": "fc"},
    }
    (snapshot / "config.json").write_text(json.dumps(config))
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    if weights_name.endswith(".safetensors"):
        save_file(state, str(snapshot / weights_name))
    else:
        torch.save(state, snapshot / weights_name)

    assert main(import_args(repo, "timm", "--channels", "R,G,B")) == 0
    assert "input R,G,B at 20x20 px" in capsys.readouterr().out
    cfg = ModelRegistry().get("encoder", "v0001").config
    assert cfg["mean"] == pytest.approx(mean) and cfg["std"] == pytest.approx(std)
    adapter = cfg["adapter"]
    display = tiny_survey.meta.display
    assert adapter["mode"] == "composite" and adapter["rgb_bands"] == display.rgb_bands
    assert adapter["stretch"] == pytest.approx(display.stretch)

    assert main(["embed", "--survey", "tiny", "--model", "v0001"]) == 0
    composite = InputAdapter(AdapterConfig.from_dict(adapter))(pixels(tiny_survey))
    assert composite.shape[1:] == (3, 20, 20) and 0 <= float(composite.min()) <= 1
    x = (composite - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    with torch.no_grad():
        want = as_encoder(net)(x).numpy()
    np.testing.assert_allclose(embeddings(home, "v0001"), want, rtol=1e-4, atol=1e-4)


def test_lightning_checkpoint_encoder_prefix_is_found_and_its_head_left_out(tmp_path: Path) -> None:
    from models.foreign_files import ForeignModelError, match_state_dict

    trained = as_encoder(timm_net(seed=4))
    state = {f"encoder.{k}": v for k, v in trained.state_dict().items()}
    state["head.linear.weight"] = torch.zeros(3, 96)
    fresh = as_encoder(timm_net(seed=5))
    matched, dropped = match_state_dict(fresh, state, tmp_path / "zoobot.ckpt", ARCH)
    assert dropped == ["head.linear.weight"]
    fresh.load_state_dict(matched)
    x = torch.randn(2, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), trained(x))

    del state["encoder.conv1.0.weight"]  # the prefix no longer covers the model: refused
    with pytest.raises(ForeignModelError, match=r"zoobot\.ckpt does not match .* missing key"):
        match_state_dict(fresh, state, tmp_path / "zoobot.ckpt", ARCH)


# -- TorchScript and ONNX ----------------------------------------------------------------------
def test_torchscript_is_copied_and_embeds_a_band_subset(
    tiny_survey: Survey, home: Path, tmp_path: Path
) -> None:
    net = tiny_conv(2)
    path = script_file(net, tmp_path / "scripted.pt", (2, 2, 8, 8))
    args = ["--channels", "i,g", "--input-size", "8", "--embedding-dim", "6"]
    assert main(import_args(path, "torchscript", *args)) == 0
    version = ModelRegistry().get("encoder", "v0001")
    assert version.config["kind"] == "torchscript_encoder"
    assert version.config["file"] == "encoder.pt" and (version.path / "encoder.pt").is_file()
    path.unlink()  # the registry's copy is what runs

    assert main(["embed", "--survey", "tiny", "--model", "v0001"]) == 0
    with torch.no_grad():
        want = net(resize(pixels(tiny_survey)[:, [2, 0]], 8)).numpy()  # i, g; 16 -> 8: area
    np.testing.assert_allclose(embeddings(home, "v0001"), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dynamic", [True, False])
def test_onnx_input_shape_sets_size_and_embed_equals_the_model(
    tiny_survey: Survey, home: Path, tmp_path: Path, dynamic: bool
) -> None:
    net = tiny_conv(3)
    path = export_onnx(net, tmp_path / "enc.onnx", (1, 3, 12, 12), dynamic=dynamic)
    assert main(import_args(path, "onnx", "--mean", "0.5,0.5,0.5", "--std", "3")) == 0
    version = ModelRegistry().get("encoder", "v0001")
    cfg = version.config
    assert cfg["kind"] == "onnx_encoder" and cfg["input_size"] == 12 and cfg["embedding_dim"] == 6
    assert (version.path / "encoder.onnx").read_bytes() == path.read_bytes()

    assert main(["embed", "--survey", "tiny", "--model", "v0001", "--batch-size", "64"]) == 0
    with torch.no_grad():
        want = net((resize(pixels(tiny_survey), 12) - 0.5) / 3).numpy()
    np.testing.assert_allclose(embeddings(home, "v0001"), want, rtol=1e-4, atol=1e-5)


# -- bad encoders ------------------------------------------------------------------------------
def test_encoder_refusals(
    tiny_survey: Survey, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = timm_net()
    good = tmp_path / "good.pth"
    torch.save(net.state_dict(), good)
    four = tmp_path / "four_bands.pth"
    torch.save(timm_net(in_chans=4).state_dict(), four)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    size = ["--input-size", "16"]

    assert_refused(import_args(good, "timm", "--arch", "test_efficientnet", *size), home, capsys,
                   str(good), "does not match timm architecture 'test_efficientnet'",
                   "missing key", "unexpected key")  # fmt: skip
    assert_refused(import_args(four, "timm", "--arch", ARCH, "--channels", "g,r,i", *size), home,
                   capsys, str(four), "shape mismatch", "conv1.0.weight")  # fmt: skip
    assert_refused(import_args(good, "timm", "--arch", "no_such_net", *size), home, capsys,
                   "unknown timm architecture 'no_such_net'")  # fmt: skip
    assert_refused(import_args(garbage, "timm", "--arch", ARCH, *size), home, capsys,
                   str(garbage), "cannot read it as a state dict")  # fmt: skip
    assert_refused(import_args(good, "timm", *size), home, capsys, str(good), "--arch")
    assert_refused(import_args(tmp_path / "absent.pth", "timm", "--arch", ARCH), home, capsys,
                   "absent.pth", "no such file")  # fmt: skip
    assert_refused(import_args(good, "timm", "--arch", ARCH, "--channels", "g,r,u"), home,
                   capsys, "u not a band of survey tiny")  # fmt: skip
    assert_refused(import_args(good, "timm", "--arch", ARCH, *size, "--embedding-dim", "64"),
                   home, capsys, str(good), "96-dimensional embeddings, not 64")  # fmt: skip
    assert_refused(import_args(good, "timm", "--arch", ARCH, "--mean", "1,2"), home, capsys,
                   "mean has 2 values for 3 input channels")  # fmt: skip


def test_onnx_and_torchscript_refusals(
    tiny_survey: Survey, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    onnx_file = export_onnx(tiny_conv(3), tmp_path / "enc.onnx", (1, 3, 12, 12), dynamic=False)
    assert_refused(import_args(onnx_file, "onnx", "--input-size", "16"), home, capsys,
                   str(onnx_file), "12x12 pixels", "--input-size is 16")  # fmt: skip
    assert_refused(import_args(onnx_file, "onnx", "--channels", "g,r"), home, capsys,
                   str(onnx_file), "(3 channels)", "--channels names 2")  # fmt: skip
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage")
    assert_refused(import_args(bad, "onnx"), home, capsys, str(bad), "ONNX")

    four = script_file(tiny_conv(4), tmp_path / "four.pt", (1, 4, 8, 8))
    assert_refused(import_args(four, "torchscript"), home, capsys,
                   str(four), "fails on 3x16x16 input (g, r, i)")  # fmt: skip
    not_script = tmp_path / "plain.pt"
    torch.save({"w": torch.zeros(2)}, not_script)
    assert_refused(import_args(not_script, "torchscript"), home, capsys,
                   str(not_script), "not a TorchScript file")  # fmt: skip


# -- embeddings --------------------------------------------------------------------------------
def vectors_for(survey: Survey, dim: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(len(survey), dim)).astype(np.float32)


def import_emb(path: Path, *extra: str) -> list[str]:
    return ["import", "embeddings", str(path), "--survey", "tiny", *extra]


def test_parquet_by_id_then_embed_index_and_search(
    tiny_survey: Survey, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vec = vectors_for(tiny_survey)
    ids = tiny_survey.catalog["object_id"].tolist()
    order = np.random.default_rng(1).permutation(150)
    frame = pd.DataFrame({"objid": [ids[i] for i in order], "emb": [vec[i] for i in order]})
    extra = pd.DataFrame({"objid": ["elsewhere-1"], "emb": [np.ones(5, np.float32)]})
    path = tmp_path / "zoobot.parquet"
    pd.concat([frame, extra]).to_parquet(path)

    argv = import_emb(path, "--id-column", "objid", "--name", "Zoobot", "--activate")
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "5-d embeddings 'Zoobot' as encoder v0001" in out and "1 row(s)" in out
    version = ModelRegistry().get("encoder", "v0001")
    cfg = version.config
    assert cfg["kind"] == "imported_embeddings" and cfg["embedding_dim"] == 5
    assert cfg["source"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert cfg["source"]["name"] == "Zoobot" and cfg["source"]["dimension"] == 5
    np.testing.assert_array_equal(embeddings(home, "v0001"), vec)
    from backend.pipeline.runner import lineage

    record = lineage("tiny", "embeddings")  # recorded at import, not adopted later
    assert record is not None and record["version"] == "v0001" and not record["adopted"]

    assert main(["embed", "--survey", "tiny", "--model", "v0001"]) == 0  # already there
    assert "encoder v0001 (current)" in capsys.readouterr().out
    assert lineage("tiny", "embeddings") == record
    assert main(["index", "--survey", "tiny"]) == 0
    assert main(["search", "--survey", "tiny", "--id", ids[3], "-k", "1"]) == 0
    unit = vec / np.linalg.norm(vec, axis=1, keepdims=True)
    nearest = np.argsort(-(unit @ unit[3]))[1]  # cosine similarity
    assert ids[nearest] in capsys.readouterr().out.splitlines()[-1]


def test_parquet_numeric_columns_matched_by_position(
    tiny_survey: Survey, home: Path, tmp_path: Path
) -> None:
    vec = vectors_for(tiny_survey, dim=4)
    cat = tiny_survey.catalog
    frame = pd.DataFrame(vec, columns=[f"e{j}" for j in range(4)])
    frame.insert(0, "RA_deg", cat["ra"].to_numpy() + 0.1 / 3600)  # 0.1" off
    frame.insert(1, "Dec_deg", cat["dec"].to_numpy())
    path = tmp_path / "by_position.parquet"
    frame.iloc[::-1].to_parquet(path)
    argv = import_emb(
        path, "--match-radius", "1", "--ra-column", "RA_deg", "--dec-column", "Dec_deg"
    )
    assert main(argv) == 0
    np.testing.assert_allclose(embeddings(home, "v0001"), vec)


def test_npy_in_survey_order_and_with_ids_and_hdf5(
    tiny_survey: Survey, home: Path, tmp_path: Path
) -> None:
    vec = vectors_for(tiny_survey, dim=3)
    ids = tiny_survey.catalog["object_id"].tolist()
    np.save(tmp_path / "plain.npy", vec)
    assert main(import_emb(tmp_path / "plain.npy")) == 0
    np.testing.assert_array_equal(embeddings(home, "v0001"), vec)

    order = np.random.default_rng(2).permutation(150)
    np.save(tmp_path / "shuffled.npy", vec[order])
    (tmp_path / "ids.txt").write_text("\n".join(ids[i] for i in order) + "\n")
    assert main(import_emb(tmp_path / "shuffled.npy", "--ids", str(tmp_path / "ids.txt"))) == 0
    np.testing.assert_array_equal(embeddings(home, "v0002"), vec)

    with h5py.File(tmp_path / "emb.h5", "w") as h5:
        h5["object_id"] = np.array([ids[i].encode() for i in order])
        h5["features"] = vec[order].astype(np.float64)
    assert main(import_emb(tmp_path / "emb.h5")) == 0
    np.testing.assert_allclose(embeddings(home, "v0003"), vec)


def test_embeddings_refusals(
    tiny_survey: Survey, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vec = vectors_for(tiny_survey, dim=4)
    ids = tiny_survey.catalog["object_id"].tolist()

    def parquet(name: str, rows: list[str], values: np.ndarray) -> Path:
        path = tmp_path / name
        pd.DataFrame({"object_id": rows, "emb": list(values)}).to_parquet(path)
        return path

    short = parquet("short.parquet", ids[5:], vec[5:])
    assert_refused(import_emb(short), home, capsys, str(short),
                   "5 of the 150 objects of survey tiny have no vector", "tiny-0000")  # fmt: skip
    dupes = parquet("dupes.parquet", [*ids, ids[7]], np.vstack([vec, vec[:1]]))
    assert_refused(import_emb(dupes), home, capsys, str(dupes),
                   "1 id(s) appear more than once", "tiny-0007")  # fmt: skip
    bad = vec.copy()
    bad[9, 1], bad[11, 0] = np.nan, np.inf
    nan = parquet("nan.parquet", ids, bad)
    assert_refused(import_emb(nan), home, capsys, str(nan),
                   "2 vector(s) hold NaN or infinite", "tiny-0009, tiny-0011")  # fmt: skip
    ok = parquet("ok.parquet", ids, vec)
    assert_refused(import_emb(ok, "--embedding-dim", "8"), home, capsys, str(ok),
                   "4 dimensions, not 8")  # fmt: skip
    ragged = tmp_path / "ragged.parquet"
    pd.DataFrame({"object_id": ids, "emb": [v[: 3 + i % 2] for i, v in enumerate(vec)]}).to_parquet(
        ragged
    )
    assert_refused(import_emb(ragged), home, capsys, str(ragged), "different lengths")
    np.save(tmp_path / "short.npy", vec[:100])
    assert_refused(import_emb(tmp_path / "short.npy"), home, capsys,
                   "short.npy", "100 vectors for the 150 objects")  # fmt: skip
    far = tmp_path / "far.parquet"
    frame = pd.DataFrame(vec, columns=list("abcd")).assign(ra=10.0, dec=-30.0)
    frame.to_parquet(far)
    assert_refused(import_emb(far, "--match-radius", "1"), home, capsys, str(far),
                   "150 of the 150 objects", "no vector within 1.0\"")  # fmt: skip
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 nonsense")
    assert_refused(import_emb(broken), home, capsys, str(broken), "cannot read it as parquet")


def test_imported_embeddings_cannot_embed_new_images(
    tiny_survey: Survey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from backend.latent.embedder import encoder_embedder
    from backend.latent.errors import LatentError
    from backend.modelling.common import load_model
    from models.foreign_files import ForeignModelError

    np.save(tmp_path / "vectors.npy", vectors_for(tiny_survey))
    assert main(import_emb(tmp_path / "vectors.npy")) == 0
    with pytest.raises(LatentError, match="cannot embed new images"):
        encoder_embedder("v0001", tuple(tiny_survey.bands))
    model = load_model(ModelRegistry().get("encoder", "v0001"))
    with pytest.raises(ForeignModelError, match="cannot embed new images"):
        model.embed(pixels(tiny_survey)[:2])

    with SurveyWriter("other", ["g", "r", "i"], (16, 16), "test") as writer:
        writer.append(np.asarray(tiny_survey.images[:10]), tiny_survey.catalog.iloc[:10])
    assert main(["embed", "--survey", "other", "--model", "v0001"]) == 2
    assert "imported for survey 'tiny'" in capsys.readouterr().err
