"""The evaluation loop of `ssni eval`: groups of work → per-sample records, resumable and shardable.

The work is a list of groups (seed, chunk, method, attack) in a fixed order (seed → chunk → method → attack,
"none" = clean first). With the reference protocol's shared attacks (`Preset.attack_seeds == "shared"`), the
adversarial examples are made once, at the first seed, and every seed evaluates those same inputs (its spread is
purification randomness only); they are kept beside the records (`AdversarialStore`), so a resumed or sharded
run reuses them. With "per-seed" every seed attacks anew. A chunk is a fixed run of `batch_size` sample ids of
the protocol subset, so every group computes the same thing however the run is split: killed and resumed
(records.py), or sharded over torchrun ranks (distributed.py). Per group the backend returns, for every
sample, the prediction of the defended classifier, the t it used and the EPS score norm of its input (clean, or
adversarial after the attack; none for a constant t).

The models, purifier and attacks hide behind `Backend` (`ssni.eval.backend.ModelBackend`); the loop only
schedules and records (summaries are `ssni.eval.report`'s), so it is tested with a fake backend in seconds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from ssni.atomic_files import atomic_output
from ssni.eval.distributed import World
from ssni.eval.methods import Method
from ssni.eval.presets import AttackSpec, Preset
from ssni.eval.records import CLEAN, GroupKey, RecordWriter, ResultsLog, read_results, write_merged


@dataclass(frozen=True)
class DefenceOutput:
    """Per-sample outcome of one defended evaluation: predictions [B] int64, t [B] int64, score norms [B] float (None
    for a defence that does not compute them, e.g. a constant t)."""

    pred: Tensor
    t: Tensor
    score_norm: Tensor | None


class Backend(Protocol):
    """What the loop needs of the models (see `ssni.eval.backend.ModelBackend`)."""

    network_calls: int  # forward passes of the diffusion network so far
    samples_evaluated: int  # per-sample network evaluations so far (Σ of the batch sizes of those passes)

    def evaluate(self, method: Method, x: Tensor, *, seed: int, sample_ids: Tensor) -> DefenceOutput:
        """Purify x with `method` and classify (no grad)."""
        ...

    def attack(
        self,
        method: Method,
        attack: AttackSpec,
        x: Tensor,
        y: Tensor,
        *,
        seed: int,
        sample_ids: Tensor,
        on_iteration: Callable[[int], None] | None = None,
    ) -> Tensor:
        """Adversarial examples [B, ...] against `method`'s defence (adaptive for SSNI)."""
        ...


@dataclass(frozen=True)
class EvalData:
    """The evaluation subset: images [N, C, H, W] in [0, 1], labels [N] int64, sample ids [N] int64."""

    images: Tensor
    labels: Tensor
    sample_ids: Tensor

    def chunk(self, index: int, size: int) -> EvalData:
        s = slice(index * size, (index + 1) * size)
        return EvalData(self.images[s], self.labels[s], self.sample_ids[s])

    def num_chunks(self, size: int) -> int:
        return -(-self.labels.shape[0] // size)


@dataclass(frozen=True)
class EvalConfig:
    """One evaluation: the preset (after overrides) and what else decides the results (checkpoint identities)."""

    preset: Preset
    out: Path
    identities: dict[str, str] = dataclasses.field(default_factory=dict)
    overwrite: bool = False
    progress: bool = True
    save_adversarial: bool = False  # keep the adversarial examples also when every seed attacks anew

    def plan(self, num_chunks: int) -> list[GroupKey]:
        """Every group of the run, in the order a single process runs them."""
        p = self.preset
        attacks = [CLEAN, *(a.name for a in p.attacks)]
        methods = [str(m) for m in p.methods]
        return [GroupKey(s, c, m, a) for s in p.seeds for c in range(num_chunks) for m in methods for a in attacks]

    def record_config(self, num_groups: int) -> dict:
        """What the results header stores and hashes: everything that changes a record."""
        return {"preset": self.preset.to_record(), "identities": self.identities, "num_groups": num_groups}


def adversarial_folder(out: Path, config_hash: str) -> Path:
    """Where the adversarial examples of the records file `out` (of configuration `config_hash`) are kept."""
    return Path(out).with_name(Path(out).name + ".adversarial") / config_hash


class AdversarialStore:
    """Adversarial examples of finished attack groups, one safetensors file per group in `folder` (named by the
    records' configuration hash, so another configuration never reads them). Writes are atomic."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def _path(self, key: GroupKey) -> Path:
        return self.folder / f"seed{key.seed}-chunk{key.chunk}-{key.method}-{key.attack}.safetensors"

    def save(self, key: GroupKey, x_adv: Tensor, sample_ids: Tensor) -> None:
        from safetensors.torch import save_file

        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_output(self._path(key)) as tmp:
            save_file({"x_adv": x_adv.detach().cpu().contiguous(), "sample_ids": sample_ids.cpu().contiguous()}, tmp)

    def load(self, key: GroupKey, sample_ids: Tensor) -> Tensor | None:
        """The stored x_adv of `key` (None when there is none); its sample ids must be `sample_ids`."""
        from safetensors.torch import load_file

        path = self._path(key)
        if not path.is_file():
            return None
        stored = load_file(path)
        if not torch.equal(stored["sample_ids"], sample_ids.cpu()):
            raise RuntimeError(f"{path} holds other samples than group {key}")
        return stored["x_adv"]


def _records(data: EvalData, out: DefenceOutput, x_adv: Tensor | None) -> list[dict]:
    rows = []
    for i in range(data.labels.shape[0]):
        row = {
            "sample_id": int(data.sample_ids[i]),
            "label": int(data.labels[i]),
            "pred": int(out.pred[i]),
            "correct": bool(out.pred[i] == data.labels[i]),
            "t": int(out.t[i]),
            "score_norm": None if out.score_norm is None else float(out.score_norm[i]),
        }
        if x_adv is not None:
            delta = (x_adv[i] - data.images[i]).flatten().double()
            row["perturbation_linf"] = float(delta.abs().max())
            row["perturbation_l2"] = float(delta.norm())
        rows.append(row)
    return rows


def attack_seed(preset: Preset, seed: int) -> int:
    """The seed whose attack an evaluation at `seed` uses: the first seed when attacks are shared."""
    return preset.seeds[0] if preset.attack_seeds == "shared" else seed


def run_group(
    backend: Backend,
    preset: Preset,
    key: GroupKey,
    data: EvalData,
    on_iteration=None,
    store: AdversarialStore | None = None,
) -> list[dict]:
    """Compute one group's records (clean evaluation, or attack then evaluation of the adversarial inputs). With a
    store, the attack seed's adversarial examples are saved and reused by the other seeds."""
    x_adv = None
    x = data.images
    method = preset.method(key.method)
    if key.attack != CLEAN:
        source = dataclasses.replace(key, seed=attack_seed(preset, key.seed))
        x_adv = None if store is None else store.load(source, data.sample_ids)
        if x_adv is None:
            spec = next(a for a in preset.attacks if a.name == key.attack)
            x_adv = backend.attack(
                method, spec, x, data.labels, seed=source.seed, sample_ids=data.sample_ids, on_iteration=on_iteration
            )
            if store is not None:
                store.save(source, x_adv, data.sample_ids)
        x = x_adv
    with torch.no_grad():
        out = backend.evaluate(method, x, seed=key.seed, sample_ids=data.sample_ids)
    return _records(data, out, x_adv)


def _group_cost(preset: Preset, key: GroupKey) -> int:
    """Progress units: 1 for an evaluation, plus 1 per attack iteration (attacks run at their attack seed only)."""
    if key.attack == CLEAN or attack_seed(preset, key.seed) != key.seed:
        return 1
    return 1 + next(a.iterations for a in preset.attacks if a.name == key.attack)


def run_eval(
    config: EvalConfig, backend: Backend, data: EvalData, world: World = World(), log: Callable[[str], None] = print
) -> ResultsLog | None:
    """Run (or resume) every group this rank owns, then merge (rank 0) and return the final records. Others
    return None."""
    preset = config.preset
    n_chunks = data.num_chunks(preset.batch_size)
    plan = config.plan(n_chunks)
    record_config = config.record_config(len(plan))
    writer = RecordWriter(world.shard_path(config.out), record_config, overwrite=config.overwrite)
    mine = [k for k in plan if world.owns(k.chunk)]
    todo = [k for k in mine if k not in writer.done]
    if len(todo) < len(mine) and world.is_main:
        log(f"resuming {config.out}: {len(mine) - len(todo)} of {len(mine)} groups already done")
    bar = _progress(config, preset, mine, todo, world)
    store = None
    if preset.attack_seeds == "shared" or config.save_adversarial:
        store = AdversarialStore(adversarial_folder(config.out, writer.header["config_hash"]))
    for key in todo:
        calls, evaluated = backend.network_calls, backend.samples_evaluated
        chunk = data.chunk(key.chunk, preset.batch_size)
        bar.set_postfix_str(f"seed {key.seed} chunk {key.chunk} {key.method} {key.attack}", refresh=False)
        records = run_group(backend, preset, key, chunk, on_iteration=lambda _k: bar.update(1), store=store)
        extra = {} if key.attack == CLEAN else {"attack_seed": attack_seed(preset, key.seed)}
        writer.append_group(
            key,
            records,
            network_calls=backend.network_calls - calls,
            samples_evaluated=backend.samples_evaluated - evaluated,
            **extra,
        )
        bar.update(1)
    bar.close()
    world.barrier()
    if not world.is_main:
        return None
    if world.size > 1:
        shards = [dataclasses.replace(world, rank=r).shard_path(config.out) for r in range(world.size)]
        return write_merged(config.out, writer.header, [read_results(p) for p in shards], plan)
    return read_results(config.out)


def _progress(config: EvalConfig, preset: Preset, mine: list[GroupKey], todo: list[GroupKey], world: World):
    from tqdm.auto import tqdm

    total = sum(_group_cost(preset, k) for k in mine)
    done = total - sum(_group_cost(preset, k) for k in todo)
    return tqdm(
        total=total,
        initial=done,
        desc=f"ssni eval {preset.name}" + (f" [rank {world.rank}]" if world.size > 1 else ""),
        unit="step",
        disable=not config.progress,
        smoothing=0.05,
        mininterval=1.0,
        position=world.rank,
    )
