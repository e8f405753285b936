"""`chat`/`serve`/`eval --merged` refuse a merged model that was not merged from the adapter now in
output_dir (after `train --resume` or a new run), with one line saying to export again."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from factory_kit.cli import main
from factory_kit.core.errors import FactoryKitError
from factory_kit.run import launch, model, records


@pytest.fixture
def exported(registry_project):
    out = registry_project / "outputs" / "demo-tiny"
    (out / "merged").mkdir(parents=True)
    (out / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    (out / "adapter_model.safetensors").write_bytes(b"adapter v1")
    (out / "merged" / "config.json").write_text("{}")
    records.write_merged_marker(out / "merged", out)
    return out


def test_a_merge_of_the_current_adapter_is_used(exported, monkeypatch):
    calls = []
    monkeypatch.setattr(launch, "llamafactory", lambda *a, **k: calls.append(a))
    model.serve("recipes/demo-tiny.yaml", merged=True)
    assert calls and str(calls[0][1]).endswith("infer-merged.yaml")


def test_a_merge_of_an_older_adapter_is_refused(exported, monkeypatch):
    (exported / "adapter_model.safetensors").write_bytes(b"adapter v2, after train --resume")
    monkeypatch.setattr(launch, "llamafactory", lambda *a, **k: pytest.fail("launched a stale merged model"))
    with pytest.raises(FactoryKitError, match=r"merged model is older than the adapter in outputs/demo-tiny; "
                                              r"run `factory-kit export recipes/demo-tiny.yaml`"):
        model.serve("recipes/demo-tiny.yaml", merged=True)
    result = CliRunner().invoke(main, ["chat", "recipes/demo-tiny.yaml", "--merged", "-q", "hi"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "merged model is older than the adapter" in result.output
    result = CliRunner().invoke(main, ["eval", "recipes/demo-tiny.yaml", "--merged"])
    assert result.exit_code == 2 and "merged model is older than the adapter" in result.output, result.output
    calls = []  # base + adapter (no --merged) uses the new adapter as it is
    monkeypatch.setattr(launch, "llamafactory", lambda *a, **k: calls.append(a))
    model.serve("recipes/demo-tiny.yaml")
    assert str(calls[0][1]).endswith("infer.yaml")
