"""Starting the other DDP processes of a Hydra job, and closing what that leaves behind.

Lightning's script launcher re-runs ``sys.argv`` for every other local rank. Under Hydra
that is the whole command line, and from a ``-m`` sweep every child would start the
sweep again. ``HydraJobLauncher`` (used by ``ganforge.strategy.GANDDPStrategy``) runs
the current job instead; ``end_launched_job`` (called by ``ganforge.hydra_callbacks``
after every job) releases the process group so the next job of a multirun starts clean.

It replaces Lightning's private ``_hydra_subprocess_cmd`` for the duration of one call
of the private ``_SubprocessScriptLauncher._call_children_scripts``: the one place
ganforge leans on Lightning internals to launch, checked by
tests/test_lightning_internals.py.
"""

from __future__ import annotations

import os
import sys
from unittest import mock

import torch.distributed as dist
from lightning.pytorch.strategies.launchers import subprocess_script

# what Lightning's launcher exports in the process that starts the others
LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
LAUNCHED_MARK = "GANFORGE_DDP_LAUNCHED"
# set in the environment the launched children inherit, and only there
CHILD_MARK = "GANFORGE_DDP_CHILD"


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


class HydraJobLauncher(subprocess_script._SubprocessScriptLauncher):
    """Lightning's script launcher with ``hydra_job_command`` for the children."""

    def _call_children_scripts(self) -> None:
        # Lightning builds the command in a module-level function; replaced for this call only
        os.environ[CHILD_MARK] = "1"
        try:
            with mock.patch.object(subprocess_script, "_hydra_subprocess_cmd", hydra_job_command):
                super()._call_children_scripts()
        finally:
            os.environ.pop(CHILD_MARK, None)
        os.environ[LAUNCHED_MARK] = "1"


def end_launched_job() -> None:
    """Close what a job that started DDP processes leaves behind in its launching process.

    Lightning keeps the process group and its launch variables for the rest of the script
    (a later ``trainer.test`` reuses them). In a Hydra multirun the next job runs in the
    same process: with ``LOCAL_RANK`` still set it starts no processes and reuses the old
    group, whose peers have exited ("Connection closed by peer"). Called at the end of
    each job (``ganforge.hydra_callbacks.CloseJob``), also in the ranks it launched, which
    close their group and keep their variables (they exit after the job).
    """
    child = bool(os.environ.get(CHILD_MARK))  # a launched rank: it ends with its job
    launched = os.environ.pop(LAUNCHED_MARK, None) is not None
    if not (child or launched):
        return
    # in a child, closing the group before the interpreter exits keeps gloo's threads from
    # being torn down mid-flight ("terminate called without an active exception", which
    # aborted a rank of a DDP multirun job once in a full test run)
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    if launched:
        for name in LAUNCH_ENV:
            os.environ.pop(name, None)


__all__ = ["HydraJobLauncher", "end_launched_job", "hydra_job_command"]
