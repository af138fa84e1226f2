"""The deployment (infrastructure/) tested for real: lint, shell scripts, the Vagrantfile,
and the Ansible playbook converged on a fresh Debian 12 container running systemd.

Each test runs one step of ``infrastructure/scripts/deploy-test.sh`` (also what
``make deploy-test`` runs) and asserts on its exit status and its CHECK/PASS lines, so
the outcome shows in pytest's summary. Logs of a converge: ``test-artifacts/deploy-test/<run id>/``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.deploy

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "infrastructure" / "scripts" / "deploy-test.sh"


def run_step(step: str, timeout: int) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAAS_", "DJANGO_"))}
    result = subprocess.run(
        [str(SCRIPT), step], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )
    output = result.stdout + result.stderr
    tail = "\n".join(output.splitlines()[-60:])
    assert result.returncode == 0, f"deploy-test.sh {step} exited {result.returncode}:\n{tail}"
    return output


def test_playbook_passes_syntax_check_and_ansible_lint() -> None:
    output = run_step("lint", timeout=900)
    assert "Profile 'production' was required, and it passed" in output
    assert "[deploy-test] lint: ok" in output


def test_infrastructure_scripts_pass_bash_n_and_shellcheck() -> None:
    output = run_step("scripts", timeout=600)
    assert "[deploy-test] bash -n: ok" in output
    if "SKIP shellcheck" in output:
        pytest.skip("shellcheck could not be installed here")
    assert "[deploy-test] shellcheck: ok" in output


def test_vagrantfile_validates() -> None:
    output = run_step("vagrant", timeout=900)
    if "SKIP vagrant validate" in output:
        pytest.skip("vagrant could not be installed here")
    assert "[deploy-test] vagrant validate: ok" in output


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI")
@pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap of the target image needs root")
def test_playbook_converges_on_fresh_debian_and_is_idempotent() -> None:
    output = run_step("converge", timeout=3600)
    for check in (
        "CHECK paas-web: active",
        "CHECK paas-worker: active",
        "CHECK paas-watcher: running",
        "CHECK old paas-watch unit: removed",
        "CHECK GET /healthz: 200",
        "CHECK pools warm:",
        "CHECK second run: changed=0",
        "PASS converge",
    ):
        assert f"[deploy-test] {check}" in output, f"missing '{check}' in:\n{output}"
    second = re.search(r"second run: (target +: .*)", output)
    assert second and re.search(r"\bchanged=0\b.*\bfailed=0\b", second.group(1)), output
    timings = dict(re.findall(r"TIMING (\w+)=([\d.]+)s", output))
    print("deploy-test timings (s):", timings)


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI")
@pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap of the target image needs root")
def test_several_hosts_certificates_and_node_settings_converge_idempotently() -> None:
    """The control/nodes part of site.yml on a control and a node container: the CA and
    certificates, the node's TLS files, engine API address and firewall (which admits
    the control host and refuses an outsider), then a second run with changed=0."""
    output = run_step("nodes", timeout=1800)
    for check in (
        "CHECK control: CA, client certificate, node1's server certificate",
        "CHECK node1: TLS files, engine API on tcp://",
        "CHECK node1 firewall: API port open to the control host, closed to an outsider",
        "CHECK nodes second run: changed=0",
        "PASS nodes",
    ):
        assert f"[deploy-test] {check}" in output, f"missing '{check}' in:\n{output}"
    timings = dict(re.findall(r"TIMING (\w+)=([\d.]+)s", output))
    print("deploy-test nodes timings (s):", timings)
