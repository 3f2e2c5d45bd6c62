"""The multi-GPU launcher (scpdiff.training.launcher): its command lines are checked against accelerate's own
argument parser, and the single-process path is run for real on the CPU."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from accelerate.commands.launch import launch_command_parser

from scpdiff.errors import ConfigError
from scpdiff.training.launcher import allocated_gpu_count, build_command, main

TRAIN = ["train-controlnet", "--benchmark", "b.yaml", "--base", "base", "--out", "cn", "--resume", "auto"]


def test_one_gpu_runs_scpdiff_in_one_process():
    assert build_command(TRAIN, 1, python="/py") == ["/py", "-m", "scpdiff", *TRAIN]
    assert build_command(TRAIN, 0, python="/py") == ["/py", "-m", "scpdiff", *TRAIN]


@pytest.mark.parametrize("gpus", [2, 8])
def test_several_gpus_parse_as_accelerate_launch(gpus):
    cmd = build_command(TRAIN, gpus, python="/py", main_process_port=29611)
    assert cmd[:3] == ["/py", "-m", "accelerate.commands.launch"]
    ns = launch_command_parser().parse_args(cmd[3:])
    assert ns.multi_gpu and ns.num_processes == gpus and ns.num_machines == 1
    assert ns.main_process_port == 29611 and ns.machine_rank == 0
    assert ns.module and ns.training_script == "scpdiff"
    assert ns.training_script_args == TRAIN  # the command's own options are passed through untouched


def test_default_port_is_free_not_accelerates_fixed_29500():
    cmd = build_command(TRAIN, 2)
    port = int(cmd[cmd.index("--main_process_port") + 1])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))  # nobody holds it: the rendezvous can listen there


@pytest.mark.parametrize(
    ("env", "count"),
    [
        ({"SLURM_GPUS_ON_NODE": "4", "CUDA_VISIBLE_DEVICES": "0,1"}, 4),  # SLURM's grant wins
        ({"CUDA_VISIBLE_DEVICES": "2,5,7"}, 3),
        ({"CUDA_VISIBLE_DEVICES": ""}, 0),
        ({"CUDA_VISIBLE_DEVICES": "-1"}, 0),
    ],
)
def test_allocated_gpu_count(env, count):
    assert allocated_gpu_count(env) == count


def test_bad_input_is_a_config_error():
    with pytest.raises(ConfigError, match="SLURM_GPUS_ON_NODE"):
        allocated_gpu_count({"SLURM_GPUS_ON_NODE": "gpu:2"})
    with pytest.raises(ConfigError, match="no scpdiff command"):
        build_command([], 2)
    with pytest.raises(ConfigError, match=">= 0"):
        build_command(TRAIN, -1)


def test_dry_run_prints_the_command(capsys):
    assert main(["--gpus", "3", "--dry-run", "--", *TRAIN]) == 0
    out = capsys.readouterr().out.split()
    assert out[out.index("--num_processes") + 1] == "3" and out[-len(TRAIN) :] == TRAIN
    with pytest.raises(SystemExit):
        main(["--gpus", "two", "--", *TRAIN])


def test_single_process_path_runs_scpdiff():
    """The real exec path on CPU: `python -m scpdiff.training.launcher -- --help` prints scpdiff's help."""
    proc = subprocess.run(
        [sys.executable, "-m", "scpdiff.training.launcher", "--gpus", "1", "--", "--help"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "usage: scpdiff" in proc.stdout
