"""`hardware: ray` as far as LLaMA-Factory 0.9.5's Ray path runs without GPUs.

Proven here for real: the rendered `ray_init_kwargs` start a local Ray cluster (or name an existing one),
LLaMA-Factory's own placement group for the workers is satisfied by those resources (with the cluster's GPUs
declared as logical resources), and each worker gets LLaMA-Factory's rank environment. Also proven: on a
machine without a GPU that placement group can never start (LLaMA-Factory asks 10 CPUs per CPU), which is why
`factory-kit train` refuses `hardware: ray` there. Not run here: training inside the Ray workers (needs GPUs;
docs/scale.md says so).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from factory_kit.cli import main
from factory_kit.recipe import checks
from factory_kit.recipe.render import render

pytest.importorskip("ray")

PROBE = r"""
import json, sys, os
from unittest import mock
import ray
kwargs, workers = json.loads(sys.argv[1]), int(sys.argv[2])
ray.init(**kwargs, include_dashboard=False, log_to_driver=False)
import llamafactory.train.trainer_utils as tu
from ray.exceptions import GetTimeoutError
out = {"resources": {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}}
with mock.patch.object(tu, "get_device_name", return_value="gpu"):  # the GPU cluster the kwargs declare
    total = int(ray.cluster_resources().get("GPU", 0))
    pg, bundle = tu.get_placement_group(total)
    ray.get(pg.ready(), timeout=60)
    out["bundle"], out["bundles"] = bundle, pg.bundle_count
    order = tu.sort_placement_group_by_node_ip(pg)
    configs = [tu.get_ray_remote_config_for_worker(pg, order[r], r, workers, "127.0.0.1", "29500", {})
               for r in range(workers)]
    @ray.remote
    def rank_env():
        return {k: os.environ[k] for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR")}
    out["workers"] = ray.get([rank_env.options(**{k: v for k, v in c.items() if k != "num_gpus"},
                                              num_gpus=c.get("num_gpus", 0)).remote() for c in configs])
    ray.util.remove_placement_group(pg)
cpu_pg, cpu_bundle = tu.get_placement_group(int(ray.cluster_resources()["CPU"]))  # what a GPU-less launch asks
try:
    ray.get(cpu_pg.ready(), timeout=3)
    out["cpu_pg"] = "ready"
except GetTimeoutError:
    out["cpu_pg"] = "never ready"
out["cpu_bundle"] = cpu_bundle
print("PROBE " + json.dumps(out))
ray.shutdown()
"""


def test_rendered_ray_arguments(registry_project):
    out = render("recipes/tcm-lora.yaml", ["hardware=ray", "nodes.ray_workers=4", "nodes.gpus_per_node=4"],
                 write=False)
    train = out.configs["train.yaml"]
    assert out.env == {"USE_RAY": "1"}
    assert train["ray_num_workers"] == 4 and train["ray_init_kwargs"] == {"num_cpus": 40, "num_gpus": 4}
    joined = render("recipes/tcm-lora.yaml", ["hardware=ray", "nodes.ray_address=ray://10.0.0.5:10001"],
                    write=False).configs["train.yaml"]
    assert joined["ray_init_kwargs"] == {"address": "ray://10.0.0.5:10001"}


def test_ray_without_a_gpu_is_refused_before_launch(registry_project, monkeypatch):
    """LLaMA-Factory's Ray path waits forever on a GPU-less machine: `check` warns, `train` refuses."""
    monkeypatch.setattr(checks, "_maybe_gpu", lambda confirm: False)
    result = CliRunner().invoke(main, ["check", "recipes/tcm-lora.yaml", "--set", "hardware=ray"])
    assert result.exit_code == 0 and "`hardware: ray` needs a GPU on the machine" in result.output
    result = CliRunner().invoke(main, ["train", "recipes/tcm-lora.yaml", "--set", "hardware=ray"])
    assert result.exit_code != 0 and "would wait forever" in result.output
    assert "hardware: ddp" in " ".join(result.output.split())


def test_local_ray_cluster_places_the_workers(registry_project):
    """A real local Ray cluster from the rendered kwargs; LLaMA-Factory's placement and worker config."""
    out = render("recipes/tcm-lora.yaml", ["hardware=ray", "nodes.ray_workers=2", "nodes.gpus_per_node=2"],
                 write=False)
    train = out.configs["train.yaml"]
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(train["ray_init_kwargs"]),
                           str(train["ray_num_workers"])], capture_output=True, text=True, timeout=240,
                          env={**__import__("os").environ, "RAY_AUTH_MODE": "disabled"})
    line = next((x for x in proc.stdout.splitlines() if x.startswith("PROBE ")), None)
    assert line, proc.stdout[-2000:] + proc.stderr[-3000:]
    probe = json.loads(line[6:])
    assert probe["resources"] == {"CPU": 20.0, "GPU": 2.0}
    assert probe["bundle"] == {"CPU": 10, "GPU": 1} and probe["bundles"] == 2
    assert sorted(w["RANK"] for w in probe["workers"]) == ["0", "1"]
    assert {w["WORLD_SIZE"] for w in probe["workers"]} == {"2"}
    # without a GPU LLaMA-Factory asks {CPU: 10} per CPU of the cluster: 200 CPUs of 20, never placed
    assert probe["cpu_bundle"] == {"CPU": 10} and probe["cpu_pg"] == "never ready"
