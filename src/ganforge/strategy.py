"""DDP for a GAN: one DistributedDataParallel per network instead of one for the module.

Lightning's ``DDPStrategy`` wraps the whole LightningModule in one DDP. A GAN step
backpropagates through one network only (D's loss sees G's output detached, G's loss
runs D with frozen weights), so that single wrapper finds unused parameters in every
backward: it fails, or needs ``find_unused_parameters=True``, which walks the autograd
graph after every forward and needs ``manual_backward`` (benchmarks/ddp.py measures both).
Here every network the module registers (``AdversarialModule.networks``: a GAN's two,
CycleGAN's four) gets a wrapper of its own, as stylegan2-ada does, and the step that
updates a network calls its wrapper (``AdversarialModule.wrapped``), so each backward
reduces exactly the wrappers whose gradients it produced.

Everything else stays Lightning's: launching processes (under Hydra through
``ganforge.launch``), the DistributedSampler, rank-0 checkpoint writes, barriers, the
precision plugin, and ``sync_batchnorm`` (converted on the whole module before wrapping).
What this strategy adds:

- buffers: the wrappers do not broadcast buffers before every forward
  (``broadcast_buffers=False``); every buffer of the module (BatchNorm statistics of the
  networks and of their EMA copies) is broadcast from rank 0 once per training batch
  instead. Rank 0's statistics are the ones it saves and draws sample grids with; syncing
  after the batch costs one collective per dtype per batch rather than one per forward,
  and every rank holds the same networks whenever a callback runs (the metrics callback
  samples on every rank).
- noise: once wrapped, each rank re-seeds its training noise with
  ``seed * world_size + rank`` (weights are already identical: DDP broadcast them), and
  checkpoints keep every rank's random state, so a resumed run continues each stream.
  A checkpoint from another world size resumes with its weights, optimizer states and
  counters (images are counted over all ranks), each rank's noise re-seeded: it
  continues the run, but not bit for bit.
- a cross-rank weight check at the end of fit (``check_consistency``).
- a dead or hung rank ends the run instead of hanging it: every collective waits at most
  ``collective_timeout_s`` (torch's process-group timeout); a rank that dies closes its
  connections, so the others' next collective raises at once. A failing rank adds the
  likely cause and the timeout to the error, and rank 0 kills the processes it launched
  (a hung child would otherwise outlive it). tests/test_ddp_dead_rank.py measures it.

Lightning internals used here (``_sync_module_states``, ``_register_ddp_comm_hook``,
``DDPStrategy._setup_model``/``_configure_launcher``/``_layer_sync``, the child observer
watching ``_SubprocessScriptLauncher.procs``) are checked by tests/test_lightning_internals.py.
"""

from __future__ import annotations

import atexit
import datetime
import gc
import inspect
import logging
import math
import numbers
import os
import re
import time
from typing import Any

import torch
import torch.distributed as dist
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.overrides.distributed import _register_ddp_comm_hook, _sync_module_states
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers import subprocess_script
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.nn.parallel import DistributedDataParallel

from ganforge.distributed import broadcast_buffers_, check_ddp_consistency, rank_seed
from ganforge.launch import HydraJobLauncher
from ganforge.modules.base import AdversarialModule

# torch 2.14 renamed DDP's broadcast_buffers (kept, deprecated) to forward_sync_buffers
_NO_FORWARD_BUFFER_SYNC = (
    "forward_sync_buffers"
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    else "broadcast_buffers"
)

log = logging.getLogger("ganforge")

# what gloo and NCCL errors say when a peer has gone (closed its sockets) or not answered in time
_PEER_GONE = re.compile(r"connection (reset|closed) by peer|broken pipe|socket closed|end of file", re.I)
_TIMED_OUT = re.compile(r"timed out|timeout", re.I)
# ("Application timeout caused pair closure": gloo's next op on a pair after a timeout)
_COLLECTIVE = re.compile(r"gloo|nccl|ProcessGroup|c10d|pair closure|by peer", re.I)
# how long a failing rank 0 lets its children end on their own (printing their own error)
# before it kills them
_CHILD_GRACE_S = 2.0


def collective_timeout(seconds: Any) -> datetime.timedelta:
    """``seconds`` (a positive, finite number) as the ``timedelta`` torch's process group takes."""
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, numbers.Real)
        or not math.isfinite(seconds)
        or seconds <= 0
    ):
        raise ValueError(
            f"trainer.strategy.collective_timeout_s must be a positive number of seconds, got {seconds!r}"
        )
    return datetime.timedelta(seconds=float(seconds))


class GANDDPStrategy(DDPStrategy):
    """``DDPStrategy`` that wraps every network of an ``AdversarialModule`` separately.

    Args:
        check_consistency: after fit, compare every parameter and buffer with rank 0's
            and raise if any differs.
        collective_timeout_s: the longest a collective waits for the other ranks, in seconds
            (torch's process-group ``timeout``, also the rendezvous timeout at start). Past
            it the waiting rank raises and the run ends; 1800 is torch's default.
        **kwargs: as ``DDPStrategy`` (``timeout`` excepted: ``collective_timeout_s``
            sets it); DDP constructor arguments (``bucket_cap_mb``,
            ``gradient_as_bucket_view``, ...) go to every wrapper.
    """

    def __init__(
        self,
        *args: Any,
        check_consistency: bool = True,
        collective_timeout_s: float = 1800.0,
        **kwargs: Any,
    ) -> None:
        if "timeout" in kwargs:
            raise TypeError(
                f"{type(self).__name__} takes collective_timeout_s (seconds), not timeout; "
                "set trainer.strategy.collective_timeout_s"
            )
        kwargs["timeout"] = collective_timeout(collective_timeout_s)
        if not {"broadcast_buffers", "forward_sync_buffers"} & kwargs.keys():
            kwargs[_NO_FORWARD_BUFFER_SYNC] = False  # synced once per batch instead (module docstring)
        super().__init__(*args, **kwargs)
        self.check_consistency = check_consistency
        self.collective_timeout_s = float(collective_timeout_s)
        self._rank_rng: dict[str, Any] | None = None

    def setup_distributed(self) -> None:
        super().setup_distributed()
        # Lightning closes an NCCL group at exit, not a gloo one; a gloo group left to the
        # interpreter's teardown aborted ranks with "terminate called without an active
        # exception" (about 1 run in 4 of tests/ddp_worker_penalties.py on 2 CPU cores)
        if dist.is_initialized() and dist.get_backend() != "nccl":
            _close_group_at_exit()

    # ------------------------------------------------------------------ wrapping
    def setup(self, trainer) -> None:
        super().setup(trainer)
        if trainer.state.fn == TrainerFn.FITTING:
            self._seed_rank_noise()

    def configure_ddp(self) -> None:
        module = self.lightning_module
        if not isinstance(module, AdversarialModule):
            raise TypeError(
                f"{type(self).__name__} wraps the networks of a ganforge AdversarialModule; "
                f"{type(module).__name__} is not one"
            )
        _sync_module_states(module)  # every tensor of rank 0's, the EMA copies too (no wrapper owns them)
        module.ddp_wrappers = {name: self._setup_model(net) for name, net in module.networks.items()}
        if self.root_device.type == "cuda" and self._ddp_comm_hook is not None:
            for wrapper in module.ddp_wrappers.values():
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
        module = self.lightning_module
        if isinstance(module, AdversarialModule):
            state["module"] = module.rank_state()
        if dist.is_available() and dist.is_initialized():
            states: list[Any] = [None] * self.world_size
            dist.all_gather_object(states, state)
            rng = [{k: v for k, v in s.items() if k != "module"} for s in states]
            rank_state = [s.get("module") or {} for s in states]
            checkpoint["ganforge_ddp"] = {"world_size": self.world_size, "rng": rng, "rank_state": rank_state}
        super().save_checkpoint(checkpoint, filepath, storage_options=storage_options)

    def load_checkpoint(self, checkpoint_path, weights_only: bool | None = None) -> dict:
        checkpoint = super().load_checkpoint(checkpoint_path, weights_only=weights_only)
        saved = checkpoint.get("ganforge_ddp")
        # another world size: re-seeded (AdversarialModule.on_load_checkpoint says so)
        if saved and saved["world_size"] == self.world_size:
            self._rank_rng = saved["rng"][self.global_rank]
        return checkpoint

    # ------------------------------------------------------------------ end of fit
    def on_train_end(self) -> None:
        super().on_train_end()
        if self.check_consistency and self.world_size > 1:
            differing = check_ddp_consistency(self.lightning_module)
            if differing:
                raise RuntimeError(f"DDP ranks hold different weights after training: {differing[:10]}")

    # ------------------------------------------------------------------ a rank fails
    def on_exception(self, exception: BaseException) -> None:
        # Lightning calls this on the failing rank before tearing down and re-raising
        super().on_exception(exception)
        if self.world_size > 1:
            hint = self._failure_hint(exception)
            if hint:
                log.error("[rank %d] %s", self.global_rank, hint)
                _append_to_message(exception, hint)
        # a stop every rank makes together (SIGTERM, ganforge's Preemption: SIGTERMException,
        # a clean SystemExit) lets the children end on their own; on Ctrl-C Lightning kills them
        clean_stop = isinstance(exception, SystemExit) and exception.code in (None, 0)
        if not (clean_stop or isinstance(exception, (SIGTERMException, KeyboardInterrupt))):
            self._end_launched_processes()

    def _failure_hint(self, exception: BaseException) -> str | None:
        """The likely cause of a failed collective, or None if ``exception`` is not one."""
        text = f"{type(exception).__name__}: {exception}"
        if not (isinstance(exception, dist.DistError) or _COLLECTIVE.search(text)):
            return None
        seconds = f"{self.collective_timeout_s:g}"
        if _PEER_GONE.search(text):
            cause = (
                "another DDP rank died (its connection closed): the first error in the other ranks' "
                "output says why; a process killed from outside (out of memory, a scheduler) leaves none"
            )
        elif _TIMED_OUT.search(text):
            cause = (
                f"another DDP rank did not join a collective within the collective timeout of {seconds} s: "
                "it hangs, or it works alone for longer (epoch-end metrics, a slow checkpoint write)"
            )
        else:
            cause = "a DDP collective failed: another rank most likely died or stopped answering"
        return (
            f"{cause}. The collective timeout is trainer.strategy.collective_timeout_s={seconds} (seconds); "
            f"for longer single-rank work raise it, e.g. trainer.strategy.collective_timeout_s="
            f"{2 * self.collective_timeout_s:g}."
        )

    def _end_launched_processes(self) -> None:
        """Rank 0 is failing: end the processes it launched (a hung one would outlive it)."""
        launcher = self.launcher
        if not isinstance(launcher, subprocess_script._SubprocessScriptLauncher) or not launcher.procs:
            return
        procs = list(launcher.procs)
        # Lightning's child observer polls this very list every 5 s and SIGKILLs this process
        # once it sees a child end non-zero, cutting its report short; emptied, it stops
        # (a child killed here would otherwise trigger it)
        launcher.procs.clear()
        deadline = time.monotonic() + _CHILD_GRACE_S
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.05)  # a child that fails too prints its own error meanwhile
        running = [p for p in procs if p.poll() is None]
        if running:
            log.error(
                "[rank 0] killing the DDP processes it launched that are still running: pid %s",
                ", ".join(str(p.pid) for p in running),
            )
        for proc in running:
            proc.kill()  # SIGKILL: a rank blocked in a collective ignores SIGTERM
        for proc in procs:
            proc.wait()

    def teardown(self) -> None:
        module = self.lightning_module
        if isinstance(module, AdversarialModule):
            module.ddp_wrappers = None  # plain nets again; the wrappers hold the process group
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
        # under Hydra a child must run this job, not the command line (ganforge.launch); a plain
        # script keeps Lightning's launcher, which re-runs it
        if (
            isinstance(self._launcher, subprocess_script._SubprocessScriptLauncher)
            and HydraConfig.initialized()
        ):
            self._launcher = HydraJobLauncher(self.cluster_environment, self.num_processes, self.num_nodes)


_close_registered = False


def _close_group_at_exit() -> None:
    global _close_registered
    if not _close_registered:
        atexit.register(_destroy_group)
        _close_registered = True


def _destroy_group() -> None:
    if dist.is_available() and dist.is_initialized():
        gc.collect()  # work objects of past collectives freed while the interpreter is whole
        dist.destroy_process_group()


def _append_to_message(exception: BaseException, text: str) -> None:
    """Append ``text`` to the message of ``exception`` (as Lightning's ``_augment_message`` does)."""
    if exception.args and isinstance(exception.args[0], str):
        exception.args = (f"{exception.args[0]}\n{text}", *exception.args[1:])
    elif hasattr(exception, "add_note"):
        exception.add_note(text)


__all__ = ["GANDDPStrategy", "collective_timeout"]
