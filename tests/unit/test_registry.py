"""Model registry: versions are immutable, saves atomic, active pointers per survey."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from backend import registry as registry_module
from backend.registry import ModelRegistry, RegistryError


def _state(value: float) -> dict[str, torch.Tensor]:
    return {"weight": torch.full((3, 2), value), "bias": torch.zeros(3)}


def test_save_load_round_trip_records_provenance(home: Path) -> None:
    reg = ModelRegistry()
    saved = reg.save(
        "encoder",
        _state(1.5),
        {"arch": "resnet-tiny", "bands": ["g", "r"]},
        survey="demo",
        metrics={"loss": 0.25},
        training={"epochs": 3, "augment": {"rotate": True}},
    )
    assert saved.version == "v0001"
    loaded = reg.get("encoder", "v0001")
    assert loaded.config == {"arch": "resnet-tiny", "bands": ["g", "r"]}
    assert loaded.metrics == {"loss": 0.25}
    assert loaded.meta["survey"] == "demo" and loaded.meta["parent"] is None
    assert loaded.meta["training"]["augment"] == {"rotate": True}
    assert loaded.meta["code_version"].startswith("0.1.0")
    assert loaded.meta["created"]
    torch.testing.assert_close(loaded.load_state()["weight"], torch.full((3, 2), 1.5))
    second = reg.save("encoder", _state(2.0), {}, survey="demo", parent="v0001")
    assert second.version == "v0002" and second.meta["parent"] == "v0001"
    assert [v.version for v in reg.list("encoder")] == ["v0001", "v0002"]
    assert reg.latest("encoder").version == "v0002"
    assert reg.latest("classifier") is None


def test_killed_save_leaves_previous_versions_usable(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = ModelRegistry()
    reg.save("classifier", _state(1.0), {"n": 1}, survey="demo")

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(registry_module.ModelRegistry, "_claim_version", crash)
    with pytest.raises(OSError, match="disk full"):
        reg.save("classifier", _state(9.0), {"n": 2}, survey="demo")
    assert [v.version for v in reg.list("classifier")] == ["v0001"]
    assert sorted(p.name for p in (home / "models" / "classifier").iterdir()) == ["v0001"]
    torch.testing.assert_close(
        reg.get("classifier", "v0001").load_state()["weight"], _state(1.0)["weight"]
    )


def test_active_versions_per_survey_and_kind(home: Path) -> None:
    reg = ModelRegistry()
    v1 = reg.save("encoder", _state(1.0), {}, survey="demo")
    v2 = reg.save("encoder", _state(2.0), {}, survey="demo")
    c1 = reg.save("classifier", _state(3.0), {}, survey="demo")
    assert reg.active("demo", "encoder") is None
    reg.set_active("demo", "encoder", v1.version)
    reg.set_active("demo", "classifier", c1.version)
    reg.set_active("other", "encoder", v2.version)
    assert reg.active("demo", "encoder").version == "v0001"
    assert reg.active_versions("demo") == {"encoder": "v0001", "classifier": "v0001"}
    assert reg.active("other", "encoder").version == "v0002"
    with pytest.raises(RegistryError, match="no encoder version 'v0009'"):
        reg.set_active("demo", "encoder", "v0009")
    assert reg.active("demo", "encoder").version == "v0001"


def test_unknown_kind_and_version_are_named(home: Path) -> None:
    reg = ModelRegistry()
    with pytest.raises(RegistryError, match="unknown model kind 'gan'"):
        reg.list("gan")
    with pytest.raises(RegistryError, match=r"no emulator version '\.\./x' \(known: none\)"):
        reg.get("emulator", "../x")


def test_list_filters_by_survey(home: Path) -> None:
    reg = ModelRegistry()
    reg.save("emulator", _state(1.0), {}, survey="a")
    reg.save("emulator", _state(1.0), {}, survey="b")
    assert [v.meta["survey"] for v in reg.list("emulator", survey="b")] == ["b"]
    assert len(reg.list()) == 2


def test_versions_of_a_job_are_hidden_unless_it_succeeds(home: Path) -> None:
    from backend.registry import job_scope

    reg = ModelRegistry()
    shown = reg.save("classifier", _state(1.0), {}, survey="demo")
    with job_scope(7):
        orphan = reg.save("classifier", _state(2.0), {}, survey="demo")
    assert orphan.meta["job"] == 7 and reg.job_versions(7) == {"classifier": orphan.version}
    assert [v.version for v in reg.list("classifier")] == [shown.version]  # its job still runs
    assert reg.settle_job(7, "failed") == {"classifier": orphan.version}
    assert [v.version for v in reg.list("classifier", "demo")] == [shown.version]
    assert len(reg.list("classifier", hidden=True)) == 2  # kept on disk, marked failed
    with pytest.raises(RegistryError, match="job 7, which failed: it cannot be activated"):
        reg.set_active("demo", "classifier", orphan.version)
    with job_scope(8):
        good = reg.save("classifier", _state(3.0), {}, survey="demo")
    reg.settle_job(8, "succeeded")
    assert good.version == "v0003"  # a failed version's number is never reused
    assert [v.version for v in reg.list("classifier")] == [shown.version, good.version]


def test_an_activation_inside_a_job_checks_the_job_last(home: Path) -> None:
    from backend.registry import job_scope

    reg = ModelRegistry()
    first = reg.save("classifier", _state(1.0), {}, survey="demo")
    reg.set_active("demo", "classifier", first.version)

    def cancelled() -> None:
        raise RuntimeError("job 3 cancelled")

    with job_scope(3, cancelled):
        refused = reg.save("classifier", _state(2.0), {}, survey="demo")
        with pytest.raises(RuntimeError, match="cancelled"):
            reg.set_active("demo", "classifier", refused.version)
    assert reg.active_versions("demo") == {"classifier": first.version}
    checked: list[int] = []
    with job_scope(4, lambda: checked.append(4)):
        switched = reg.save("classifier", _state(3.0), {}, survey="demo")
        reg.set_active("demo", "classifier", switched.version)
    assert checked == [4] and reg.active_versions("demo") == {"classifier": switched.version}
    listed = [v.version for v in reg.list("classifier")]
    assert listed == [first.version, switched.version]  # shown as soon as it is active
    reg.settle_job(4, "failed")  # whatever happens after the switch, an active version shows
    assert [v.version for v in reg.list("classifier")] == listed
