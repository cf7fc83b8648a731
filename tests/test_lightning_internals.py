"""The Lightning internals ganforge relies on are still where it expects them.

The training step uses public API only (Lightning optimizers, ``Logger.log_metrics``,
``trainer.log_every_n_steps``). Where no public hook exists, each use sits in one file;
pyproject.toml caps ``lightning`` at the highest release these tests passed on. When a
release moves one of them, the test below fails and names the file to revisit.
"""

from __future__ import annotations

import inspect

import pytest
from lightning.fabric.strategies.launchers import subprocess_script as fabric_subprocess_script
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers import subprocess_script
from lightning.pytorch.trainer.connectors.checkpoint_connector import _CheckpointConnector
from lightning.pytorch.utilities.exceptions import SIGTERMException


def _hpc_names_are_what_slurm_resumes_from() -> bool:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        first = _CheckpointConnector.hpc_save_path(folder)
        Path(first).touch()
        second = _CheckpointConnector.hpc_save_path(folder)
    resume = inspect.getsource(_CheckpointConnector._hpc_resume_path.fget)
    return (
        Path(first).name == "hpc_ckpt_1.ckpt"
        and Path(second).name == "hpc_ckpt_2.ckpt"
        and "hpc_ckpt_" in resume
    )


INTERNALS = [
    # (file that uses it, what it uses, how to find it)
    (
        "src/ganforge/launch.py",
        "the children's environment is a copy of os.environ at launch (CHILD_MARK reaches them)",
        lambda: (
            "os.environ.copy()"
            in inspect.getsource(subprocess_script._SubprocessScriptLauncher._call_children_scripts)
        ),
    ),
    (
        "src/ganforge/launch.py",
        "subprocess_script._hydra_subprocess_cmd(local_rank) -> (command, cwd)",
        lambda: "local_rank" in inspect.signature(subprocess_script._hydra_subprocess_cmd).parameters,
    ),
    (
        "src/ganforge/launch.py",
        "_SubprocessScriptLauncher._call_children_scripts() calls _hydra_subprocess_cmd",
        lambda: (
            "_hydra_subprocess_cmd"
            in inspect.getsource(subprocess_script._SubprocessScriptLauncher._call_children_scripts)
        ),
    ),
    (
        "src/ganforge/strategy.py",
        "lightning.pytorch.overrides.distributed._sync_module_states and _register_ddp_comm_hook",
        lambda: all(
            callable(getattr(__import__("lightning.pytorch.overrides.distributed", fromlist=["_"]), name))
            for name in ("_sync_module_states", "_register_ddp_comm_hook")
        ),
    ),
    (
        "src/ganforge/strategy.py",
        "DDPStrategy._setup_model(model) wraps in DistributedDataParallel",
        lambda: list(inspect.signature(DDPStrategy._setup_model).parameters) == ["self", "model"],
    ),
    (
        "src/ganforge/strategy.py",
        "DDPStrategy._configure_launcher sets self._launcher",
        lambda: "self._launcher" in inspect.getsource(DDPStrategy._configure_launcher),
    ),
    (
        "src/ganforge/strategy.py",
        "DDPStrategy attributes _layer_sync, _ddp_comm_hook, _ddp_comm_state, _ddp_comm_wrapper",
        lambda: all(
            hasattr(DDPStrategy(), a)
            for a in ("_layer_sync", "_ddp_comm_hook", "_ddp_comm_state", "_ddp_comm_wrapper")
        ),
    ),
    (
        "src/ganforge/callbacks/preemption.py",
        "_CheckpointConnector.hpc_save_path(folder) names the next hpc_ckpt_<n>.ckpt, which a "
        "SLURM job resumes from (_hpc_resume_path)",
        lambda: _hpc_names_are_what_slurm_resumes_from(),
    ),
    (
        "src/ganforge/callbacks/preemption.py",
        "SIGTERMException is a SystemExit: Lightning's clean stop, exit status 0",
        lambda: issubclass(SIGTERMException, SystemExit) and SIGTERMException().code is None,
    ),
    (
        "src/ganforge/strategy.py",
        "the child observer watches _SubprocessScriptLauncher.procs itself and ends once it is empty",
        lambda: (
            "_launch_process_observer(self.procs)"
            in inspect.getsource(subprocess_script._SubprocessScriptLauncher.launch)
            and "all(return_code == 0 for return_code in return_codes)"
            in inspect.getsource(fabric_subprocess_script._ChildProcessObserver._run)
        ),
    ),
    (
        "src/ganforge/callbacks/progress.py",
        "RichProgressBar._get_train_description(current_epoch) names the training bar",
        lambda: (
            list(inspect.signature(RichProgressBar._get_train_description).parameters)
            == ["self", "current_epoch"]
        ),
    ),
]


@pytest.mark.parametrize(("where", "what", "check"), INTERNALS, ids=[what for _, what, _ in INTERNALS])
def test_a_lightning_internal_is_still_there(where, what, check):
    try:
        present = check()
    except (AttributeError, ImportError, TypeError, OSError) as err:
        present, why = False, f"{type(err).__name__}: {err}"
    else:
        why = "its signature or body changed"
    assert present, f"Lightning moved {what} ({why}); revisit {where} and the lightning cap in pyproject.toml"


def test_lightning_optimizer_steps_advance_global_step_in_manual_optimization():
    # the step axis (AdversarialModule) rests on this public behaviour
    from gan_parts import fit, make_data, make_gan

    gan = make_gan(n_critic=2)
    trainer = fit(gan, make_data(samples_per_epoch=32 * 4))
    assert (gan.d_steps, gan.g_steps, trainer.global_step) == (4, 2, 2)


def test_a_sized_loader_is_not_prefetched():
    # ganforge.data.resumable counts the batches a loader handed out as the batches trained
    # on; that holds because Lightning fetches loaders with a length one batch at a time
    import lightning as L
    from gan_parts import fit, make_data, make_gan

    seen = []

    class Count(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen.append((batch_idx + 1, trainer.train_dataloader.state_dict()["position"]))

    fit(make_gan(), make_data(samples_per_epoch=32 * 3), callbacks=[Count()])
    assert seen == [(1, 1), (2, 2), (3, 3)]
