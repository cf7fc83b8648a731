"""DDP for a GAN: one DistributedDataParallel per network instead of one for the module.

Lightning's ``DDPStrategy`` wraps the whole LightningModule in one DDP. A GAN step
backpropagates through one network only (D's loss sees G's output detached, G's loss
runs D with frozen weights), so that single wrapper finds unused parameters in every
backward: it fails, or needs ``find_unused_parameters=True``, which walks the autograd
graph after every forward and needs ``manual_backward`` (benchmarks/ddp.py measures both).
Here the generator and the discriminator get a wrapper each, as stylegan2-ada does, and
``GAN`` calls the wrapper of the network it steps (``GAN.ddp_nets``), so each backward
reduces exactly one wrapper's gradients, all of which it produced.

Everything else stays Lightning's: launching processes, the DistributedSampler, rank-0
checkpoint writes, barriers, the precision plugin, and ``sync_batchnorm`` (converted on
the whole module before wrapping). What this strategy adds:

- buffers: the wrappers do not broadcast buffers before every forward
  (``broadcast_buffers=False``); every buffer of the module (BatchNorm statistics of G,
  D and the EMA generator) is broadcast from rank 0 once per training batch instead.
  Rank 0's statistics are the ones it saves and draws sample grids with; syncing after
  the batch costs one collective per dtype per batch rather than one per forward, and
  every rank holds the same networks whenever a callback runs (the metrics callback
  samples on every rank).
- noise: once wrapped, each rank re-seeds its training noise with
  ``seed * world_size + rank`` (weights are already identical: DDP broadcast them), and
  checkpoints keep every rank's random state, so a resumed run continues each stream.
- a cross-rank weight check at the end of fit (``check_consistency``).
- Hydra: child processes re-run this *job* (its overrides, in its run directory), not
  the whole command line, so ``-m`` sweeps and Optuna searches of DDP jobs work.
"""

from __future__ import annotations

import inspect
import os
import sys
from typing import Any
from unittest import mock

import torch
import torch.distributed as dist
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers import subprocess_script
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch.nn.parallel import DistributedDataParallel

from ganforge.distributed import broadcast_buffers_, check_ddp_consistency, rank_seed

# what Lightning's launcher exports in the process that starts the others
LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
LAUNCHED_MARK = "GANFORGE_DDP_LAUNCHED"
# torch 2.14 renamed DDP's broadcast_buffers (kept, deprecated) to forward_sync_buffers
_NO_FORWARD_BUFFER_SYNC = (
    "forward_sync_buffers"
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    else "broadcast_buffers"
)


class GANDDPStrategy(DDPStrategy):
    """``DDPStrategy`` that wraps ``module.generator`` and ``module.discriminator`` separately.

    Args:
        check_consistency: after fit, compare every parameter and buffer with rank 0's
            and raise if any differs.
        **kwargs: as ``DDPStrategy``; DDP constructor arguments (``bucket_cap_mb``,
            ``gradient_as_bucket_view``, ...) go to both wrappers.
    """

    def __init__(self, *args: Any, check_consistency: bool = True, **kwargs: Any) -> None:
        if not {"broadcast_buffers", "forward_sync_buffers"} & kwargs.keys():
            kwargs[_NO_FORWARD_BUFFER_SYNC] = False  # synced once per batch instead (module docstring)
        super().__init__(*args, **kwargs)
        self.check_consistency = check_consistency
        self._rank_rng: dict[str, Any] | None = None

    # ------------------------------------------------------------------ wrapping
    def setup(self, trainer) -> None:
        super().setup(trainer)
        if trainer.state.fn == TrainerFn.FITTING:
            self._seed_rank_noise()

    def configure_ddp(self) -> None:
        module = self.lightning_module
        if not (hasattr(module, "generator") and hasattr(module, "discriminator")):
            raise TypeError(
                f"{type(self).__name__} trains a GAN; {type(module).__name__} has no generator/discriminator"
            )
        # every tensor of rank 0 (the EMA generator too, which no wrapper owns)
        from lightning.pytorch.overrides.distributed import _sync_module_states

        _sync_module_states(module)
        module.ddp_nets = (self._setup_model(module.generator), self._setup_model(module.discriminator))
        if self.root_device.type == "cuda" and self._ddp_comm_hook is not None:
            from lightning.pytorch.overrides.distributed import _register_ddp_comm_hook

            for wrapper in module.ddp_nets:
                _register_ddp_comm_hook(
                    model=wrapper,
                    ddp_comm_state=self._ddp_comm_state,
                    ddp_comm_hook=self._ddp_comm_hook,
                    ddp_comm_wrapper=self._ddp_comm_wrapper,
                )

    def training_step(self, *args: Any, **kwargs: Any):
        out = super().training_step(*args, **kwargs)
        broadcast_buffers_(self.lightning_module)
        return out

    # ------------------------------------------------------------------ noise
    def _seed_rank_noise(self) -> None:
        # After wrapping (weights are rank 0's everywhere) and after a checkpoint's state was
        # loaded, but before Lightning first iterates the data loader, which draws from the
        # global stream: a resumed run then draws what the uninterrupted run drew.
        if self.world_size < 2:
            return
        if self._rank_rng is not None:  # resumed: this rank's own stream, where it stopped
            torch.set_rng_state(self._rank_rng["torch"])
            if self._rank_rng["cuda"] is not None and self.root_device.type == "cuda":
                torch.cuda.set_rng_state(self._rank_rng["cuda"], self.root_device)
        elif os.environ.get("PL_GLOBAL_SEED") is not None:
            # torch.manual_seed, not seed_everything: PL_GLOBAL_SEED must stay the same on
            # every rank (the DistributedSampler and data.on_device shuffle with it)
            torch.manual_seed(rank_seed(int(os.environ["PL_GLOBAL_SEED"]), self.global_rank, self.world_size))

    def save_checkpoint(self, checkpoint: dict, filepath, storage_options: Any | None = None) -> None:
        # called on every rank; rank 0 writes what all of them hold
        state = {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(self.root_device) if self.root_device.type == "cuda" else None,
        }
        if dist.is_available() and dist.is_initialized():
            states: list[Any] = [None] * self.world_size
            dist.all_gather_object(states, state)
            checkpoint["ganforge_ddp"] = {"world_size": self.world_size, "rng": states}
        super().save_checkpoint(checkpoint, filepath, storage_options=storage_options)

    def load_checkpoint(self, checkpoint_path, weights_only: bool | None = None) -> dict:
        checkpoint = super().load_checkpoint(checkpoint_path, weights_only=weights_only)
        saved = checkpoint.get("ganforge_ddp")
        if saved and saved["world_size"] == self.world_size:
            self._rank_rng = saved["rng"][self.global_rank]
        elif self.world_size > 1:
            rank_zero_info(
                "the checkpoint holds no random state for this world size: each rank's noise is re-seeded"
            )
        return checkpoint

    # ------------------------------------------------------------------ end of fit
    def on_train_end(self) -> None:
        super().on_train_end()
        if self.check_consistency and self.world_size > 1:
            differing = check_ddp_consistency(self.lightning_module)
            if differing:
                raise RuntimeError(f"DDP ranks hold different weights after training: {differing[:10]}")

    def teardown(self) -> None:
        module = self.lightning_module
        if module is not None and getattr(module, "ddp_nets", None) is not None:
            module.ddp_nets = None  # plain nets again; the wrappers hold the process group
        super().teardown()

    def _configure_launcher(self) -> None:
        # the Trainer calls this once devices and sync_batchnorm are known: fail before any launch
        devices = self.parallel_devices or []
        if self._layer_sync is not None and any(d.type == "cpu" for d in devices):
            raise ValueError(
                "trainer.sync_batchnorm=true needs GPUs: torch's SyncBatchNorm does not run on the CPU. "
                "Set trainer.sync_batchnorm=false (each rank then normalises its own batch)."
            )
        super()._configure_launcher()
        if isinstance(self._launcher, subprocess_script._SubprocessScriptLauncher):
            self._launcher = _HydraJobLauncher(self.cluster_environment, self.num_processes, self.num_nodes)


# ---------------------------------------------------------------------- launching under Hydra
def _config_options(argv: list[str]) -> list[str]:
    """``--config-path``/``--config-dir`` options (and their values) of a Hydra command line."""
    names = ("--config-path", "-cp", "--config-dir", "-cd")
    out = []
    for i, arg in enumerate(argv):
        if arg in names and i + 1 < len(argv):
            out += [arg, argv[i + 1]]
        elif arg.split("=", 1)[0] in names and "=" in arg:
            out.append(arg)
    return out


def hydra_job_command(local_rank: int) -> tuple[list[str], str]:
    """The command that runs the current Hydra *job* again as ``local_rank``, and its cwd.

    Lightning re-runs ``sys.argv`` with the run directory appended: from a ``-m`` sweep
    (or an Optuna search, which sets ``hydra.mode=MULTIRUN`` in config) every child would
    start the whole sweep again, in a directory of its own (Lightning issue #11300, Hydra
    issue #2070). A child must run this job: its overrides, in RUN mode, in its directory.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd, to_absolute_path

    import __main__

    hc = HydraConfig.get()
    if __main__.__spec__ is None:
        command = [sys.executable, to_absolute_path(sys.argv[0])]
    else:
        command = [sys.executable, "-m", __main__.__spec__.name]
    ours = {
        "hydra.mode": "RUN",
        "hydra.run.dir": f'"{hc.runtime.output_dir}"',
        "hydra.output_subdir": "null",  # rank 0 wrote .hydra/
        "hydra.job.name": f"train_ddp_process_{local_rank}",
    }
    if "file" in (hc.job_logging.get("handlers") or {}):
        # the log file is rank 0's; the other ranks log to the console only
        handlers = [h for h in hc.job_logging.get("root", {}).get("handlers") or [] if h != "file"]
        ours["hydra.job_logging.root.handlers"] = f"[{','.join(handlers)}]"
    inherited = [o for o in hc.overrides.hydra if o.split("=", 1)[0] not in ours]
    command += [*_config_options(sys.argv[1:]), f"--config-name={hc.job.config_name}"]
    command += [*inherited, *hc.overrides.task, *(f"{k}={v}" for k, v in ours.items())]
    return command, get_original_cwd()


class _HydraJobLauncher(subprocess_script._SubprocessScriptLauncher):
    """Lightning's script launcher with ``hydra_job_command`` for the children."""

    def _call_children_scripts(self) -> None:
        # Lightning builds the command in a module-level function; replaced for this call only
        with mock.patch.object(subprocess_script, "_hydra_subprocess_cmd", hydra_job_command):
            super()._call_children_scripts()
        os.environ[LAUNCHED_MARK] = "1"


def end_launched_job() -> None:
    """Close what a job that started DDP processes leaves behind in its launching process.

    Lightning keeps the process group and its launch variables for the rest of the script
    (a later ``trainer.test`` reuses them). In a Hydra multirun the next job runs in the
    same process: with ``LOCAL_RANK`` still set it starts no processes and reuses the old
    group, whose peers have exited ("Connection closed by peer"). Called at the end of
    each job (``ganforge.hydra_callbacks.CloseJob``).
    """
    if os.environ.pop(LAUNCHED_MARK, None) is None:
        return
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    for name in LAUNCH_ENV:
        os.environ.pop(name, None)


__all__ = ["GANDDPStrategy", "end_launched_job", "hydra_job_command"]
