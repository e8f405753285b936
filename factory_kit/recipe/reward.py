"""`reward_model:` for stages that score with one (`stage: ppo`): which folder, which kind.

A recipe names its reward model in one of three ways:

- a reward-model recipe (``tcm-rm.yaml``, a `stage: rm` recipe): looked up next to the recipe
  (like ``extends``), then in the project; resolved to that recipe's ``output_dir``, so the
  two recipes stay in step. It need not be trained yet to render; `factory-kit train`
  checks that it is (:func:`missing`) before it launches.
- a trained reward model folder (relative to the project, like ``model``): a LoRA adapter
  (``adapter_config.json``) or a full model (``config.json``), with LLaMA-Factory's value head.
- an ``http(s)://`` URL: a reward model served as an API (``reward_model_type: api``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from factory_kit.core import paths
from factory_kit.core.errors import FactoryKitError
from factory_kit.recipe import catalog
from factory_kit.recipe import load as recipe_mod

VALUE_HEADS = ("value_head.safetensors", "value_head.bin")  # what LLaMA-Factory's rm stage saves


@dataclass(frozen=True)
class RewardModel:
    path: str  # train.yaml's `reward_model`: a project-relative folder, or a URL
    type: str  # `reward_model_type`: lora | full | api
    recipe: str | None = None  # the rm recipe (relative to the project), when named by recipe

    @property
    def marker(self) -> str:
        return "adapter_config.json" if self.type == "lora" else "config.json"


def resolve(r: recipe_mod.Recipe, project: Path) -> RewardModel | None:
    """The recipe's reward model, checked as far as is possible before training; None without one."""
    value, stage = r.data.get("reward_model"), catalog.stages()[r.data["stage"]]
    where = r.where("reward_model")
    if not stage.reward_model:
        if value:
            raise FactoryKitError(f"{where}: `reward_model` is used only by stages that score with one "
                                  f"(`factory-kit ls stages`); `stage: {stage.name}` does not: remove it")
        return None
    if not value:
        raise FactoryKitError(f"{where}: `stage: {stage.name}` needs `reward_model`: a reward-model recipe (e.g. "
                              f"`reward_model: tcm-rm.yaml`, a `stage: {stage.reward_model}` recipe), or a trained "
                              "reward model folder")
    if value.startswith(("http://", "https://")):
        return RewardModel(value, "api")
    if value.endswith((".yaml", ".yml")):
        return _from_recipe(r, value, project, where, stage)
    folder = Path(value).expanduser()
    folder = folder if folder.is_absolute() else project / folder
    if not folder.is_dir():
        raise FactoryKitError(f"{where}: `reward_model: {value}` not found ({folder} is not a folder); name a "
                              "reward-model recipe (`tcm-rm.yaml`) or the folder its training wrote")
    kind = "lora" if (folder / "adapter_config.json").is_file() else "full"
    if kind == "full" and not (folder / "config.json").is_file():
        raise FactoryKitError(f"{where}: `reward_model: {value}` holds no adapter_config.json or config.json: "
                              "not a trained model")
    if not any((folder / name).is_file() for name in VALUE_HEADS):
        raise FactoryKitError(f"{where}: `reward_model: {value}` has no value head ({VALUE_HEADS[0]}): not a "
                              f"reward model; train one with a `stage: {stage.reward_model}` recipe")
    return RewardModel(paths.relative(folder, project), kind)


def _from_recipe(r: recipe_mod.Recipe, value: str, project: Path, where: str, stage: catalog.Stage) -> RewardModel:
    # like `extends`: relative to the file that set the key (a parent recipe, say), then to this
    # recipe, then the project's recipes/ folder and the project itself
    origin = r.origins.get("reward_model")
    setter = next((p for p in r.chain if origin in (str(p), recipe_mod.display_path(p))), r.path)
    candidates = [setter.parent / value, r.path.parent / value, project / "recipes" / value, project / value]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        looked = " and ".join(dict.fromkeys(str(p) for p in candidates))
        raise FactoryKitError(f"{where}: `reward_model: {value}` not found (looked for {looked}); name a "
                              f"reward-model recipe (`stage: {stage.reward_model}`) next to this one, or a trained "
                              "reward model folder")
    rm = recipe_mod.load(found)
    if rm.data["stage"] != stage.reward_model:
        raise FactoryKitError(f"{where}: `reward_model: {value}` is a `stage: {rm.data['stage']}` recipe; name a "
                              f"`stage: {stage.reward_model}` recipe (it trains the reward model that scores the "
                              "rollouts)")
    adapter = catalog.methods()[rm.data["method"]].adapter
    if adapter and rm.data["model"] != r.data["model"]:
        raise FactoryKitError(
            f"{where}: `reward_model: {value}` trains a LoRA adapter on {rm.data['model']}, but PPO loads it onto "
            f"this recipe's model {r.data['model']}: use the same `model` in both recipes, or train the reward "
            "model with `method: full`")
    output_dir = rm.data["output_dir"] or str((paths.outputs_dir(project) / rm.name).relative_to(project))
    return RewardModel(output_dir, "lora" if adapter else "full", paths.relative(found, project))


def missing(reward: RewardModel | None, project: Path) -> str | None:
    """Why the reward model cannot be used yet (its recipe has not been trained), or None."""
    if reward is None or reward.type == "api" or reward.recipe is None:
        return None
    folder = project / reward.path
    if (folder / reward.marker).is_file() and any((folder / name).is_file() for name in VALUE_HEADS):
        return None
    return (f"{reward.path}: no trained reward model here yet (the `reward_model` recipe {reward.recipe} writes it); "
            f"train it first: `factory-kit train {reward.recipe}`")
